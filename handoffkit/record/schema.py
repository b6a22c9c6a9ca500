"""The one module that owns the database schema (SQLAlchemy 2.x Core), for SQLite and PostgreSQL alike.

Timestamps are stored as fixed-width UTC text (``2026-11-28T03:55:40.123456Z``) and dates as
``YYYY-MM-DD`` text: the same bytes on both backends and under any local time zone, sortable as text,
and identical to what the activity log's canonical payloads carry.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 5

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first event."""


def format_ts(value: datetime) -> str:
    """Canonical UTC timestamp text with microseconds and ``Z``; naive datetimes are refused."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: handoffkit only stores time-zone-aware instants")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    """Inverse of :func:`format_ts`; also accepts any ISO 8601 instant with an offset."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Timestamp(TypeDecorator):
    """A UTC instant stored as canonical text."""

    impl = String(27)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, str):
            return value
        return format_ts(value)

    def process_result_value(self, value, dialect):
        return None if value is None else parse_ts(value)


class Day(TypeDecorator):
    """A calendar date stored as ``YYYY-MM-DD`` text."""

    impl = String(10)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, str):
            return value
        return value.isoformat()

    def process_result_value(self, value, dialect):
        return None if value is None else date.fromisoformat(value)


metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))

chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("row_hash", String(64), nullable=False),
)

