"""The CLI's lists — findings, tickets, events, exceptions — with the filters people expect of them.

Each list is a DataFrame in a fixed column order; :func:`narrow` applies the shared filters
(``--state``, ``--severity``, ``--tool``, ``--owner``, ``--since``), then ``--fields`` and ``--limit``,
vectorised. The events list filters and limits in SQL, since the log is the one table that grows
without bound; it lists the newest first, as ``git log`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from handoffkit.errors import ConfigError
from handoffkit.record import engagements, findings, schema
from handoffkit.record.model import CLOSED_STATES, OPEN_STATES, STATES
from handoffkit.record.store import Store
from handoffkit.workflow import exceptions


@dataclass(frozen=True)
class Filters:
    """What to keep. Each tuple holds alternatives (any may match); empty means no filter."""

    state: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    tool: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()
    since: datetime | None = None
    fields: tuple[str, ...] = ()
    limit: int | None = None


@dataclass(frozen=True)
class Shape:
    """Which column each filter reads in one list (None: the filter does not apply to that list)."""

    columns: tuple[str, ...]
    state: str | None
    severity: str | None
    tool: str | None
    owner: tuple[str, ...]
    since: str | None
    extra: tuple[str, ...] = ()
    """Columns ``--fields`` may also name, beyond the ones listed by default."""


FINDINGS = Shape(
    (*findings.PUBLIC, "ticket_keys"),
    "state",
    "severity",
    "tool",
    ("owner_team", "owner_role", "owner_name"),
    "first_seen",
    tuple(c for c in findings.FIELDS if c not in findings.PUBLIC),
)
TICKETS = Shape(
    (
        "system",
        "key",
        "title",
        "status",
        "status_category",
        "priority",
        "priority_band",
        "assignee",
        "finding_ids",
        "url",
        "observed_at",
    ),
    "status_category",
    "priority_band",
    "system",
    ("assignee",),
    "observed_at",
)
EXCEPTIONS = Shape(
    (
        "exception_id",
        "finding_id",
        "status",
        "requester",
        "approver",
        "expires_on",
        "reason",
        "granted_at",
        "closed_at",
        "closed_by",
    ),
    "status",
    None,
    None,
    ("requester", "approver"),
    "granted_at",
)
EVENTS = ("seq", "occurred_at", "actor", "outcome", "type", "finding_id", "ticket_key", "state", "severity")


def narrow(df: pd.DataFrame, shape: Shape, filters: Filters) -> pd.DataFrame:
    """Keep the rows every given filter matches, then the chosen fields and at most ``limit`` rows."""
    mask = pd.Series(True, index=df.index)
    for name in ("state", "severity", "tool"):
        wanted = getattr(filters, name)
        if wanted:
            column = _column(shape, name, getattr(shape, name))
            mask &= df[column].astype("string").str.lower().isin([w.lower() for w in wanted]).fillna(False)
    if filters.owner:
        _column(shape, "owner", shape.owner[0] if shape.owner else None)
        wanted = [w.lower() for w in filters.owner]
        mask &= pd.concat(
            [df[c].astype("string").str.lower().isin(wanted).fillna(False) for c in shape.owner], axis=1
        ).any(axis=1)
    if filters.since is not None:
        column = _column(shape, "since", shape.since)
        mask &= (pd.to_datetime(df[column], utc=True, format="mixed") >= pd.Timestamp(filters.since)).fillna(False)
    out = df.loc[mask, list(fields(shape.columns, filters.fields, shape.extra))]
    return out.head(filters.limit) if filters.limit is not None else out


def fields(available: Sequence[str], chosen: Sequence[str], extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The ``--fields`` asked for, in the order given (the ``available`` ones when none are); an unknown
    one is an error naming the known ones."""
    unknown = [f for f in chosen if f not in available and f not in extra]
    if unknown:
        also = f"; and on request {', '.join(extra)}" if extra else ""
        raise ConfigError(f"--fields: unknown field {unknown[0]!r}; this list has {', '.join(available)}{also}")
    return tuple(chosen) or tuple(available)


def _column(shape: Shape, name: str, column: str | None) -> str:
    if column is None:
        raise ConfigError(f"--{name} does not apply to this list")
    return column


STATE_GROUPS = {"open": tuple(s for s in STATES if s in OPEN_STATES), "closed": CLOSED_STATES}
"""``--state open`` and ``--state closed`` stand for every state of the group."""


def finding_list(store: Store, engagement: str, filters: Filters, as_of: datetime | None = None) -> pd.DataFrame:
    # Columns beyond the default list are read only when --fields names them.
    extra = [c for c in fields(FINDINGS.columns, filters.fields, FINDINGS.extra) if c not in FINDINGS.columns]
    df = findings.as_of(store, engagement, as_of, extra) if as_of else findings.current(store, engagement, extra)
    states = tuple(s for given in filters.state for s in STATE_GROUPS.get(given.lower(), (given,)))
    return narrow(df, FINDINGS, replace(filters, state=states))


def ticket_list(store: Store, engagement: str, filters: Filters) -> pd.DataFrame:
    """The tickets as last observed (the current snapshot of each), by system and key."""
    t = schema.tickets.c
    with store.read() as conn:
        engagements.get(conn, engagement)
        rows = conn.execute(
            select(*[t[c] for c in TICKETS.columns])
            .where(t.engagement == engagement, t.current)
            .order_by(t.system, t.key)
        ).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(TICKETS.columns))
    return narrow(df, TICKETS, filters)


def exception_list(store: Store, engagement: str, filters: Filters) -> pd.DataFrame:
    rows = exceptions.list_exceptions(store, engagement)
    df = pd.DataFrame([{c: r[c] for c in EXCEPTIONS.columns} for r in rows], columns=list(EXCEPTIONS.columns))
    return narrow(df, EXCEPTIONS, filters)


def event_list(
    store: Store,
    engagement: str,
    filters: Filters,
    *,
    types: Sequence[str] = (),
    finding_id: str | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """Activity-log events of an engagement, newest first (no hashes or payloads: the export has those)."""
    if filters.tool or filters.owner:
        raise ConfigError(f"--{'tool' if filters.tool else 'owner'} does not apply to events; use findings")
    ev = schema.events.c
    stmt = select(*[ev[c] for c in EVENTS]).where(ev.engagement == engagement)
    if types:
        stmt = stmt.where(ev.type.in_(list(types)))
    if finding_id:
        stmt = stmt.where(ev.finding_id == finding_id)
    if filters.state:
        stmt = stmt.where(ev.state.in_(list(filters.state)))
    if filters.severity:
        stmt = stmt.where(ev.severity.in_([s.lower() for s in filters.severity]))
    if filters.since is not None:
        stmt = stmt.where(ev.occurred_at >= schema.format_ts(filters.since))
    if as_of is not None:
        stmt = stmt.where(ev.occurred_at <= schema.format_ts(as_of))
    stmt = stmt.order_by(ev.seq.desc())
    if filters.limit is not None:
        stmt = stmt.limit(filters.limit)
    with store.read() as conn:
        engagements.get(conn, engagement)
        rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(EVENTS))
    return df[list(fields(EVENTS, filters.fields))]


def as_rows(df: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    return findings.records(df), list(df.columns)


__all__ = ["Filters", "event_list", "exception_list", "finding_list", "narrow", "ticket_list"]
