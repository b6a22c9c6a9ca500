"""Fixtures for the foundation tests (helpers live in ``support.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from handoffkit.record.store import Store

from .support import chain_head, drop_append_only, event_rows, write_log


@pytest.fixture
def chain(store: Store) -> Iterator[Store]:
    """A store holding a 30-event log, with the append-only triggers already dropped by an attacker.

    Tests that edit it restore the original rows (``restore``) so one store serves many examples.
    """
    write_log(store)
    drop_append_only(store)
    yield store


@pytest.fixture
def pristine(chain: Store) -> tuple[list[dict[str, Any]], tuple[int, str]]:
    """The untouched log of ``chain`` and its head, for restoring between examples."""
    return event_rows(chain), chain_head(chain)


@pytest.fixture
def second_pg_url(pg_url: str) -> Iterator[str]:
    """Another fresh PostgreSQL schema on the same server as ``pg_url`` (dropped afterwards)."""
    import uuid

    import sqlalchemy

    base, _, _ = pg_url.partition("?")
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"hk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()
