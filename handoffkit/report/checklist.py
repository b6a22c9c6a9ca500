"""The governance checklist: the seed's 14 items, each evaluated from the record.

Every item is ``pass``, ``fail`` (with the offending ids) or ``not-yet-measurable`` (the record holds
nothing yet that could show it), with the numbers behind the verdict. Nothing is typed in by hand:
each verdict is a query over the record and its activity log.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select

from handoffkit import reconcile
from handoffkit.record import engagements, schema
from handoffkit.record.ids import order
from handoffkit.record.log import event_data
from handoffkit.record.model import SEVERITIES
from handoffkit.record.store import Store

EV, F = schema.events.c, schema.findings.c
FRAMEWORKS = ("iso27001", "soc2", "pci_dss", "nist_800_53")


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


def _verdict(number: int, item: str, bad: list[str], total: int, what: str, **numbers: Any) -> Item:
    if total == 0:
        return Item(number, item, "not-yet-measurable", f"no {what} on the record yet", {"total": 0, **numbers})
    status = "fail" if bad else "pass"
    summary = f"{len(bad)} of {total} {what} fail" if bad else f"all {total} {what} hold"
    return Item(number, item, status, summary, {"total": total, "failing": len(bad), **numbers}, bad)


def evaluate(store: Store, engagement: str, as_of: datetime | None = None) -> list[Item]:
    """All 14 items for ``engagement`` (``as_of`` bounds the time-based items and the reconciliation the
    mapping items read; default now)."""
    from handoffkit.report import metrics

    now = as_of or store.now()
    with store.read() as conn:
        eng = engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
        # The reconciliation as of ``now``, through the views' memo: the quarterly facts ask for the
        # same one right after (a full reconciliation each time otherwise), and their tiles and these
        # items then count the same record, also when it has changed since ``now``.
        gaps = metrics.gaps(conn, engagement, schema.format_ts(now))
        return [
            _policy_documented(eng, policy),
            _bands_enumerated(policy),
            _calibrated_before_ticket(conn, engagement),
            _evidence_linked(gaps),
            _ids_both_ways(gaps),
            _routing_logged(conn, engagement),
            _unowned_paused(conn, engagement, policy, gaps),
            _closure_triggers_verification(conn, engagement, gaps),
            _evidence_before_closure(conn, engagement),
            _reconciliation_cadence(conn, engagement, policy, eng.created_at, now),
            _reports_include(
                conn, engagement, ("routing_decisions", "ticket_mapping"), 11, "reports include routing and mapping"
            ),
            _export_covers_frameworks(conn, engagement),
            _exceptions_excluded(conn, engagement),
            _leadership_reads_live(conn, engagement, now),
        ]


def _policy_documented(eng: Any, policy: Any) -> Item:
    fields = list(policy.model_dump())
    return Item(
        1,
        "handoff policy documented",
        "pass",
        f"policy version {eng.policy_version} with {len(fields)} fields",
        {"version": eng.policy_version, "fields": fields},
    )


def _bands_enumerated(policy: Any) -> Item:
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


def _event_seq(
    conn: Any, engagement: str, types: tuple[str, ...], label: str, extra=None, *, last: bool = False
) -> Any:
    """Per finding, the ``seq`` of its first (or last) successful event of ``types`` — read from the
    covering events index alone."""
    cond = [EV.engagement == engagement, EV.type.in_(types), EV.outcome == "success", EV.finding_id.is_not(None)]
    if extra is not None:
        cond.append(extra)
    seq = (func.max if last else func.min)(EV.seq).label(label)
    return select(EV.finding_id, seq).where(*cond).group_by(EV.finding_id).subquery()


def _calibrated_before_ticket(conn: Any, engagement: str) -> Item:
    """Severity decided (validated, calibrated) before the first ticket link; never changed after it."""
    linked = _event_seq(conn, engagement, ("link_added",), "link")
    validated = _event_seq(conn, engagement, ("finding_triaged",), "val", EV.state != "new")
    # "Any calibration after the link" is "the last calibration after the link": a join of two
    # aggregates over the index, not a probe of every linked finding's events in the table.
    calibrated = _event_seq(conn, engagement, ("severity_calibrated",), "cal", last=True)
    late_cal = (
        select(linked.c.finding_id)
        .join(calibrated, calibrated.c.finding_id == linked.c.finding_id)
        .where(calibrated.c.cal > linked.c.link)
    )
    before = (
        select(linked.c.finding_id)
        .outerjoin(validated, validated.c.finding_id == linked.c.finding_id)
        .where((validated.c.val.is_(None)) | (validated.c.val > linked.c.link))
    )
    bad = sorted(set(conn.execute(late_cal).scalars()) | set(conn.execute(before).scalars()), key=order)
    total = conn.execute(select(func.count()).select_from(linked)).scalar() or 0
    return _verdict(3, "severity calibrated before any ticket, read-only downstream", bad, total, "ticketed findings")


def _evidence_linked(gaps: reconcile.Reconciliation) -> Item:
    bad = gaps.ids["evidence_copied"]
    return _verdict(4, "evidence linked, not copied", bad, gaps.totals.get("tickets", 0), "tickets")


def _ids_both_ways(gaps: reconcile.Reconciliation) -> Item:
    bad = sorted(
        {
            *gaps.ids["tickets_without_id"],
            *gaps.ids["findings_not_referenced"],
            *gaps.ids["orphan_tickets"],
            *gaps.ids["routing_misses"],
        },
        key=order,
    )
    return _verdict(
        5,
        "ids both ways (ticket carries finding id; finding references its ticket)",
        bad,
        gaps.totals.get("tickets", 0) + gaps.totals.get("findings", 0),
        "tickets and findings",
        **{
            k: gaps.counts[k]
            for k in ("tickets_without_id", "findings_not_referenced", "orphan_tickets", "routing_misses")
        },
    )


def _ids(conn: Any, stmt: Any) -> list[str]:
    return sorted(conn.execute(stmt).scalars(), key=order)


def _count(conn: Any, *where: Any) -> int:
    return conn.execute(select(func.count()).select_from(schema.findings).where(*where)).scalar() or 0


def _routing_logged(conn: Any, engagement: str) -> Item:
    decided = [F.engagement == engagement, F.disposition.is_not(None), F.disposition != "held_exception"]
    # The routed findings as one set, read off the covering events index alone (a range of it), not a
    # probe of every finding's events. Time and user need no reading: every event has its instant, and
    # its actor is a named person (append refuses an empty one; the column is NOT NULL), so reading
    # the actor back would cost one table row per routing event to re-prove that.
    logged = select(EV.finding_id).where(
        EV.engagement == engagement,
        EV.type == "finding_routed",
        EV.outcome == "success",
        EV.finding_id.is_not(None),
    )
    bad = _ids(conn, select(F.finding_id).where(*decided, F.finding_id.not_in(logged)))
    return _verdict(6, "routing decisions logged with time and user", bad, _count(conn, *decided), "routing decisions")


def _unowned_paused(conn: Any, engagement: str, policy: Any, gaps: reconcile.Reconciliation) -> Item:
    queues = [q.casefold() for q in policy.ownership.shared_queues]
    routed = [F.engagement == engagement, F.state == "routed"]
    unowned = _ids(
        conn, select(F.finding_id).where(*routed, or_(F.owner_team.is_(None), func.lower(F.owner_team).in_(queues)))
    )
    bad = sorted({*unowned, *gaps.ids["shared_queue_tickets"]}, key=order)
    return _verdict(
        7,
        "owner-less findings paused, never a shared queue",
        bad,
        _count(conn, *routed),
        "routed findings (and their tickets)",
        paused=_count(conn, F.engagement == engagement, F.state == "paused_no_owner"),
        shared_queue_tickets=gaps.counts["shared_queue_tickets"],
    )


def _closure_triggers_verification(conn: Any, engagement: str, gaps: reconcile.Reconciliation) -> Item:
    """Every finding behind a closed ticket is awaiting verification (or verified) — never silently open."""
    misses = gaps.ids["closure_misses"]
    bad = [
        fid
        for start in range(0, len(misses), 10_000)
        for fid in conn.execute(
            select(F.finding_id).where(
                F.finding_id.in_(misses[start : start + 10_000]),
                F.state.not_in(("awaiting_verification", "verified_closed")),
            )
        ).scalars()
    ]
    total = (
        conn.execute(
            select(func.count()).where(EV.engagement == engagement, EV.type == "ticket_closed_observed")
        ).scalar()
        or 0
    )
    return _verdict(
        8,
        "ticket closure triggers verification",
        sorted(bad, key=order),
        total,
        "observed ticket closures",
        awaiting_verification=_count(conn, F.engagement == engagement, F.state == "awaiting_verification"),
    )


def _evidence_before_closure(conn: Any, engagement: str) -> Item:
    e = schema.evidence.c
    closed = [F.engagement == engagement, F.state == "verified_closed"]
    proved = exists().where(
        e.finding_id == F.finding_id,
        e.kind.in_(("rescan", "retest", "commit", "attestation")),
        e.created_at <= F.closed_at,
    )
    bad = _ids(conn, select(F.finding_id).where(*closed, ~proved))
    return _verdict(9, "verification evidence before closure", bad, _count(conn, *closed), "verified closures")


def _reconciliation_cadence(conn: Any, engagement: str, policy: Any, created: datetime, now: datetime) -> Item:
    runs = [
        schema.parse_ts(t)
        for t in conn.execute(
            select(EV.occurred_at)
            .where(
                EV.engagement == engagement,
                EV.type == "reconciliation_run",
                EV.outcome == "success",
                EV.occurred_at <= schema.format_ts(now),
            )
            .order_by(EV.seq)
        ).scalars()
    ]
    limit = timedelta(days=policy.reconciliation.days)
    points = [created, *runs, now]
    late = [f"{a:%Y-%m-%d}→{b:%Y-%m-%d}" for a, b in itertools.pairwise(points) if b - a > limit]
    item = _verdict(
        10,
        f"reconciliation on cadence ({policy.reconciliation.cadence})",
        late,
        len(points) - 1,
        "intervals between reconciliations",
        runs=len(runs),
    )
    item.ids = late
    return item


def _reports_include(conn: Any, engagement: str, views: tuple[str, ...], number: int, label: str) -> Item:
    payloads = _event_data(conn, engagement, "report_rendered")
    if not payloads:
        return Item(number, label, "not-yet-measurable", "no report rendered from this record yet")
    latest = payloads[-1]
    missing = [v for v in views if v not in latest.get("views", [])]
    return Item(
        number,
        label,
        "fail" if missing else "pass",
        f"latest report (as of {latest.get('as_of')}) "
        + (f"lacks {', '.join(missing)}" if missing else "includes them"),
        {"reports": len(payloads)},
        missing,
    )


def _export_covers_frameworks(conn: Any, engagement: str) -> Item:
    payloads = _event_data(conn, engagement, "log_exported")
    if not payloads:
        return Item(
            12,
            "activity export covers ISO 27001, SOC 2, PCI DSS, NIST",
            "not-yet-measurable",
            "no activity-log export yet",
        )
    missing = [f for f in FRAMEWORKS if f not in payloads[-1].get("frameworks", [])]
    return Item(
        12,
        "activity export covers ISO 27001, SOC 2, PCI DSS, NIST",
        "fail" if missing else "pass",
        f"latest export maps {len(FRAMEWORKS) - len(missing)} of {len(FRAMEWORKS)} frameworks",
        {"exports": len(payloads)},
        missing,
    )


def _exceptions_excluded(conn: Any, engagement: str) -> Item:
    x = schema.exceptions.c
    active = conn.execute(
        select(x.finding_id, x.granted_at).where(x.engagement == engagement, x.status == "active")
    ).all()
    granted = {r.finding_id: schema.format_ts(r.granted_at) for r in active}
    queued = set(
        conn.execute(
            select(F.finding_id).where(
                F.engagement == engagement,
                F.finding_id.in_(list(granted) or [""]),
                F.state == "routed",
                F.disposition.in_(("ticket", "sprint_backlog", "quarterly_cycle")),
            )
        ).scalars()
    )
    issued = conn.execute(
        select(EV.finding_id, EV.occurred_at).where(
            EV.engagement == engagement,
            EV.type == "payload_issued",
            EV.outcome == "success",
            EV.finding_id.in_(list(granted) or [""]),
        )
    ).all()
    queued |= {r.finding_id for r in issued if r.occurred_at >= granted[r.finding_id]}
    return _verdict(
        13, "exceptions excluded from the ticket queue", sorted(queued, key=order), len(active), "active exceptions"
    )


def _leadership_reads_live(conn: Any, engagement: str, now: datetime) -> Item:
    payloads = _event_data(conn, engagement, "report_rendered", with_time=True)
    label = "leadership reads the live record (a report rendered this quarter)"
    if not payloads:
        return Item(14, label, "not-yet-measurable", "no report rendered from this record yet")
    at, _latest = payloads[-1]
    age = (now - schema.parse_ts(at)).days
    return Item(
        14,
        label,
        "pass" if age <= 92 else "fail",
        f"latest report rendered {at[:10]} ({age} days ago) from the record's chain head",
        {"reports": len(payloads), "age_days": age},
        [] if age <= 92 else [at],
    )


def _event_data(conn: Any, engagement: str, type_: str, *, with_time: bool = False) -> list[Any]:
    rows = conn.execute(
        select(EV.occurred_at, EV.payload)
        .where(EV.engagement == engagement, EV.type == type_, EV.outcome == "success")
        .order_by(EV.seq)
    ).all()
    return [(r.occurred_at, event_data(r.payload)) if with_time else event_data(r.payload) for r in rows]
