"""The reconciliation's queries: three passes that each return one row of id lists, and a count.

One pass over the links joined to their tickets and findings flags five categories at once, one over
the current tickets four, one finds the routing misses; a fourth query counts the findings. Each pass
costs about as much as one category alone, so the ten categories cost about what three would.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, exists, func, literal, or_, select

from handoffkit.reconcile._side_by_side import Job, one_after_another, side_by_side
from handoffkit.reconcile.categories import CATEGORIES, TICKET_CATEGORIES
from handoffkit.reconcile.sources import Sources
from handoffkit.record import schema
from handoffkit.record.ids import ordered
from handoffkit.record.model import BATCH_DEFAULTS, CLOSED_STATES
from handoffkit.record.store import driver_rows, id_list, strpos

#: Why a ticket is outside the policy (:data:`OUTSIDE_POLICY`): each a column of the links pass.
OUTSIDE_REASONS = (
    "sprint_backlog",
    "quarterly_cycle",
    "security_record_only",
    "exception",
    "decommissioning",
    "not_validated",
    "false_positive",
    "duplicate",
    "not_in_batch",
)
OUTSIDE_POLICY = tuple(f"outside_policy:{reason}" for reason in OUTSIDE_REASONS)
#: The dispositions whose findings may be handed over in a batch (a batch ticket instead of one per finding).
BATCHING = tuple(BATCH_DEFAULTS)
#: The categories read off the links joined to their tickets and findings, in one pass (:func:`over_links`);
#: ``tickets_outside_policy`` comes as one list per reason.
OVER_LINKS = ("closure_misses", "severity_drift", "findings_not_referenced", "stale_links", *OUTSIDE_POLICY)
#: The categories read off the current tickets, in one pass (:func:`over_tickets`).
OVER_TICKETS = ("tickets_without_id", "orphan_tickets", "shared_queue_tickets", "evidence_copied")
#: The record's size a run logs beside its counts: the findings and the current tickets.
TOTALS = ("findings", "tickets")


def _flagged(ids: dict[str, Any], flags: dict[str, Any], names: tuple[str, ...]) -> Any:
    """One row: per category in ``names``, the list of the ids (``ids[name]``) of the rows its flag holds
    for (:func:`~handoffkit.record.store.id_list`, filtered by the flag)."""
    return select(*[id_list(ids[n]).filter(flags[n]).label(n) for n in names])


def over_links(src: Sources) -> Any:
    """The active links joined to their tickets and findings, one id list per :data:`OVER_LINKS`
    category. One join instead of five: each would cost as much as the whole pass. The ticket side is
    an outer join: a link whose ticket is missing from the current export is a stale link."""
    f, lk, t = src.f, src.links, src.t
    open_state = f.c.state.not_in(CLOSED_STATES)
    # The ticket's ``finding_ids`` is the text of the ids it carries, space-separated: the rows
    # ``ticket_findings`` holds for it. Finding the link's id there reads the ticket index the join
    # already reads, where probing ``ticket_findings`` once per link cost PostgreSQL a fifth of this pass.
    # Most tickets carry one id: comparing it whole first spares building two strings per link.
    carries = or_(
        t.c.finding_ids == lk.c.finding_id,
        strpos(literal(" ") + t.c.finding_ids + " ", literal(" ") + lk.c.finding_id + " ") > 0,
    )
    # ``key`` (never NULL in a ticket) tells a link with no current ticket, from the same index.
    has_ticket = t.c.key.is_not(None)
    flags = {
        "closure_misses": and_(t.c.status_category == "done", f.c.state != "verified_closed"),
        "severity_drift": and_(t.c.priority_band.is_not(None), t.c.priority_band != f.c.severity, open_state),
        # Not correlated: the latest imports are found once, not once per link.
        "stale_links": or_(~has_ticket, t.c.import_id.not_in(src.latest_imports)),
        "findings_not_referenced": and_(has_ticket, ~carries),
        **_outside_policy(src, has_ticket, open_state),
    }
    same_ticket = and_(t.c.key == lk.c.ticket_key, *([t.c.system == lk.c.system] if src.same_system else []), *src.t_on)
    joined = lk.outerjoin(t, same_ticket).join(f, f.c.finding_id == lk.c.finding_id)
    ids = {n: t.c.key if n in TICKET_CATEGORIES else f.c.finding_id for n in OVER_LINKS}
    return _flagged(ids, flags, OVER_LINKS).select_from(joined).where(*src.l_on, *src.f_on)


def _outside_policy(src: Sources, has_ticket: Any, open_state: Any) -> dict[str, Any]:
    """A ticket the policy forbids, by reason. A band that never routes to a ticket: any ticket of an open
    finding — but the batch ticket of the finding's own batch (``payload --batch``). A ticket naming a
    batch the finding is not in (``not_in_batch``). A finding held back (an exception approved and in
    force, an asset being decommissioned, new and not yet triaged, a false positive or a duplicate): a
    ticket still open for it."""
    f, t = src.f, src.t
    # Never NULL: a finding in no batch, or a ticket naming none, is simply not its batch's ticket.
    own_batch = and_(f.c.batch_id.is_not(None), t.c.batch_id.is_not(None), t.c.batch_id == f.c.batch_id)
    still_open = and_(has_ticket, t.c.status_category != "done")
    held = {
        "exception": or_(f.c.state == "excepted", src.excepted(f.c.finding_id)),
        "decommissioning": f.c.disposition == "held_decommissioning",
        # A reopened finding keeps the ticket it had (a regression goes back to its owner): not this.
        "not_validated": or_(f.c.state == "new", f.c.disposition == "held_not_validated"),
        "false_positive": f.c.state == "false_positive",
        "duplicate": f.c.state == "duplicate",
    }
    bands = ("sprint_backlog", "quarterly_cycle", "security_record_only")
    return {
        **{
            f"outside_policy:{band}": and_(
                has_ticket, f.c.disposition == band, open_state, *([~own_batch] if band in BATCHING else [])
            )
            for band in bands
        },
        **{f"outside_policy:{reason}": and_(still_open, held[reason]) for reason in held},
        # A batch ticket hands over its batch's findings while their band batches: one re-routed to a
        # ticket of its own (its severity raised) still needs that ticket.
        "outside_policy:not_in_batch": and_(
            has_ticket, t.c.batch_id.is_not(None), open_state, or_(~own_batch, f.c.disposition.not_in(BATCHING))
        ),
    }


def over_tickets(engagement: str, src: Sources, shared_queues: list[str]) -> Any:
    """The current tickets, one list of ticket keys per :data:`OVER_TICKETS` category, and their count."""
    t, tf, lk = src.t, schema.ticket_findings, src.links
    # Most tickets carry one id: finding their whole ``finding_ids`` in the record spares the probe of
    # ``ticket_findings``; a ticket carrying several ids, or an unknown one, is looked up id by id.
    known = or_(
        _in_record(engagement, t.c.finding_ids),
        select(tf.c.finding_id)
        .where(tf.c.snapshot_id == t.c.snapshot_id, _in_record(engagement, tf.c.finding_id))
        .exists(),
    )
    # A shared queue's ticket counts only if a link reaches it: the queue test first, so the links
    # index is read for those tickets alone.
    linked = (
        select(lk.c.ticket_key)
        .where(lk.c.ticket_key == t.c.key, *([lk.c.system == t.c.system] if src.same_system else []), *src.l_on)
        .exists()
    )
    queues = [q.casefold() for q in shared_queues]
    flags = {
        "tickets_without_id": t.c.finding_ids == "",
        "orphan_tickets": and_(t.c.finding_ids != "", ~known),
        "shared_queue_tickets": and_(func.lower(t.c.assignee).in_(queues), linked),
        "evidence_copied": t.c.evidence_copied,
    }
    ids = _flagged(dict.fromkeys(OVER_TICKETS, t.c.key), flags, OVER_TICKETS)
    return ids.add_columns(func.count().label("tickets")).where(*src.t_on)


def _in_record(engagement: str, finding_id: Any) -> Any:
    """The engagement's record holds a finding of this id: looked up by its id whatever the planner
    knows (joined on the engagement instead, a store without ``ANALYZE`` statistics got a plan scanning
    the engagement's findings for every ticket), through the covering (finding id, engagement…) index:
    SQLite's planner would take the primary key's and then read the wide row."""
    f = schema.findings
    return (
        select(f.c.finding_id)
        .with_hint(f, f"INDEXED BY {schema.FINDINGS_LINK_SIDE.name}", "sqlite")
        .where(f.c.finding_id == finding_id, f.c.engagement == engagement)
        .exists()
    )


def findings(src: Sources) -> Any:
    """The number of findings in the record (as of the instant reconciled)."""
    return select(func.count().label("findings")).select_from(src.f).where(*src.f_on)


def routing_misses(src: Sources) -> Any:
    """Findings the policy routed to a ticket with no ticket linked, and batched findings (``payload
    --batch``) of a batching disposition with no ticket linked: the batch ticket was never raised."""
    f, lk = src.f, src.links
    # The finding id alone selects the engagement's links (keep the planner on the primary key).
    has_link = exists().where(lk.c.finding_id == f.c.finding_id, *(src.l_on[1:] if src.same_system else []))
    batched = and_(f.c.batch_id.is_not(None), f.c.disposition.in_(BATCHING))
    return select(
        id_list(f.c.finding_id).filter(f.c.disposition == "ticket").label("routing_misses"),
        id_list(f.c.finding_id).filter(batched).label("batch_misses"),
    ).where(*src.f_on, or_(f.c.disposition == "ticket", batched), f.c.state == "routed", ~has_link)


def found(
    conn: Any, engagement: str, src: Sources, shared_queues: list[str], wanted: tuple[str, ...] = CATEGORIES + TOTALS
) -> dict[str, Any]:
    """The ids of every category found by the queries that ``wanted`` needs, once each in number order,
    and the totals it names: four queries for all the categories and both totals, one for a single
    category. ``reasons`` holds, per finding of ``tickets_outside_policy``, why its ticket is outside."""
    if "tickets_outside_policy" in wanted:
        wanted = (*wanted, *OUTSIDE_POLICY)
    jobs = [
        _pass(stmt())
        for names, stmt in (
            (OVER_LINKS, lambda: over_links(src)),
            (("routing_misses", "batch_misses"), lambda: routing_misses(src)),
            ((*OVER_TICKETS, "tickets"), lambda: over_tickets(engagement, src, shared_queues)),
            (("findings",), lambda: findings(src)),
        )
        if not set(names).isdisjoint(wanted)
    ]
    # Temporary tables (the record as of a past instant) live on this connection alone.
    run = side_by_side if src.f is schema.findings else one_after_another
    results: dict[str, Any] = {}
    for part in run(conn, jobs):
        results |= part
    results.setdefault("reasons", {})
    if OUTSIDE_POLICY[0] in results:
        by_reason = {reason: results.pop(f"outside_policy:{reason}") for reason in OUTSIDE_REASONS}
        reasons: dict[str, list[str]] = {}
        for reason, fids in by_reason.items():
            for fid in fids:
                reasons.setdefault(fid, []).append(reason)
        results["tickets_outside_policy"] = ordered(reasons)
        outside = results["tickets_outside_policy"]
        results["reasons"]["tickets_outside_policy"] = {fid: reasons[fid] for fid in outside}
    if results.get("evidence_copied"):
        results["reasons"]["evidence_copied"] = _evidence_reasons(conn, src, results["evidence_copied"])
    return results


def _evidence_reasons(conn: Any, src: Sources, keys: list[str]) -> dict[str, list[str]]:
    """What each flagged ticket showed (the reasons its snapshot kept), by ticket key."""
    t = src.t
    found: dict[str, list[str]] = {}
    for start in range(0, len(keys), 10_000):
        stmt = select(t.c.key, t.c.evidence_reasons).where(*src.t_on, t.c.key.in_(keys[start : start + 10_000]))
        for key, reasons in conn.execute(stmt):
            found.setdefault(key, []).extend(orjson.loads(reasons) if reasons else ["flagged before reasons were kept"])
    return {key: found.get(key, []) for key in keys}


def _pass(stmt: Any) -> Job:
    return lambda conn: _ids(*driver_rows(tuned(conn), stmt))


def _ids(columns: list[str], rows: list[Any]) -> dict[str, Any]:
    """Each category's ids, sorted, from the one row of its pass (a column per category): JSON array
    text (SQLite), a list (PostgreSQL's driver decodes ``json``) or NULL (PostgreSQL, no ids); a
    total's column is its number."""
    (row,) = rows
    return {
        name: v if name in TOTALS else ordered(orjson.loads(v) if isinstance(v, str) else v or [])
        for name, v in zip(columns, row, strict=True)
    }


def tuned(conn: Any) -> Any:
    """On PostgreSQL, for the rest of this transaction: 64 MB ``work_mem``, since the links pass hashes
    every active link, current ticket and finding, which spills to disk in batches at the default 4 MB;
    and no JIT, whose compiling costs more than it saves on these queries."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        conn.exec_driver_sql("SET LOCAL jit = off")
    return conn
