"""The governance checklist: the seed's 14 items, each evaluated from the record as of an instant.

Every item is ``pass``, ``fail`` (with the offending ids) or ``not-yet-measurable`` (the record holds
nothing yet that could show it), with the numbers behind the verdict. Nothing is typed in by hand:
each verdict is a query over the record and its activity log.

Every item is a function of the activity log up to the instant ``T`` and of the policy in force at
``T``, nothing else: the findings' state, owner and closure as the log rebuilds them at ``T``
(:func:`handoffkit.record.replay.state_frame`), events that happened at or before ``T``, exceptions
approved and in force at ``T``, the reconciliation as of ``T``. So the checklist as of ``T`` reads the
same whenever it is asked, whatever happened after ``T`` — a report rendered later included.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, or_, select

from handoffkit import reconcile
from handoffkit.record import engagements, replay, schema
from handoffkit.record.ids import order
from handoffkit.record.log import event_data
from handoffkit.record.model import SEVERITIES, VERIFICATION_KINDS
from handoffkit.record.policy import Policy
from handoffkit.record.store import Store
from handoffkit.report.controls import FRAMEWORKS

EV = schema.events.c
QUEUES = ("ticket", "sprint_backlog", "quarterly_cycle")
#: How recent a report must be for leadership to read the live record (a quarter).
LIVE_DAYS = 92


@dataclass
class Item:
    number: int
    item: str
    status: str
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _AsOf:
    """What the items read: the record as the log rebuilds it at ``when``, and the policy in force."""

    conn: Any
    engagement: str
    when: str
    policy: Policy
    frame: pd.DataFrame
    gaps: reconcile.Reconciliation

    def ids(self, mask: pd.Series) -> list[str]:
        return sorted(self.frame.loc[mask, "finding_id"], key=order)

    def events(self, *types: str, **extra: Any) -> list[Any]:
        """The engagement's successful events of ``types`` at or before ``when``, in log order."""
        stmt = (
            select(EV.seq, EV.occurred_at, EV.finding_id, EV.payload)
            .where(
                EV.engagement == self.engagement,
                EV.type.in_(types),
                EV.outcome == "success",
                EV.occurred_at <= self.when,
                *extra.values(),
            )
            .order_by(EV.seq)
        )
        return self.conn.execute(stmt).all()

    def first_seq(self, types: tuple[str, ...], *conditions: Any, last: bool = False) -> dict[str, int]:
        """Per finding, the ``seq`` of its first (or last) such event at or before ``when``."""
        seq = (func.max if last else func.min)(EV.seq)
        stmt = (
            select(EV.finding_id, seq)
            .where(*replay.finding_events(self.engagement, self.when, EV.type.in_(types), *conditions))
            .group_by(EV.finding_id)
        )
        return dict(self.conn.execute(stmt).all())


def _verdict(number: int, item: str, bad: list[str], total: int, what: str, **numbers: Any) -> Item:
    if total == 0:
        return Item(number, item, "not-yet-measurable", f"no {what} on the record yet", {"total": 0, **numbers})
    status = "fail" if bad else "pass"
    summary = f"{len(bad)} of {total} {what} fail" if bad else f"all {total} {what} hold"
    return Item(number, item, status, summary, {"total": total, "failing": len(bad), **numbers}, bad)


def evaluate(store: Store, engagement: str, as_of: datetime | None = None) -> list[Item]:
    """All 14 items for ``engagement`` as of ``as_of`` (default now); see the module docstring."""
    from handoffkit.report import metrics

    when = schema.format_ts(as_of or store.now())
    with store.read() as conn:
        eng = engagements.get(conn, engagement)
        # The reconciliation as of ``when``, through the views' memo: the facts ask for the same one.
        at = _AsOf(
            conn,
            engagement,
            when,
            engagements.policy_at(conn, engagement, when),
            replay.state_frame(conn, engagement, when),
            metrics.gaps(conn, engagement, when),
        )
        return [
            _policy_documented(at),
            _bands_enumerated(at.policy),
            _calibrated_before_ticket(at),
            _evidence_linked(at.gaps),
            _ids_both_ways(at.gaps),
            _routing_logged(at),
            _unowned_paused(at),
            _closure_triggers_verification(at),
            _evidence_before_closure(at),
            _reconciliation_cadence(at, eng.created_at),
            _reports_include(at, ("routing_decisions", "ticket_mapping")),
            _export_covers_frameworks(at),
            _exceptions_excluded(at),
            _leadership_reads_live(at),
        ]


def _policy_documented(at: _AsOf) -> Item:
    """The policy in force states all six fields itself; a field left to its default is not documented."""
    label = "handoff policy documented"
    versions = at.events("policy_versioned")
    if not versions:
        return Item(1, label, "not-yet-measurable", "no policy stored on the record yet")
    data = event_data(versions[-1].payload)
    fields = list(Policy.model_fields)
    if "defaulted" not in data:
        return Item(
            1,
            label,
            "not-yet-measurable",
            f"policy version {data['version']} predates recording which fields it states",
        )
    defaulted = list(data["defaulted"])
    if defaulted:
        summary = f"policy version {data['version']} leaves {len(defaulted)} of {len(fields)} fields to defaults"
        return Item(1, label, "fail", summary, {"version": data["version"], "defaulted": defaulted}, defaulted)
    summary = f"policy version {data['version']} states all {len(fields)} fields"
    return Item(1, label, "pass", summary, {"version": data["version"], "fields": fields})


