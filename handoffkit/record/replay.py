"""The record as it stood at an instant, rebuilt in SQL from the activity log.

:func:`handoffkit.record.findings.as_of` replays every event in Python — exact, and the reference the tests
compare against, but linear in the log. The views and metrics need the same answer on a large
log quickly, so here it is set-based (SQLAlchemy Core, the same on SQLite and PostgreSQL):

=============  ===========================================================================================
column         as of instant T
=============  ===========================================================================================
state,         the columns of the finding's last successful *state-changing* event at or before T
disposition,   (:data:`STATE_TYPES`, the events ``findings.change`` writes: they carry the finding's values
severity       after the change; observation events such as ``link_added`` may be appended after a change
               in the same transaction with the values from before it, so they are not used)
sla_due,       ``data.set.<column>`` of the last ``finding_created`` / ``finding_routed`` / ``routing_decided``
owner_team     event that set it
kev            ``data.set.kev`` of the last ``finding_created`` / ``kev_flagged`` event
closed_at      when the last ``finding_verified_closed`` happened, if the finding is verified closed at T
=============  ===========================================================================================

When no state-changing event of the engagement happened after T, the current tables *are* the record
as of T, and they are read directly (:func:`settled`): the common case for a report rendered as of
"now" or as of the end of a finished quarter.

Instants are compared as text: the log stores them as fixed-width UTC text, so text order is time order.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import JSON, Connection, String, and_, cast, func, literal, or_, select, type_coerce

from handoffkit.record import ids, schema
from handoffkit.record._memo import memo
from handoffkit.record.frames import driver_frame, frame

EV = schema.events
F = schema.findings

#: Event types that never change the record's state (reads, runs and refusals to log).
NON_STATE_TYPES = (
    "reconciliation_run",
    "log_verified",
    "log_exported",
    "report_rendered",
    "portfolio_rendered",
    "ingest_duplicate",
    "routing_run",
    "payload_issued",
    "batch_issued",
    "ticket_update_issued",
    "finding_escalated",
    "escalation_run",
)

#: The event types written by ``findings.create_many`` / ``change`` / ``change_many``: every change to a
#: finding row is one of these, and each carries the row's state, disposition and severity after it.
STATE_TYPES = (
    "finding_created",
    "finding_seen",
    "finding_reopened",
    "finding_triaged",
    "severity_calibrated",
    "finding_routed",
    "routing_decided",
    "finding_batched",
    "exception_granted",
    "exception_revoked",
    "exception_expired",
    "kev_flagged",
    "ticket_closed_observed",
    "ticket_reopened",
    "finding_verified_closed",
)

#: The events that set a finding's owner and due date.
_OWNING_TYPES = ("finding_created", "finding_routed", "routing_decided")

#: The columns :func:`state_frame` returns.
COLUMNS = ("finding_id", "severity", "state", "disposition", "kev", "sla_due", "closed_at", "owner_team")


def instant(value: datetime | date | str | None) -> str | None:
    """Canonical UTC text for an instant; a bare date (or ``YYYY-MM-DD``) means the end of that day, UTC.

    Raises:
        ValueError: a string that is neither a date nor an ISO 8601 instant; a naive datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = schema.parse_ts(value) if len(value) > 10 else date.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.max, tzinfo=UTC)
    return schema.format_ts(value)


def day_start(value: date | str | None) -> str | None:
    """The first instant of a day, as text (``2026-07-01`` → ``2026-07-01``, which sorts before any time)."""
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()


def day_after(value: date | str | None) -> str | None:
    """The day after ``value`` as text: ``occurred_at < day_after(end)`` keeps the whole end day."""
    if value is None:
        return None
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return (day + timedelta(days=1)).isoformat()


def json_text(conn: Connection, column: Any, *path: str) -> Any:
    """A JSON field of a text column as text, on either backend (``NULL`` when absent or JSON null).

    SQLite reads it with ``json_extract``; PostgreSQL with ``json_extract_path_text`` on ``json`` (not
    ``jsonb``), which keeps the stored bytes, so nested objects come back as the canonical text.
    """
    if conn.dialect.name == "postgresql":
        return func.json_extract_path_text(cast(column, JSON), *[literal(p) for p in path])
    return cast(func.json_extract(column, "$." + ".".join(f'"{p}"' for p in path)), String)


def settled(conn: Connection, engagement: str, as_of: str | None) -> bool:
    """True when nothing changed the engagement's record after ``as_of`` (so current tables answer)."""
    if as_of is None:
        return True
    later = (
        select(EV.c.seq)
        .where(
            EV.c.occurred_at > as_of,
            EV.c.outcome == "success",
            EV.c.engagement == engagement,
            EV.c.type.not_in(NON_STATE_TYPES),
        )
        .limit(1)
    )
    return conn.execute(later).first() is None