engagements = Table(
    "engagements",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("engagement", String(64), ForeignKey("engagements.key"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("source_file", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("actor", Text, nullable=False),
)

assets = Table(
    "assets",
    metadata,
    Column("engagement", String(64), ForeignKey("engagements.key"), primary_key=True),
    Column("asset_ref", Text, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("is_pattern", Boolean, nullable=False),
    Column("owner_role", Text),
    Column("owner_team", Text),
    Column("owner_name", Text),
    Column("exposure", String(16)),
    Column("data_sensitivity", String(16)),
    Column("lifecycle", String(16), nullable=False),
)

scans = Table(
    "scans",
    metadata,
    Column("scan_id", Integer, primary_key=True, autoincrement=True),
    Column("engagement", String(64), ForeignKey("engagements.key"), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("format", String(32), nullable=False),
    Column("tool", Text, nullable=False),
    Column("tool_version", Text),
    Column("scope", Text, nullable=False),
    Column("ingested_at", Timestamp, nullable=False),
    Column("actor", Text, nullable=False),
    Column("parsed", Integer, nullable=False),
    Column("scanned_at", Timestamp, nullable=False),
    # A scan is its content at its scan instant: a deterministic scanner writes the same bytes again
    # in a later scan, which is a rescan, not a duplicate (schema version 4).
    UniqueConstraint("engagement", "sha256", "scanned_at", name="uq_scans_file_instant"),
)

findings = Table(
    "findings",
    metadata,
    Column("finding_id", String(32), primary_key=True),
    Column("number", BigInteger, nullable=False),
    Column("engagement", String(64), ForeignKey("engagements.key"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("title", Text, nullable=False),
    Column("asset_ref", Text, nullable=False),
    Column("tool", Text, nullable=False),
    Column("tool_version", Text),
    Column("rule_ref", Text),
    Column("location", Text),
    Column("cves", Text, nullable=False),
    Column("cwes", Text, nullable=False),
    Column("raw_severity", Text, nullable=False),
    Column("scanner_severity", String(8), nullable=False),
    Column("cvss_vector", Text),
    Column("cvss_score", Float),
    Column("description", Text),
    Column("references", Text, nullable=False),
    Column("suppressed", Boolean, nullable=False),
    Column("external_id", Text),
    Column("severity", String(8), nullable=False),
    Column("calibrated_vector", Text),
    Column("calibrated_score", Float),
    Column("kev", Boolean, nullable=False),
    Column("kev_due", Day),
    Column("triage", String(16), nullable=False),
    Column("state", String(24), nullable=False),
    Column("disposition", String(24)),
    Column("owner_role", Text),
    Column("owner_team", Text),
    Column("owner_name", Text),
    Column("policy_version", Integer),
    Column("sla_due", Day),
    Column("validated_at", Timestamp),
    Column("routed_at", Timestamp),
    Column("closed_at", Timestamp),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    Column("last_scan_id", Integer),
    Column("row_version", Integer, nullable=False),
    # The batch handoff the finding was last issued in (``payload --batch``, schema version 5).
    Column("batch_id", String(64)),
    UniqueConstraint("engagement", "fingerprint", name="uq_findings_fingerprint"),
)
# Covering for the reconciliation (schema version 3; the batch id since version 5): its routing-miss pass
# reads an engagement's routed findings by state and disposition, its links pass looks each linked finding
# up by id for its state, severity, disposition and batch; neither then has to read the wide finding row.
FINDINGS_STATE = Index(
    "ix_findings_engagement_state",
    findings.c.engagement,
    findings.c.state,
    findings.c.disposition,
    findings.c.severity,
    findings.c.finding_id,
    findings.c.batch_id,
)
FINDINGS_LINK_SIDE = Index(
    "ix_findings_link_side",
    findings.c.finding_id,
    findings.c.engagement,
    findings.c.state,
    findings.c.severity,
    findings.c.disposition,
    findings.c.batch_id,
)
Index("ix_findings_number", findings.c.number)
# Only DefectDojo imports carry an external id: a partial index costs scanner ingests nothing.
Index(
    "ix_findings_external",
    findings.c.engagement,
    findings.c.external_id,
    sqlite_where=findings.c.external_id.is_not(None),
    postgresql_where=findings.c.external_id.is_not(None),
)

finding_cves = Table(
    "finding_cves",
    metadata,
    Column("finding_id", String(32), ForeignKey("findings.finding_id"), primary_key=True),
    Column("cve_id", String(32), primary_key=True),
)
Index("ix_finding_cves_cve", finding_cves.c.cve_id)

evidence = Table(
    "evidence",
    metadata,
    Column("evidence_id", Integer, primary_key=True, autoincrement=True),
    Column("finding_id", String(32), ForeignKey("findings.finding_id"), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("media_type", String(64)),
    Column("content", LargeBinary),
    Column("location", Text),
    Column("scan_id", Integer, ForeignKey("scans.scan_id")),
    Column("actor", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)
Index("ix_evidence_finding", evidence.c.finding_id, evidence.c.kind)

ticket_imports = Table(
    "ticket_imports",
    metadata,
    Column("import_id", Integer, primary_key=True, autoincrement=True),
    Column("engagement", String(64), ForeignKey("engagements.key"), nullable=False),
    Column("system", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("format", String(32), nullable=False),
    Column("observed_at", Timestamp, nullable=False),
    Column("actor", Text, nullable=False),
    Column("count", Integer, nullable=False),
)

tickets = Table(
    "tickets",
    metadata,
    Column("snapshot_id", Integer, primary_key=True, autoincrement=True),
    Column("import_id", Integer, ForeignKey("ticket_imports.import_id"), nullable=False),
    Column("engagement", String(64), ForeignKey("engagements.key"), nullable=False),
    Column("system", String(16), nullable=False),
    Column("key", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_category", String(16), nullable=False),
    Column("priority", Text),
    Column("priority_band", String(8)),
    Column("assignee", Text),
    Column("labels", Text, nullable=False),
    Column("finding_ids", Text, nullable=False),
    Column("url", Text),
    Column("resolution", Text),
    Column("has_permalink", Boolean, nullable=False),
    Column("evidence_copied", Boolean, nullable=False),
    Column("evidence_reasons", Text),  # why evidence_copied holds: a JSON list (schema version 4)
    Column("batch_id", Text),  # the batch id(s) the ticket names, space-separated (schema version 5)
    Column("observed_at", Timestamp, nullable=False),
    Column("current", Boolean, nullable=False),
)
# Covering for the reconciliation (schema version 3): its links pass finds each link's ticket (latest
# snapshot) by system and key, its tickets pass reads every current ticket; both read only these
# columns, never the wide row (title, labels, url…). ``finding_ids`` is the carried ids' short text.
TICKETS_CURRENT = Index(
    "ix_tickets_current",
    tickets.c.engagement,
    tickets.c.current,
    tickets.c.system,
    tickets.c.key,
    tickets.c.status_category,
    tickets.c.priority_band,
    tickets.c.assignee,
    tickets.c.import_id,
    tickets.c.evidence_copied,
    tickets.c.finding_ids,
    tickets.c.batch_id,
)

ticket_findings = Table(
    "ticket_findings",
    metadata,
    Column("snapshot_id", Integer, ForeignKey("tickets.snapshot_id"), primary_key=True),
    Column("finding_id", String(32), primary_key=True),
)
Index("ix_ticket_findings_finding", ticket_findings.c.finding_id)

links = Table(
    "links",
    metadata,
    Column("finding_id", String(32), ForeignKey("findings.finding_id"), primary_key=True),
    Column("system", String(16), primary_key=True),
    Column("ticket_key", Text, primary_key=True),
    Column("engagement", String(64), ForeignKey("engagements.key"), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("note", Text),
)
Index("ix_links_ticket", links.c.engagement, links.c.system, links.c.ticket_key)

exceptions = Table(
    "exceptions",
    metadata,
    Column("exception_id", Integer, primary_key=True, autoincrement=True),
    Column("finding_id", String(32), ForeignKey("findings.finding_id"), nullable=False),
    Column("engagement", String(64), ForeignKey("engagements.key"), nullable=False),
    Column("requester", Text, nullable=False),
    Column("approver", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("granted_at", Timestamp, nullable=False),
    Column("expires_on", Day, nullable=False),
    Column("status", String(16), nullable=False),
    Column("closed_at", Timestamp),
    Column("closed_by", Text),
)
Index("ix_exceptions_finding", exceptions.c.finding_id, exceptions.c.status)

validations = Table(
    "validations",
    metadata,
    Column("validation_id", Integer, primary_key=True, autoincrement=True),
    Column("engagement", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("sha256", String(64)),
    Column("success", Boolean, nullable=False),
    Column("result", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

kev = Table(
    "kev",
    metadata,
    Column("cve_id", String(32), primary_key=True),
    Column("vendor_project", Text),
    Column("product", Text),
    Column("name", Text),
    Column("date_added", Day, nullable=False),
    Column("due_date", Day),
    Column("ransomware", Text),
    Column("catalog_version", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("occurred_at", String(27), nullable=False),
    Column("actor", Text, nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("type", String(48), nullable=False),
    Column("engagement", String(64)),
    Column("finding_id", String(32)),
    Column("ticket_key", Text),
    Column("state", String(24)),
    Column("disposition", String(24)),
    Column("severity", String(8)),
    Column("origin", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
)
# Covering index for the views, metrics and checklist: they filter on engagement/type/outcome/time and
# read only the finding id, its after-state and the event's place in the log (``seq``: "the first
# calibration after the link"), so they never have to touch the (large) payload rows. ``seq`` must be
# in it: on SQLite a BIGINT primary key is not the rowid, so an index does not carry it implicitly.
# Schema version 2 added ``seq`` here and to ``ix_events_occurred`` (see ``MIGRATIONS``).
EVENTS_ENGAGEMENT_TYPE = Index(
    "ix_events_engagement_type",
    events.c.engagement,
    events.c.type,
    events.c.outcome,
    events.c.occurred_at,
    events.c.finding_id,
    events.c.state,
    events.c.disposition,
    events.c.severity,
    events.c.seq,
)
Index("ix_events_finding", events.c.finding_id)
# A time window's events: ``seq`` turns the window into a range of the log (see ``audit.selection``);
# engagement, type and outcome make it covering for the activity views, which count a quarter's events
# (millions on a large record) by type and outcome for the engagement and the log's global events.
EVENTS_OCCURRED = Index(
    "ix_events_occurred", events.c.occurred_at, events.c.seq, events.c.engagement, events.c.type, events.c.outcome
)

EVENT_COLUMNS = tuple(c.name for c in events.columns if c.name not in ("payload", "prev_hash", "row_hash"))
"""The event columns that mirror the payload's top-level keys (verify compares them)."""

# Append-only: the database itself refuses UPDATE and DELETE on the activity log.
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
]
_POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION hk_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'events are append-only'; END $$",
    "CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION hk_events_append_only()",
    "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION hk_events_append_only()",
]
for _sql in _SQLITE_TRIGGERS:
    event.listen(events, "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in _POSTGRES_TRIGGERS:
    event.listen(events, "after_create", DDL(_sql).execute_if(dialect="postgresql"))


def _rebuild(conn, indexes: tuple[Index, ...]) -> None:
    """Drop (where present) and create ``indexes`` as this version defines them.

    Dropping an index drops SQLite's planner statistics for it; a store that had them (someone ran
    ``ANALYZE``) gets them back for the new indexes, so its query plans do not fall back to guesses.
    """
    analysed = (
        conn.dialect.name == "sqlite"
        and conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
    )
    for index in indexes:
        index.drop(conn, checkfirst=True)
        index.create(conn)
        if analysed:
            conn.exec_driver_sql(f"ANALYZE {index.name}")


def _v1_to_v2(conn) -> None:
    """Version 2 put ``seq`` at the end of the covering and the time index of the events."""
    _rebuild(conn, (EVENTS_ENGAGEMENT_TYPE, EVENTS_OCCURRED))


def _v2_to_v3(conn) -> None:
    """Version 3 made the findings' state index and the current-tickets index covering for the
    reconciliation, and added the findings' link-side index. These indexes, as defined now, name the
    batch columns of version 5, so those are added first."""
    _batch_columns(conn)
    _rebuild(conn, (FINDINGS_STATE, FINDINGS_LINK_SIDE, TICKETS_CURRENT))


def _v3_to_v4(conn) -> None:
    """Version 4 made a scan's identity its content and scan instant, and keeps why a ticket was found to
    carry pasted evidence. SQLite cannot drop a table constraint, so ``scans`` is rebuilt; the store runs
    this with foreign keys off, and with ``legacy_alter_table`` the rename leaves the references to the
    table as they are, so that they name the new one."""
    have = {table: {c["name"] for c in inspect(conn).get_columns(table)} for table in ("tickets", "scans")}
    if "evidence_reasons" not in have["tickets"]:
        conn.exec_driver_sql("ALTER TABLE tickets ADD COLUMN evidence_reasons TEXT")
    if "scanned_at" in have["scans"]:
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE scans ADD COLUMN scanned_at VARCHAR(27)")
        conn.exec_driver_sql("UPDATE scans SET scanned_at = ingested_at")
        conn.exec_driver_sql("ALTER TABLE scans ALTER COLUMN scanned_at SET NOT NULL")
        conn.exec_driver_sql("ALTER TABLE scans DROP CONSTRAINT uq_scans_file")
        conn.exec_driver_sql(
            "ALTER TABLE scans ADD CONSTRAINT uq_scans_file_instant UNIQUE (engagement, sha256, scanned_at)"
        )
        return
    columns = ", ".join(c.name for c in scans.columns if c.name != "scanned_at")
    conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    try:
        conn.exec_driver_sql("ALTER TABLE scans RENAME TO scans_v3")
        scans.create(conn)
        conn.exec_driver_sql(f"INSERT INTO scans ({columns}, scanned_at) SELECT {columns}, ingested_at FROM scans_v3")
        conn.exec_driver_sql("DROP TABLE scans_v3")
    finally:
        conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")


def _batch_columns(conn) -> None:
    """The batch id of a finding and the batch id(s) a ticket names (version 5), where not there yet."""
    for table, kind in (("findings", "VARCHAR(64)"), ("tickets", "TEXT")):
        if "batch_id" not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN batch_id {kind}")


def _v4_to_v5(conn) -> None:
    """Version 5 records batch handoffs: a finding's batch, the batch a ticket names, and both in the
    reconciliation's covering indexes. No batch existed before, so there is nothing to fill in."""
    _batch_columns(conn)
    _rebuild(conn, (FINDINGS_STATE, FINDINGS_LINK_SIDE, TICKETS_CURRENT))


MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}
"""Upgrade steps by the version they start from; each runs in the write transaction that bumps the
version, so a store is either fully at the old version or fully at the new one."""