def _bands_enumerated(policy: Policy) -> Item:
    bands = policy.routing.bands
    missing_sla = [b for b in SEVERITIES if bands[b].disposition == "ticket" and not bands[b].sla_days]
    rules = {b: f"{bands[b].disposition}/{bands[b].sla_days or '-'}d" for b in SEVERITIES}
    status = "fail" if missing_sla else "pass"
    return Item(
        2,
        "routing bands enumerated with SLAs",
        status,
        "every band routed; ticket bands carry an SLA"
        if not missing_sla
        else f"ticket band(s) without SLA: {', '.join(missing_sla)}",
        {"bands": rules},
        missing_sla,
    )


def _calibrated_before_ticket(at: _AsOf) -> Item:
    """Severity decided (validated, calibrated) before the first ticket link, never changed after it in
    the record, and never renegotiated in the ticket (its priority drifting from the calibrated band)."""
    linked = at.first_seq(("link_added",))
    validated = at.first_seq(("finding_triaged",), EV.state != "new")
    calibrated = at.first_seq(("severity_calibrated",), last=True)
    late = {f for f, link in linked.items() if validated.get(f, link + 1) > link or calibrated.get(f, 0) > link}
    drifted = set(at.gaps.ids["severity_drift"])
    return _verdict(
        3,
        "severity calibrated before any ticket, read-only downstream",
        sorted(late | drifted, key=order),
        len(linked),
        "ticketed findings",
        decided_after_ticket=len(late),
        drifted_in_ticket=len(drifted),
    )


def _evidence_linked(gaps: reconcile.Reconciliation) -> Item:
    bad = gaps.ids["evidence_copied"]
    return _verdict(4, "evidence linked, not copied", bad, gaps.totals.get("tickets", 0), "tickets")


def _ids_both_ways(gaps: reconcile.Reconciliation) -> Item:
    names = ("tickets_without_id", "findings_not_referenced", "orphan_tickets", "routing_misses")
    bad = sorted({i for name in names for i in gaps.ids[name]}, key=order)
    return _verdict(
        5,
        "ids both ways (ticket carries finding id; finding references its ticket)",
        bad,
        gaps.totals.get("tickets", 0) + gaps.totals.get("findings", 0),
        "tickets and findings",
        **{k: gaps.counts[k] for k in names},
    )


def _routing_logged(at: _AsOf) -> Item:
    """Every finding holding a routing decision at ``T`` has a ``finding_routed`` or a person's
    ``routing_decided`` event (its time and named actor are the event's; the log refuses an event without
    them). A finding a person decided on counts among them even before the next routing run."""
    f = at.frame
    by_person = set(at.first_seq(("routing_decided",)))
    decided = (f["disposition"].notna() & f["disposition"].ne("held_exception")) | f["finding_id"].isin(by_person)
    logged = set(at.first_seq(("finding_routed",))) | by_person
    bad = at.ids(decided & ~f["finding_id"].isin(logged))
    return _verdict(
        6,
        "routing decisions logged with time and user",
        bad,
        int(decided.sum()),
        "findings with a routing decision",
        decided_by_person=int(f["finding_id"].isin(by_person).sum()),
    )


def _unowned_paused(at: _AsOf) -> Item:
    f = at.frame
    queues = {q.casefold() for q in at.policy.ownership.shared_queues}
    routed = f["state"].eq("routed")
    unowned = f["owner_team"].isna() | f["owner_team"].map(lambda t: isinstance(t, str) and t.casefold() in queues)
    bad = sorted({*at.ids(routed & unowned), *at.gaps.ids["shared_queue_tickets"]}, key=order)
    return _verdict(
        7,
        "owner-less findings paused, never a shared queue",
        bad,
        int(routed.sum()),
        "routed findings (and their tickets)",
        paused=int(f["state"].eq("paused_no_owner").sum()),
        shared_queue_tickets=at.gaps.counts["shared_queue_tickets"],
    )


def _closure_triggers_verification(at: _AsOf) -> Item:
    """Every finding behind a closed ticket is awaiting verification (or verified) — never silently open."""
    f = at.frame
    behind_closed = f["finding_id"].isin(at.gaps.ids["closure_misses"])
    bad = at.ids(behind_closed & ~f["state"].isin(("awaiting_verification", "verified_closed")))
    return _verdict(
        8,
        "ticket closure triggers verification",
        bad,
        len(at.events("ticket_closed_observed")),
        "observed ticket closures",
        awaiting_verification=int(f["state"].eq("awaiting_verification").sum()),
    )


