"""A store written by an older handoffkit is upgraded on open, in one transaction; an unknown version
is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, text, update
from sqlalchemy.engine import make_url

from handoffkit.errors import ConfigError
from handoffkit.record import engagements, schema
from handoffkit.record.store import Store
from tests.builders import ACTOR, DATA, add_findings

V2_INDEXES = (schema.EVENTS_ENGAGEMENT_TYPE, schema.EVENTS_OCCURRED)
V3_INDEXES = (schema.FINDINGS_STATE, schema.FINDINGS_LINK_SIDE, schema.TICKETS_CURRENT)
#: How version 2 defined the indexes version 3 changed (the link-side index did not exist).
V2_DEFINITIONS = {
    "ix_findings_engagement_state": "findings (engagement, state)",
    "ix_tickets_current": 'tickets (engagement, "current", system, "key")',
}


def _index_columns(store: Store, table: str = "events") -> dict[str, list[str]]:
    with store.engine.connect() as conn:
        return {i["name"]: i["column_names"] for i in inspect(conn).get_indexes(table)}


def _downgrade_to_v2(store: Store) -> None:
    """Put the store back the way version 2 left it: the narrow state and current-tickets indexes."""
    with store.write() as conn:
        for index in V3_INDEXES:
            index.drop(conn)
        for name, definition in V2_DEFINITIONS.items():
            conn.execute(text(f"CREATE INDEX {name} ON {definition}"))
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="2"))


def _downgrade_to_v1(store: Store) -> None:
    """Put the store back the way version 1 left it: the events indexes without ``seq``."""
    columns = _index_columns(store)
    with store.write() as conn:
        for index in V2_INDEXES:
            index.drop(conn)
            # Plain DDL: an Index() on schema.events would attach itself to the shared metadata.
            v1 = (
                "occurred_at"
                if index is schema.EVENTS_OCCURRED
                else ", ".join(c for c in columns[index.name] if c != "seq")
            )
            conn.execute(text(f"CREATE INDEX {index.name} ON events ({v1})"))
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="1"))


def test_a_version_1_store_gets_seq_in_its_events_indexes(db_url: str, store: Store, engagement: str) -> None:
    add_findings(store, engagement)
    _downgrade_to_v1(store)
    assert _index_columns(store)["ix_events_occurred"] == ["occurred_at"]
    assert _index_columns(store)["ix_events_engagement_type"][-1] != "seq"

    reopened = Store(db_url, create=False)
    try:
        columns = _index_columns(reopened)
        assert columns["ix_events_occurred"] == ["occurred_at", "seq", "engagement", "type", "outcome"]
        assert columns["ix_events_engagement_type"][-1] == "seq"
        with reopened.read() as conn:
            assert conn.execute(schema.meta.select().where(schema.meta.c.key == "schema_version")).one().value == "5"
    finally:
        reopened.dispose()


def test_a_version_2_store_gets_the_covering_reconciliation_indexes(db_url: str, store: Store, engagement: str) -> None:
    add_findings(store, engagement)
    _downgrade_to_v2(store)
    assert _index_columns(store, "findings")["ix_findings_engagement_state"] == ["engagement", "state"]
    assert "ix_findings_link_side" not in _index_columns(store, "findings")

    reopened = Store(db_url, create=False)
    try:
        findings, tickets = _index_columns(reopened, "findings"), _index_columns(reopened, "tickets")
        for index in V3_INDEXES:
            assert (findings | tickets)[index.name] == [c.name for c in index.columns]
        with reopened.read() as conn:
            assert conn.execute(schema.meta.select().where(schema.meta.c.key == "schema_version")).one().value == "5"
    finally:
        reopened.dispose()


def test_an_unknown_schema_version_is_refused(db_url: str, store: Store) -> None:
    with store.write() as conn:
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="99"))
    with pytest.raises(ConfigError, match="schema version 99, this handoffkit expects 5"):
        Store(db_url)


def test_an_analysed_sqlite_store_keeps_planner_statistics_for_the_rebuilt_indexes(tmp_path: Path) -> None:
    """SQLite only: PostgreSQL keeps its own statistics, and autovacuum refreshes them."""
    url = f"sqlite:///{tmp_path / 'record.db'}"
    store = Store(url)
    engagements.init(store, "ACME", DATA / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    add_findings(store, "ACME", 3)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    _downgrade_to_v1(store)
    store.dispose()
    reopened = Store(url, create=False)
    try:
        with reopened.engine.connect() as conn:
            analysed = set(conn.execute(text("SELECT idx FROM sqlite_stat1 WHERE tbl = 'events'")).scalars())
    finally:
        reopened.dispose()
    assert {ix.name for ix in V2_INDEXES} <= analysed


V3_SCANS = """CREATE TABLE scans (
    scan_id INTEGER NOT NULL PRIMARY KEY {auto}, engagement VARCHAR(64) NOT NULL REFERENCES engagements (key),
    sha256 VARCHAR(64) NOT NULL, file_name TEXT NOT NULL, format VARCHAR(32) NOT NULL, tool TEXT NOT NULL,
    tool_version TEXT, scope TEXT NOT NULL, ingested_at VARCHAR(27) NOT NULL, actor TEXT NOT NULL,
    parsed INTEGER NOT NULL, CONSTRAINT uq_scans_file UNIQUE (engagement, sha256))"""


def _downgrade_to_v3(store: Store) -> None:
    """Put the store back the way version 3 left it: a scan known by its content alone, and tickets
    without the reasons their evidence was flagged for."""
    columns = "scan_id, engagement, sha256, file_name, format, tool, tool_version, scope, ingested_at, actor, parsed"
    with store.write() as conn:
        conn.exec_driver_sql("ALTER TABLE tickets DROP COLUMN evidence_reasons")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE scans DROP CONSTRAINT uq_scans_file_instant")
            conn.exec_driver_sql("ALTER TABLE scans DROP COLUMN scanned_at")
            conn.exec_driver_sql("ALTER TABLE scans ADD CONSTRAINT uq_scans_file UNIQUE (engagement, sha256)")
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="3"))
    if store.dialect == "sqlite":  # the sqlite3 module leaves foreign keys off, as a table rebuild needs
        raw = sqlite3.connect(make_url(store.url).database)
        raw.execute("PRAGMA legacy_alter_table = ON")
        with raw:
            raw.execute("ALTER TABLE scans RENAME TO scans_v4")
            raw.execute(V3_SCANS.format(auto=""))
            raw.execute(f"INSERT INTO scans ({columns}) SELECT {columns} FROM scans_v4")
            raw.execute("DROP TABLE scans_v4")
        raw.close()


def test_a_version_3_store_knows_its_scans_by_content_and_instant(db_url: str, store: Store, rec, tmp_path) -> None:
    """Existing scans take their ingest time as their instant; the evidence still refers to them; the same
    bytes of a later scan are then a rescan, not a duplicate; the log still verifies."""
    from handoffkit.ingest import pipeline
    from handoffkit.record import log
    from tests.builders import SHOP, zap_scan

    rec.web(SHOP, ("Kept across the upgrade", 3))
    with store.read() as conn:
        before = conn.exec_driver_sql("SELECT scan_id, ingested_at FROM scans").all()
    _downgrade_to_v3(store)
    assert "scanned_at" not in {c["name"] for c in inspect(store.engine).get_columns("scans")}

    upgraded = Store(db_url, create=False)
    try:
        with upgraded.read() as conn:
            assert conn.exec_driver_sql("SELECT scan_id, scanned_at FROM scans").all() == before
            assert conn.execute(schema.meta.select().where(schema.meta.c.key == "schema_version")).one().value == "5"
            joined = conn.exec_driver_sql("SELECT count(*) FROM evidence JOIN scans USING (scan_id)").scalar()
            assert joined == conn.exec_driver_sql("SELECT count(*) FROM evidence").scalar() > 0
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        path = zap_scan(tmp_path / "same.json", [1], "2026-03-02")
        first = pipeline.ingest_scan(upgraded, "ACME", [path], actor=ACTOR, scanned_at="2026-03-02")
        later = pipeline.ingest_scan(upgraded, "ACME", [path], actor=ACTOR, scanned_at="2026-03-09")
        assert (first[0].status, later[0].status) == ("ok", "duplicate")  # the file says 2 March both times
        assert log.verify(upgraded).ok
    finally:
        upgraded.dispose()


#: How version 4 defined the indexes version 5 widened with the batch ids.
V4_DEFINITIONS = {
    "ix_findings_engagement_state": "findings (engagement, state, disposition, severity, finding_id)",
    "ix_findings_link_side": "findings (finding_id, engagement, state, severity, disposition)",
    "ix_tickets_current": 'tickets (engagement, "current", system, "key", status_category, priority_band, assignee, '
    "import_id, evidence_copied, finding_ids)",
}


def _downgrade_to_v4(store: Store) -> None:
    """Put the store back the way version 4 left it: no batch ids, the narrower covering indexes."""
    with store.write() as conn:
        for index in V3_INDEXES:
            index.drop(conn)
        for table in ("findings", "tickets"):
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN batch_id")
        for name, definition in V4_DEFINITIONS.items():
            conn.execute(text(f"CREATE INDEX {name} ON {definition}"))
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="4"))


def test_a_version_4_store_gets_batch_ids_and_can_batch(db_url: str, store: Store, rec) -> None:
    """The findings and tickets gain their batch id columns (empty: no batch existed), the covering indexes
    name them, and the upgraded store batches and reconciles; the log still verifies."""
    from handoffkit import reconcile
    from handoffkit.record import log
    from handoffkit.tickets import batches
    from tests.builders import SHOP, route, validate

    ids = rec.web(SHOP, ("Medium before the upgrade", 2))
    validate(store, ids)
    route(store)
    _downgrade_to_v4(store)
    assert "batch_id" not in {c["name"] for c in inspect(store.engine).get_columns("findings")}

    upgraded = Store(db_url, create=False)
    try:
        findings, tickets = _index_columns(upgraded, "findings"), _index_columns(upgraded, "tickets")
        for index in V3_INDEXES:
            assert (findings | tickets)[index.name][-1] == "batch_id"
        with upgraded.read() as conn:
            assert conn.execute(schema.meta.select().where(schema.meta.c.key == "schema_version")).one().value == "5"
            assert conn.exec_driver_sql("SELECT count(*) FROM findings WHERE batch_id IS NOT NULL").scalar() == 0
        issued = batches.issue(upgraded, "ACME", target="jira", actor=ACTOR)
        assert [b["findings"] for b in issued["batches"]] == [ids]
        with upgraded.read() as conn:
            assert reconcile.gaps(conn, "ACME").ids["batch_misses"] == ids
        assert log.verify(upgraded).ok
    finally:
        upgraded.dispose()
