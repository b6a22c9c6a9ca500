"""Reconciliation: the record and the ticket exports joined on the finding id, as set-based SQL.

Every category is one query (SQLAlchemy Core, the same on SQLite and PostgreSQL) returning the ids
behind it:

=========================  ============================================================================
category                   meaning
=========================  ============================================================================
routing_misses             policy says ``ticket`` (finding routed there), but no ticket is linked
closure_misses             a linked ticket is closed (done) but the finding is not verified closed
severity_drift             a linked ticket's priority maps to a band other than the calibrated severity
tickets_without_id         a ticket (latest snapshot) carrying no finding id at all
findings_not_referenced    a link whose ticket does not carry the finding's id (the two sides do not
                           reference each other)
orphan_tickets             a ticket carrying only finding ids the record does not know
stale_links                an active link to a ticket absent from the latest export of its system
tickets_outside_policy     an open finding the policy does not route to ``ticket`` has a ticket anyway
                           (indiscriminate routing, e.g. tickets for informational findings)
shared_queue_tickets       a linked ticket assigned to a shared queue instead of the named owner
evidence_copied            a ticket whose text carries pasted evidence instead of the permalink
reconciliation_overdue     the previous reconciliation is older than the policy's cadence (0 or 1)
=========================  ============================================================================

With ``as_of`` the same queries run on the record as it stood then: finding state from the last event
at or before that instant, links from link events, tickets from the latest snapshot observed by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_, select

from handoffkit import engagements, schema
from handoffkit.events import Event, log
from handoffkit.identity import require_actor
from handoffkit.store import Store

CATEGORIES = ("routing_misses", "closure_misses", "severity_drift", "tickets_without_id",
              "findings_not_referenced", "orphan_tickets", "stale_links", "tickets_outside_policy",
              "shared_queue_tickets", "evidence_copied", "reconciliation_overdue")
HEADLINE = ("routing_misses", "closure_misses", "severity_drift")


@dataclass
class Reconciliation:
    engagement: str
    as_of: str
    counts: dict[str, int]
    ids: dict[str, list[str]]
    last_reconciled: str | None = None
    cadence_days: int = 7
    totals: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sources(engagement: str, as_of: str | None):
    """(findings, links, tickets, latest-import) selectables — current tables, or rebuilt as of a time."""
    f, lk, t, ti, ev = schema.findings, schema.links, schema.tickets, schema.ticket_imports, schema.events
    if as_of is None:
        fs = select(f.c.finding_id, f.c.state, f.c.disposition, f.c.severity) \
            .where(f.c.engagement == engagement).subquery("f")
        ls = select(lk.c.finding_id, lk.c.system, lk.c.ticket_key).where(lk.c.engagement == engagement, lk.c.active) \
            .subquery("l")
        ts = select(t).where(t.c.engagement == engagement, t.c.current).subquery("t")
    else:
        last = select(ev.c.finding_id, func.max(ev.c.seq).label("seq")).where(
            ev.c.engagement == engagement, ev.c.finding_id.is_not(None), ev.c.outcome == "success",
            ev.c.state.is_not(None), ev.c.occurred_at <= as_of).group_by(ev.c.finding_id).subquery()
        fs = select(ev.c.finding_id, ev.c.state, ev.c.disposition, ev.c.severity) \
            .join(last, last.c.seq == ev.c.seq).subquery("f")
        link_last = select(func.max(ev.c.seq).label("seq")).where(
            ev.c.engagement == engagement, ev.c.type.in_(("link_added", "link_removed")), ev.c.outcome == "success",
            ev.c.occurred_at <= as_of).group_by(ev.c.finding_id, ev.c.ticket_key).subquery()
        # The link's system lives in the event payload; as of a past instant links match tickets on
        # their key alone (system ""), which is unambiguous within one engagement's exports.
        ls = select(ev.c.finding_id, literal("").label("system"), ev.c.ticket_key) \
            .join(link_last, link_last.c.seq == ev.c.seq).where(ev.c.type == "link_added").subquery("l")
        snap_last = select(func.max(t.c.snapshot_id).label("sid")).where(
            t.c.engagement == engagement, t.c.observed_at <= as_of).group_by(t.c.system, t.c.key).subquery()
        ts = select(t).join(snap_last, snap_last.c.sid == t.c.snapshot_id).subquery("t")
    latest_import = select(ti.c.system, func.max(ti.c.import_id).label("import_id")).where(
        ti.c.engagement == engagement, ti.c.format != "defectdojo-jira-mappings",
        *([ti.c.observed_at <= as_of] if as_of else [])).group_by(ti.c.system).subquery("li")
    return fs, ls, ts, latest_import


def _queries(engagement: str, as_of: str | None, shared_queues: list[str]) -> dict[str, Any]:
    fs, ls, ts, li = _sources(engagement, as_of)
    tf = schema.ticket_findings
    same_ticket = and_(ts.c.key == ls.c.ticket_key, or_(ls.c.system == "", ls.c.system == ts.c.system))
    linked = exists().where(ls.c.finding_id == fs.c.finding_id)
    open_state = fs.c.state.not_in(("verified_closed", "false_positive", "duplicate"))
    link_join = ls.join(fs, fs.c.finding_id == ls.c.finding_id).join(ts, same_ticket)
    known = select(schema.findings.c.finding_id).where(schema.findings.c.engagement == engagement)
    carries = exists().where(tf.c.snapshot_id == ts.c.snapshot_id, tf.c.finding_id == ls.c.finding_id)
    in_latest = exists().where(li.c.system == ts.c.system, li.c.import_id == ts.c.import_id)
    queues = [q.casefold() for q in shared_queues]
    return {
        "routing_misses": select(fs.c.finding_id).where(fs.c.disposition == "ticket", fs.c.state == "routed",
                                                        ~linked),
        "closure_misses": select(fs.c.finding_id).select_from(link_join).where(
            ts.c.status_category == "done", fs.c.state != "verified_closed").distinct(),
        "severity_drift": select(fs.c.finding_id).select_from(link_join).where(
            ts.c.priority_band.is_not(None), ts.c.priority_band != fs.c.severity, open_state).distinct(),
        "tickets_without_id": select(ts.c.key).where(ts.c.finding_ids == ""),
        "findings_not_referenced": select(fs.c.finding_id).select_from(link_join).where(~carries).distinct(),
        "orphan_tickets": select(ts.c.key).where(
            ts.c.finding_ids != "",
            ~exists().where(tf.c.snapshot_id == ts.c.snapshot_id, tf.c.finding_id.in_(known))),
        "stale_links": select(ls.c.finding_id).select_from(
            ls.join(ts, same_ticket, isouter=True)).where(or_(ts.c.snapshot_id.is_(None), ~in_latest)).distinct(),
        "tickets_outside_policy": select(fs.c.finding_id).select_from(link_join).where(
            fs.c.disposition.in_(("sprint_backlog", "quarterly_cycle", "security_record_only")),
            open_state).distinct(),
        "shared_queue_tickets": select(ts.c.key).select_from(link_join).where(
            func.lower(ts.c.assignee).in_(queues)).distinct(),
        "evidence_copied": select(ts.c.key).where(ts.c.evidence_copied),
    }


def gaps(conn: Any, engagement: str, as_of: datetime | None = None, now: datetime | None = None) -> Reconciliation:
    """Every category's ids (read-only, nothing logged): what :func:`reconcile` reports and the views use.

    Without ``as_of`` the current tables are queried; ``now`` is the instant the overdue check uses.
    """
    eng = engagements.get(conn, engagement)
    policy = engagements.policy(conn, engagement)
    when = schema.format_ts(as_of) if as_of else None
    ids = {name: sorted({str(v) for v in conn.execute(q).scalars()}, key=_order)
           for name, q in _queries(engagement, when, policy.ownership.shared_queues).items()}
    now = when or schema.format_ts(now or datetime.now(UTC))
    last = _last_run(conn, engagement, now) or schema.format_ts(eng.created_at)
    overdue = (schema.parse_ts(now) - schema.parse_ts(last)).days > policy.reconciliation.days
    ids["reconciliation_overdue"] = [last] if overdue else []
    counts = {name: len(ids[name]) for name in CATEGORIES}
    return Reconciliation(engagement, now, counts, ids, last, policy.reconciliation.days, _totals(conn, engagement))


def reconcile(store: Store, engagement: str, *, actor: str, as_of: datetime | None = None) -> Reconciliation:
    """Run every category, log the run with its counts (one event), and return counts and ids."""
    actor = require_actor(actor)
    with store.read() as conn:
        result = gaps(conn, engagement, as_of, now=store.now())
    log(store, Event(type="reconciliation_run", actor=actor, engagement=engagement,
                     data={"as_of": result.as_of, "counts": result.counts, "last_reconciled": result.last_reconciled,
                           "totals": result.totals}))
    return result


def _last_run(conn, engagement: str, when: str) -> str | None:
    ev = schema.events.c
    return conn.execute(select(func.max(ev.occurred_at)).where(
        ev.engagement == engagement, ev.type == "reconciliation_run", ev.outcome == "success",
        ev.occurred_at <= when)).scalar()


def _totals(conn, engagement: str) -> dict[str, int]:
    f, t = schema.findings.c, schema.tickets.c
    findings_n = conn.execute(select(func.count()).where(f.engagement == engagement)).scalar() or 0
    tickets_n = conn.execute(select(func.count()).where(t.engagement == engagement, t.current)).scalar() or 0
    return {"findings": findings_n, "tickets": tickets_n}


def _order(value: str) -> tuple[int, str]:
    head, _, num = value.rpartition("-")
    return (int(num), head) if num.isdigit() else (0, value)
