"""The three sides a reconciliation joins — findings, links, current tickets — as of an instant.

Now, they are the current tables. As of a past instant they are materialised in indexed temporary tables
on the reading connection: finding state from the last event at or before it, links from link events,
tickets from the latest snapshot observed by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from handoffkit.record import schema


@dataclass
class Sources:
    """The three sides reconciled, as tables plus the conditions selecting this engagement's rows: the
    current tables themselves, or indexed temporary tables holding the record as of an instant."""

    f: Any
    links: Any
    t: Any
    f_on: list[Any]
    l_on: list[Any]
    t_on: list[Any]
    latest_imports: Any
    same_system: bool
    when: str
    """The instant the sides stand at (now, for the current tables)."""

    def excepted(self, finding_id: Any) -> Any:
        """The finding is under an exception approved by then and neither closed nor past expiry then."""
        x = schema.exceptions.c
        return exists().where(
            x.finding_id == finding_id,
            x.granted_at <= self.when,
            or_(x.closed_at.is_(None), x.closed_at > self.when),
            x.expires_on >= self.when[:10],
        )


def current(engagement: str, now: str) -> Sources:
    f, lk, t = schema.findings, schema.links, schema.tickets
    return Sources(
        f,
        lk,
        t,
        [f.c.engagement == engagement],
        [lk.c.engagement == engagement, lk.c.active],
        [t.c.engagement == engagement, t.c.current],
        latest_imports(engagement, None),
        True,
        now,
    )


def latest_imports(engagement: str, as_of: str | None) -> Any:
    """The latest export import of each ticket system (import ids are unique across systems, so a
    ticket is in its system's latest export when its import id is one of these)."""
    ti = schema.ticket_imports.c
    return (
        select(func.max(ti.import_id))
        .where(
            ti.engagement == engagement,
            ti.format != "defectdojo-jira-mappings",
            *([ti.observed_at <= as_of] if as_of else []),
        )
        .group_by(ti.system)
    )


_ASOF = MetaData()
_ASOF_F = Table(
    "hk_asof_findings",
    _ASOF,
    Column("finding_id", String(32), primary_key=True),
    Column("state", String(24)),
    Column("disposition", String(24)),
    Column("severity", String(8)),
    Column("batch_id", String(64)),
    prefixes=["TEMPORARY"],
)
_ASOF_L = Table(
    "hk_asof_links",
    _ASOF,
    Column("finding_id", String(32)),
    Column("system", String(16)),
    Column("ticket_key", Text),
    Index("ix_hk_asof_links", "finding_id"),
    Index("ix_hk_asof_links_key", "ticket_key"),
    prefixes=["TEMPORARY"],
)
_ASOF_T = Table(
    "hk_asof_tickets",
    _ASOF,
    *[Column(c.name, c.type) for c in schema.tickets.columns],
    Index("ix_hk_asof_tickets_key", "key"),
    prefixes=["TEMPORARY"],
)


def materialised(conn: Any, engagement: str, as_of: str) -> Sources:
    """Materialise the record as of ``as_of``: finding state from the last event at or before it, links
    from link events, tickets from the latest snapshot observed by then (indexed temporary tables)."""
    ev, t = schema.events.c, schema.tickets
    for table in (_ASOF_F, _ASOF_L, _ASOF_T):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    last = (
        select(ev.finding_id, func.max(ev.seq).label("seq"))
        .where(
            ev.engagement == engagement,
            ev.finding_id.is_not(None),
            ev.outcome == "success",
            ev.state.is_not(None),
            ev.occurred_at <= as_of,
        )
        .group_by(ev.finding_id)
        .subquery()
    )
    conn.execute(
        insert(_ASOF_F).from_select(
            ["finding_id", "state", "disposition", "severity"],
            select(ev.finding_id, ev.state, ev.disposition, ev.severity).join(last, last.c.seq == ev.seq),
        )
    )
    _batches_as_of(conn, engagement, as_of)
    link_last = (
        select(func.max(ev.seq).label("seq"))
        .where(
            ev.engagement == engagement,
            ev.type.in_(("link_added", "link_removed")),
            ev.outcome == "success",
            ev.occurred_at <= as_of,
        )
        .group_by(ev.finding_id, ev.ticket_key)
        .subquery()
    )
    # The link's system lives in the event payload; as of a past instant links match tickets on their
    # key alone (system ""), which is unambiguous within one engagement's exports.
    conn.execute(
        insert(_ASOF_L).from_select(
            ["finding_id", "system", "ticket_key"],
            select(ev.finding_id, literal(""), ev.ticket_key)
            .join(link_last, link_last.c.seq == ev.seq)
            .where(ev.type == "link_added"),
        )
    )
    snap_last = (
        select(func.max(t.c.snapshot_id).label("sid"))
        .where(t.c.engagement == engagement, t.c.observed_at <= as_of)
        .group_by(t.c.system, t.c.key)
        .subquery()
    )
    conn.execute(
        insert(_ASOF_T).from_select(
            [c.name for c in t.columns], select(t).join(snap_last, snap_last.c.sid == t.c.snapshot_id)
        )
    )
    return Sources(_ASOF_F, _ASOF_L, _ASOF_T, [], [], [], latest_imports(engagement, as_of), False, as_of)


def _batches_as_of(conn: Any, engagement: str, as_of: str) -> None:
    """Each finding's batch as of ``as_of``: what its last ``finding_batched`` event by then set."""
    from handoffkit.record.replay import json_text  # here: importing the reconciliation needs no pandas

    ev = schema.events.c
    last = (
        select(ev.finding_id, func.max(ev.seq).label("seq"))
        .where(
            ev.engagement == engagement,
            ev.type == "finding_batched",
            ev.outcome == "success",
            ev.occurred_at <= as_of,
        )
        .group_by(ev.finding_id)
        .subquery()
    )
    e = schema.events.alias("batched")
    batch = json_text(conn, e.c.payload, "data", "set", "batch_id")
    rows = conn.execute(select(e.c.finding_id, batch).join(last, last.c.seq == e.c.seq)).all()
    if rows:
        conn.execute(
            update(_ASOF_F).where(_ASOF_F.c.finding_id == bindparam("fid")).values(batch_id=bindparam("bid")),
            [{"fid": fid, "bid": bid} for fid, bid in rows],
        )


def of(conn: Any, engagement: str, when: str | None, now: str) -> Sources:
    """The current tables (standing at ``now``), or the record as of ``when`` materialised."""
    return materialised(conn, engagement, when) if when else current(engagement, now)
