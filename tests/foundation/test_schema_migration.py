"""A store written by an older handoffkit is upgraded on open, in one transaction; an unknown version
is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text, update

from handoffkit import schema
from handoffkit.errors import ConfigError
from handoffkit.store import Store

from .support import add_findings


def _index_columns(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        [ix] = [i for i in inspect(conn).get_indexes("events") if i["name"] == "ix_events_engagement_type"]
    return ix["column_names"]


def _downgrade_to_v1(store: Store) -> None:
    """Put the store back the way version 1 left it: the covering index without ``seq``."""
    v1_columns = ", ".join(c for c in _index_columns(store) if c != "seq")
    with store.write() as conn:
        # Plain DDL: an Index() on schema.events would attach itself to the shared metadata.
        schema.EVENTS_ENGAGEMENT_TYPE.drop(conn)
        conn.execute(text(f"CREATE INDEX ix_events_engagement_type ON events ({v1_columns})"))
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="1"))


def test_a_version_1_store_gets_seq_in_its_covering_index(db_url: str, store: Store, engagement: str) -> None:
    add_findings(store, engagement)
    _downgrade_to_v1(store)
    assert _index_columns(store)[-1] != "seq"

    reopened = Store(db_url, create=False)
    try:
        assert _index_columns(reopened)[-1] == "seq"
        with reopened.read() as conn:
            assert conn.execute(schema.meta.select().where(schema.meta.c.key == "schema_version")).one().value == "2"
    finally:
        reopened.dispose()


def test_an_unknown_schema_version_is_refused(db_url: str, store: Store) -> None:
    with store.write() as conn:
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="99"))
    with pytest.raises(ConfigError, match="schema version 99, this handoffkit expects 2"):
        Store(db_url)