def _evidence_before_closure(at: _AsOf) -> Item:
    f = at.frame
    closed = f[f["state"].eq("verified_closed")]
    e = schema.evidence.c
    first = dict(
        at.conn.execute(
            select(e.finding_id, func.min(e.created_at))
            .join(schema.findings, schema.findings.c.finding_id == e.finding_id)
            .where(
                schema.findings.c.engagement == at.engagement,
                e.kind.in_(VERIFICATION_KINDS),
                e.created_at <= at.when,
            )
            .group_by(e.finding_id)
        ).all()
    )
    proved = closed["finding_id"].map(first).pipe(pd.to_datetime, utc=True) <= closed["closed_at"]
    bad = sorted(closed.loc[~proved.fillna(False), "finding_id"], key=order)
    return _verdict(9, "verification evidence before closure", bad, len(closed), "verified closures")


def _reconciliation_cadence(at: _AsOf, created: datetime) -> Item:
    """Gaps between reconciliations (counted when they ran, a retrospective one too) longer than the cadence."""
    runs = [schema.parse_ts(r.occurred_at) for r in at.events("reconciliation_run")]
    limit = timedelta(days=at.policy.reconciliation.days)
    points = [created, *runs, schema.parse_ts(at.when)]
    late = [f"{a:%Y-%m-%d}→{b:%Y-%m-%d}" for a, b in itertools.pairwise(points) if b - a > limit]
    item = _verdict(
        10,
        f"reconciliation on cadence ({at.policy.reconciliation.cadence})",
        late,
        len(points) - 1,
        "intervals between reconciliations",
        runs=len(runs),
    )
    item.ids = late
    return item


def _reports_include(at: _AsOf, views: tuple[str, ...]) -> Item:
    label = "reports include routing and mapping"
    rendered = at.events("report_rendered")
    if not rendered:
        return Item(11, label, "not-yet-measurable", "no report rendered from this record by then")
    latest = event_data(rendered[-1].payload)
    missing = [v for v in views if v not in latest.get("views", [])]
    return Item(
        11,
        label,
        "fail" if missing else "pass",
        f"latest report (as of {latest.get('as_of')}) "
        + (f"lacks {', '.join(missing)}" if missing else "includes them"),
        {"reports": len(rendered)},
        missing,
    )


def _export_covers_frameworks(at: _AsOf) -> Item:
    label = "activity export covers ISO 27001, SOC 2, PCI DSS, NIST"
    exported = at.events("log_exported")
    if not exported:
        return Item(12, label, "not-yet-measurable", "no activity-log export by then")
    missing = [f for f in FRAMEWORKS if f not in event_data(exported[-1].payload).get("frameworks", [])]
    return Item(
        12,
        label,
        "fail" if missing else "pass",
        f"latest export maps {len(FRAMEWORKS) - len(missing)} of {len(FRAMEWORKS)} frameworks",
        {"exports": len(exported)},
        missing,
    )


def _exceptions_excluded(at: _AsOf) -> Item:
    """No finding under an exception in force is queued, issued a payload after the grant, or has a
    ticket still open (reconciliation's ``tickets_outside_policy`` for the reason ``exception``)."""
    x = schema.exceptions.c
    active = dict(
        at.conn.execute(
            select(x.finding_id, func.max(x.granted_at))
            .where(
                x.engagement == at.engagement,
                x.granted_at <= at.when,
                or_(x.closed_at.is_(None), x.closed_at > at.when),
                x.expires_on >= at.when[:10],
            )
            .group_by(x.finding_id)
        ).all()
    )
    granted = {fid: schema.format_ts(t) if isinstance(t, datetime) else t for fid, t in active.items()}
    f = at.frame
    queued = set(at.ids(f["finding_id"].isin(granted) & f["state"].eq("routed") & f["disposition"].isin(QUEUES)))
    issued = at.events("payload_issued", finding=EV.finding_id.in_(list(granted) or [""]))
    queued |= {r.finding_id for r in issued if r.occurred_at >= granted[r.finding_id]}
    outside = at.gaps.reasons.get("tickets_outside_policy", {})
    ticketed = {fid for fid, why in outside.items() if "exception" in why}
    return _verdict(
        13,
        "exceptions excluded from the ticket queue",
        sorted(queued | ticketed, key=order),
        len(granted),
        "exceptions in force",
        with_open_ticket=len(ticketed),
    )


def _leadership_reads_live(at: _AsOf) -> Item:
    label = "leadership reads the live record (a report rendered this quarter)"
    rendered = at.events("report_rendered")
    if not rendered:
        return Item(14, label, "not-yet-measurable", "no report rendered from this record by then")
    latest = rendered[-1].occurred_at
    age = (schema.parse_ts(at.when) - schema.parse_ts(latest)).days
    live = age <= LIVE_DAYS
    return Item(
        14,
        label,
        "pass" if live else "fail",
        f"latest report rendered {latest[:10]}, {age} days before {at.when[:10]}",
        {"reports": len(rendered), "age_days": age},
        [] if live else [latest],
    )