def finding_events(engagement: str, as_of: str | None, *conditions: Any) -> list[Any]:
    """Conditions keeping the engagement's successful events about a finding, at or before ``as_of``."""
    return [
        EV.c.engagement == engagement,
        EV.c.finding_id.is_not(None),
        EV.c.outcome == "success",
        *window(None, None, as_of),
        *conditions,
    ]


def last_events(engagement: str, as_of: str | None, *conditions: Any, name: str = "last") -> Any:
    """Subquery ``(finding_id, seq)``: each finding's last successful event (at or before ``as_of``)."""
    return (
        select(EV.c.finding_id, func.max(EV.c.seq).label("seq"))
        .where(*finding_events(engagement, as_of, *conditions))
        .group_by(EV.c.finding_id)
        .subquery(name)
    )


def state_frame(conn: Connection, engagement: str, as_of: datetime | str | None = None) -> pd.DataFrame:
    """Every finding of the engagement as of ``as_of`` (default: now), with :data:`COLUMNS`.

    Returns:
        A frame with ``sla_due`` as a date (``datetime64``, midnight), ``closed_at`` as a UTC
        ``datetime64`` and ``kev`` as bool; one row per finding that existed at ``as_of``.
    """
    when = instant(as_of)

    def compute() -> pd.DataFrame:
        raw = _current(conn, engagement) if settled(conn, engagement, when) else _replayed(conn, engagement, when)
        return _typed(raw)

    # a copy: callers add columns to the frame they get
    return memo(conn, "findings", (engagement, when), compute).copy()


def _current(conn: Connection, engagement: str) -> pd.DataFrame:
    # type_coerce to String: read the stored text, not one Python date/datetime object per cell
    cols = [
        F.c.finding_id,
        F.c.severity,
        F.c.state,
        F.c.disposition,
        F.c.kev,
        type_coerce(F.c.sla_due, String).label("sla_due"),
        type_coerce(F.c.closed_at, String).label("closed_at"),
        F.c.owner_team,
    ]
    return driver_frame(conn, select(*cols).where(F.c.engagement == engagement).order_by(F.c.number), list(COLUMNS))


def _replayed(conn: Connection, engagement: str, when: str) -> pd.DataFrame:
    state = last_events(engagement, when, EV.c.type.in_(STATE_TYPES), name="state_last")
    e = EV.alias("e")
    base = frame(
        conn.execute(
            select(e.c.finding_id, e.c.severity, e.c.state, e.c.disposition).join(state, state.c.seq == e.c.seq)
        )
    )
    sla = _field(conn, engagement, when, _OWNING_TYPES, "sla_due", EV.c.payload.like('%"sla_due":%'))
    owner = _field(
        conn,
        engagement,
        when,
        _OWNING_TYPES,
        "owner_team",
        EV.c.payload.like('%"owner_team":%'),
    )
    kev = _field(conn, engagement, when, ("finding_created", "kev_flagged"), "kev")
    closed = last_events(engagement, when, EV.c.type == "finding_verified_closed", name="closed_last")
    closed_at = frame(
        conn.execute(select(e.c.finding_id, e.c.occurred_at.label("closed_at")).join(closed, closed.c.seq == e.c.seq))
    )
    out = (
        base.merge(sla, on="finding_id", how="left")
        .merge(kev, on="finding_id", how="left")
        .merge(closed_at, on="finding_id", how="left")
        .merge(owner, on="finding_id", how="left")
    )
    out["closed_at"] = out["closed_at"].where(out["state"].eq("verified_closed"), None)
    out["kev"] = out["kev"].isin(["1", "true"])
    return out.iloc[ids.frame_order(out["finding_id"])].reset_index(drop=True)[list(COLUMNS)]


OWNER_COLUMNS = ("owner_team", "owner_role", "owner_name")


def owners(conn: Connection, engagement: str, as_of: datetime | str | None = None) -> pd.DataFrame:
    """Each finding's owner (``finding_id`` and :data:`OWNER_COLUMNS`) as of ``as_of``: the values the
    last owner-setting event (:data:`_OWNING_TYPES`) at or before it set, or the current row when settled."""
    when = instant(as_of)
    if settled(conn, engagement, when):
        stmt = select(F.c.finding_id, *[F.c[c] for c in OWNER_COLUMNS]).where(F.c.engagement == engagement)
        return frame(conn.execute(stmt), ["finding_id", *OWNER_COLUMNS])
    last = last_events(engagement, when, EV.c.type.in_(_OWNING_TYPES), EV.c.payload.like('%"owner_team":%'))
    e = EV.alias("owner_e")
    stmt = select(
        e.c.finding_id, *[json_text(conn, e.c.payload, "data", "set", c).label(c) for c in OWNER_COLUMNS]
    ).join(last, last.c.seq == e.c.seq)
    return frame(conn.execute(stmt), ["finding_id", *OWNER_COLUMNS])


def entered(conn: Connection, engagement: str, state: str, as_of: datetime | str | None = None) -> pd.DataFrame:
    """When each finding in ``state`` as of ``as_of`` last entered it: ``finding_id``, ``since`` (text
    instant) — the first event leaving it in ``state`` after its last state-changing event in another."""
    when = instant(as_of)
    other = last_events(engagement, when, EV.c.type.in_(STATE_TYPES), EV.c.state != state, name="left")
    stmt = (
        select(EV.c.finding_id, func.min(EV.c.occurred_at).label("since"))
        .outerjoin(other, other.c.finding_id == EV.c.finding_id)
        .where(
            *finding_events(engagement, when, EV.c.type.in_(STATE_TYPES), EV.c.state == state),
            or_(other.c.seq.is_(None), EV.c.seq > other.c.seq),
        )
        .group_by(EV.c.finding_id)
    )
    return frame(conn.execute(stmt), ["finding_id", "since"])


def _field(
    conn: Connection, engagement: str, when: str, types: tuple[str, ...], name: str, *conditions: Any
) -> pd.DataFrame:
    """``data.set.<name>`` from each finding's last event of ``types`` at or before ``when``."""
    last = last_events(engagement, when, EV.c.type.in_(types), *conditions, name=f"{name}_last")
    e = EV.alias(f"{name}_e")
    return frame(
        conn.execute(
            select(e.c.finding_id, json_text(conn, e.c.payload, "data", "set", name).label(name)).join(
                last, last.c.seq == e.c.seq
            )
        )
    )


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    out = raw.copy()
    out["sla_due"] = pd.to_datetime(out["sla_due"], format="%Y-%m-%d", errors="coerce")
    out["closed_at"] = pd.to_datetime(out["closed_at"], format="ISO8601", utc=True, errors="coerce")
    out["kev"] = out["kev"].fillna(False).astype(bool)
    out["owner_team"] = out["owner_team"].astype(object).where(out["owner_team"].notna(), None)
    return out


def period_key(column: Any, period: str) -> Any:
    """The SQL expression grouping an instant column by ``day`` or ``month`` (text prefixes)."""
    if period not in ("day", "month"):
        raise ValueError(f"period {period!r}: expected 'day' or 'month'")
    return func.substr(column, 1, 10 if period == "day" else 7)


def window(start: date | str | None, end: date | str | None, as_of: str | None, column: Any = None) -> list[Any]:
    """Conditions keeping events with ``start <= day(occurred_at) <= end`` and ``occurred_at <= as_of``.

    ``column`` is the instant compared (default ``log.occurred_at``; an alias's column in a self-join).
    """
    at = EV.c.occurred_at if column is None else column
    conditions = []
    if start is not None:
        conditions.append(at >= day_start(start))
    if end is not None:
        conditions.append(at < day_after(end))
    if as_of is not None:
        conditions.append(at <= as_of)
    return conditions


def head(conn: Connection, as_of: str | None) -> tuple[int, str]:
    """The activity log's head as of ``as_of``: the last event (any engagement) at or before it.

    Returns:
        ``(seq, row_hash)``; ``(0, GENESIS_HASH)`` for an empty log. This pair is an anchor
        ``handoffkit log verify --anchor`` accepts.
    """
    stmt = select(EV.c.seq, EV.c.row_hash).where(*window(None, None, as_of)).order_by(EV.c.seq.desc()).limit(1)
    row = conn.execute(stmt).first()
    return (row.seq, row.row_hash) if row else (0, schema.GENESIS_HASH)


def event_counts(conn: Connection, engagement: str, conditions: list[Any], by: list[Any]) -> pd.DataFrame:
    """``count(*)`` of the engagement's successful events matching ``conditions``, grouped ``by``."""
    stmt = (
        select(*by, func.count().label("count"))
        .where(and_(EV.c.engagement == engagement, EV.c.outcome == "success", *conditions))
        .group_by(*by)
        .order_by(*by)
    )
    return frame(conn.execute(stmt))
