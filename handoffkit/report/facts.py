"""The facts of a period: every number the leadership report shows, computed from the record.

:func:`compute` gathers them as of an instant; :func:`headline` and :func:`narrative` only format those
facts, so each number on the page is computed, never typed; :func:`behind` opens a figure up into the
findings (or tickets) it counts.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, func, select

from handoffkit.errors import ConfigError
from handoffkit.record import engagements, frames, ids, replay, schema
from handoffkit.record.model import CLOSED_STATES, SEVERITIES
from handoffkit.record.store import Store
from handoffkit.report import checklist, log_export, metrics, views
from handoffkit.workflow import sla

EV, F = schema.events, schema.findings
HELD = views.HELD


@dataclass(frozen=True)
class Facts:
    """Every number the leadership report shows, computed from the record (see :func:`compute`).

    Counts "in the period" are events with ``period_start <= day(occurred_at) <= period_end`` and
    ``occurred_at <= as_of``; the others describe the record as of ``as_of``.
    """

    engagement: str
    period_start: str
    period_end: str
    as_of: str
    chain_head_seq: int
    chain_head_hash: str
    findings_total: int
    open_findings: int
    open_by_severity: dict[str, int]
    created: int
    routing_decisions: int
    routed: dict[str, int]
    held_back: int
    linked_open: int
    routing_misses: int
    closure_misses: int
    severity_drift: int
    orphan_tickets: int
    reconciliation: dict[str, int]
    """Every reconciliation category's count as of the instant (``reconciliation_overdue`` is 0 or 1)."""
    verified: dict[str, int]
    verified_total: int
    ticket_closures: int
    reopened: int
    reopen_rate_pct: float | None
    mttr_days: dict[str, float | None]
    sla_compliance_pct: float | None
    sla_breached: int
    sla_overdue_open: int
    kev_open: int
    kev_breached: int
    kev_compliance_pct: float | None
    calibrations: int
    calibrations_down: int
    events: int
    checklist: list[dict[str, Any]]

    @property
    def checklist_counts(self) -> dict[str, int]:
        """How many checklist items pass, fail, or are not yet measurable."""
        statuses = [item["status"] for item in self.checklist]
        return {s: statuses.count(s) for s in ("pass", "fail", "not-yet-measurable")}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checklist_counts": self.checklist_counts}


def compute(
    store: Store,
    engagement: str,
    period_start: date | str,
    period_end: date | str,
    as_of: datetime | date | str | None = None,
) -> Facts:
    """Compute :class:`Facts` for the period, as of ``as_of`` (default now), in one read transaction."""
    when = replay.instant(as_of if as_of is not None else store.now())
    start, end = replay.day_start(period_start), replay.day_start(period_end)
    items = [item.as_dict() for item in checklist.evaluate(store, engagement, schema.parse_ts(when))]
    with store.read() as conn:
        engagements.get(conn, engagement)
        frame = replay.state_frame(conn, engagement, when)
        gaps = metrics.gaps(conn, engagement, when)
        routing = views.routing_counts(conn, engagement, start, end, when)
        routed = {k: v for k, v in routing.items() if k != "created"}
        verified = metrics.closures_by_kind(conn, engagement, start=start, end=end, as_of=when)
        mttr = metrics.mttr(conn, engagement, start=start, end=end, as_of=when).set_index("band")["mean_days"]
        calibrations = metrics.count_events(conn, engagement, "severity_calibrated", start=start, end=end, as_of=when)
        down = _count_down(conn, engagement, start, end, when)
        head_seq, head_hash = replay.head(conn, when)
        events = int(
            conn.execute(
                select(func.count()).where(*log_export.conditions(engagement, start=start, end=end, as_of=when))
            ).scalar()
            or 0
        )

        def count(type_: str) -> int:
            return metrics.count_events(conn, engagement, type_, start=start, end=end, as_of=when)

        return Facts(
            engagement=engagement,
            period_start=start,
            period_end=end,
            as_of=when,
            chain_head_seq=head_seq,
            chain_head_hash=head_hash,
            **standing(frame, when),
            created=routing["created"],
            routing_decisions=sum(routed.values()),
            routed=routed,
            held_back=routed[HELD],
            linked_open=views.linked_open(conn, engagement, when, frame),
            routing_misses=gaps.counts["routing_misses"],
            closure_misses=gaps.counts["closure_misses"],
            severity_drift=gaps.counts["severity_drift"],
            orphan_tickets=gaps.counts["orphan_tickets"],
            reconciliation=dict(gaps.counts),
            verified=verified,
            verified_total=sum(verified.values()),
            ticket_closures=count("ticket_closed_observed"),
            reopened=count("finding_reopened"),
            reopen_rate_pct=metrics.reopen_rate(conn, engagement, as_of=when)["rate_pct"],
            mttr_days={b: _number(mttr.get(b)) for b in (*SEVERITIES, "all")},
            calibrations=calibrations,
            calibrations_down=down,
            events=events,
            checklist=items,
        )


def standing(frame: pd.DataFrame, when: str) -> dict[str, Any]:
    """The :class:`Facts` figures that describe the findings as they stand at ``when`` (open, by band, SLA,
    KEV), from a :func:`handoffkit.record.replay.state_frame` as of then — one engagement's, or several
    engagements' frames concatenated (the portfolio's totals are the same figures over them all)."""
    is_open = ~frame["state"].isin(CLOSED_STATES)
    compliance = sla.summary(frame, when).set_index("band")
    status = sla.status(frame, when)
    return {
        "findings_total": len(frame),
        "open_findings": int(is_open.sum()),
        "open_by_severity": {b: int((is_open & frame["severity"].eq(b)).sum()) for b in SEVERITIES},
        "sla_compliance_pct": _number(compliance.loc["all", "compliance_pct"]),
        "sla_breached": int(compliance.loc["all", "breached"]),
        "sla_overdue_open": int((is_open & status.eq("breached")).sum()),
        "kev_open": int((is_open & frame["kev"]).sum()),
        "kev_breached": int((is_open & frame["kev"] & status.eq("breached")).sum()),
        "kev_compliance_pct": _number(compliance.loc["kev", "compliance_pct"]),
    }


def _count_down(conn: Connection, engagement: str, start: str, end: str, when: str) -> int:
    direction = replay.json_text(conn, EV.c.payload, "data", "direction")
    stmt = select(func.count()).where(
        and_(
            EV.c.engagement == engagement,
            EV.c.type == "severity_calibrated",
            EV.c.outcome == "success",
            direction == "down",
            *replay.window(start, end, when),
        )
    )
    return int(conn.execute(stmt).scalar() or 0)


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 1)


# --------------------------------------------------------------------------------- headline, narrative


@dataclass(frozen=True)
class Threshold:
    """Where a headline figure stands: ``target`` or better is on target, up to ``at_risk`` at risk, beyond
    that off target. ``higher_is_better`` flips the comparison (a compliance percentage)."""

    target: float
    at_risk: float
    higher_is_better: bool = False

    def status(self, value: float | None) -> str | None:
        if value is None:
            return None
        if self.higher_is_better:
            return "on target" if value >= self.target else "at risk" if value >= self.at_risk else "off target"
        return "on target" if value <= self.target else "at risk" if value <= self.at_risk else "off target"


#: Default thresholds of the headline tiles (docs/operations.md); a report's ``thresholds`` parameter
#: overrides any of them, e.g. ``{"sla_compliance_pct": {"target": 95, "at_risk": 85}}``.
THRESHOLDS = {
    "sla_compliance_pct": Threshold(90.0, 80.0, higher_is_better=True),
    "open_critical": Threshold(0, 5),
    "kev_overdue": Threshold(0, 0),
    "closure_misses": Threshold(0, 10),
    "checklist_failing": Threshold(0, 2),
}


def thresholds(overrides: dict[str, Any] | None = None, where: str = "thresholds") -> dict[str, Threshold]:
    """:data:`THRESHOLDS` with ``overrides`` (``{figure: {"target": …, "at_risk": …}}``) applied; ``where``
    starts an error message (the parameter file's name and key).

    Raises:
        ConfigError: an unknown figure or key, or a value that is not a number (the message names it).
    """
    merged = dict(THRESHOLDS)
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"{where}: expected a mapping of figure to target and at_risk, got {overrides!r}")
    for figure, given in (overrides or {}).items():
        if figure not in THRESHOLDS:
            close = difflib.get_close_matches(str(figure), THRESHOLDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(THRESHOLDS)}"
            raise ConfigError(f"{where}: unknown figure {figure!r}{hint}")
        if not isinstance(given, dict) or set(given) - {"target", "at_risk"}:
            raise ConfigError(f"{where}.{figure}: expected a mapping of target and at_risk, got {given!r}")
        values = {**asdict(THRESHOLDS[figure]), **given}
        for key in ("target", "at_risk"):
            if isinstance(values[key], bool) or not isinstance(values[key], (int, float)):
                raise ConfigError(f"{where}.{figure}.{key}: expected a number, got {values[key]!r}")
        merged[figure] = Threshold(**values)
    return merged


def previous_period(period_start: date | str, period_end: date | str) -> tuple[str, str]:
    """The period before ``period_start .. period_end``: the previous calendar quarter when the period is
    one, else the same number of days ending the day before."""
    start, end = pd.Timestamp(str(period_start)), pd.Timestamp(str(period_end))
    quarter = pd.Period(start, "Q")
    if start == quarter.start_time.normalize() and end == quarter.end_time.normalize():
        before = quarter - 1
        return before.start_time.date().isoformat(), before.end_time.date().isoformat()
    prior_end = start - pd.Timedelta(days=1)
    return (prior_end - (end - start)).date().isoformat(), prior_end.date().isoformat()


def _period_name(start: str, end: str) -> str:
    """``Q2 2026`` for a calendar quarter, else the period's last day."""
    quarter = pd.Period(pd.Timestamp(start), "Q")
    if pd.Timestamp(start) == quarter.start_time.normalize() and pd.Timestamp(end) == quarter.end_time.normalize():
        return f"Q{quarter.quarter} {quarter.year}"
    return str(end)


def _standing(f: Facts) -> dict[str, float | None]:
    """The figures the thresholds judge, from the facts."""
    return {
        "sla_compliance_pct": f.sla_compliance_pct,
        "open_critical": f.open_by_severity.get("critical", 0),
        "kev_overdue": f.kev_breached,
        "closure_misses": f.closure_misses,
        "checklist_failing": f.checklist_counts["fail"],
    }


def headline(f: Facts, previous: Facts | None = None, limits: dict[str, Threshold] | None = None) -> dict[str, Any]:
    """The headline tiles (label → value or :class:`~handoffkit.report.display.Tile`), every value taken
    from the facts: the judged figures first, each with its status against ``limits`` (default
    :data:`THRESHOLDS`), its target and its change since ``previous`` (the facts of the period before,
    as of that period's end)."""
    from handoffkit.report.display import Tile  # the tile is display's; facts stay importable without it

    limits = limits or THRESHOLDS
    now, then = _standing(f), _standing(previous) if previous else {}
    since = f"since {_period_name(previous.period_start, previous.period_end)}" if previous else ""

    def tile(figure: str, shown: Any, words: str) -> Tile:
        limit, value = limits[figure], now[figure]
        return Tile(shown, limit.status(value), _target(limit, words), _change(value, then.get(figure), since, figure))

    counts = f.checklist_counts
    return {
        "SLA compliance": tile("sla_compliance_pct", _pct(f.sla_compliance_pct), "%"),
        "open critical findings": tile("open_critical", now["open_critical"], ""),
        "KEV findings past due": tile("kev_overdue", f.kev_breached, ""),
        "administrative closures (unverified)": tile("closure_misses", f.closure_misses, ""),
        "checklist items passing": tile("checklist_failing", f"{counts['pass']} of {len(f.checklist)}", " failing"),
        "open findings": Tile(
            f.open_findings, change=_change(f.open_findings, previous and previous.open_findings, since, "")
        ),
        "KEV findings open": f.kev_open,
        "created in period": f.created,
        "verified closures in period": f.verified_total,
        "routing misses": f.routing_misses,
    }


def _target(limit: Threshold, unit: str) -> str:
    def number(value: float) -> str:
        return f"{value:g}"

    if limit.higher_is_better:
        return f"target ≥ {number(limit.target)}{unit}"
    return f"target {number(limit.target)}{unit}" if limit.target == 0 else f"target ≤ {number(limit.target)}{unit}"


def _change(now: Any, then: Any, since: str, figure: str) -> str | None:
    if not since or now is None or then is None:
        return None
    delta = float(now) - float(then)
    if figure == "sla_compliance_pct":
        return f"{delta:+.1f} pts {since}" if delta else f"unchanged {since}"
    return f"{int(delta):+,} {since}" if delta else f"unchanged {since}"


def decisions(store: Store, f: Facts) -> list[dict[str, Any]]:
    """What leadership must act on as of the facts' instant, each with its ids: KEV findings past their
    due date, exceptions past their expiry still holding a finding, open critical findings without a
    resolved owner, and failing checklist items. An empty list when nothing needs a decision."""
    when = f.as_of
    x = schema.exceptions.c
    with store.read() as conn:
        frame = replay.state_frame(conn, f.engagement, when)
        status = sla.status(frame, when)
        expired = frames.frame(
            conn.execute(
                select(x.finding_id, x.expires_on)
                .where(
                    x.engagement == f.engagement,
                    x.granted_at <= when,
                    x.expires_on < when[:10],
                    (x.closed_at.is_(None)) | (x.closed_at > when),
                )
                .order_by(x.expires_on, x.finding_id)
            ),
            ["finding_id", "expires_on"],
        )
    is_open = ~frame["state"].isin(CLOSED_STATES)
    overdue_kev = frame.loc[is_open & frame["kev"] & status.eq("breached"), "finding_id"]
    ownerless = frame.loc[
        is_open
        & frame["severity"].eq("critical")
        & (frame["state"].eq("paused_no_owner") | frame["owner_team"].isna()),
        "finding_id",
    ]
    found = [
        ("KEV findings past their due date: remediate or accept the risk", ids.ordered(overdue_kev)),
        ("Exceptions past their expiry: renew or end them", ids.ordered(expired["finding_id"])),
        ("Open critical findings with no resolved owner: name one", ids.ordered(ownerless)),
    ]
    items = [{"what": what, "ids": ids} for what, ids in found if ids]
    items += [
        {"what": f"Checklist item {item['number']} fails: {item['item']}", "ids": list(item.get("ids") or [])}
        for item in f.checklist
        if item["status"] == "fail"
    ]
    return items


def _pct(value: float | None) -> str:
    return "not measurable" if value is None else f"{value:.1f}%"


def _days(value: float | None) -> str:
    return "no closures" if value is None else f"{value:.1f} days"


def _listing(counts: dict[str, int], labels: dict[str, str] | None = None) -> str:
    parts = [f"{n:,} {(labels or {}).get(k, k.replace('_', ' '))}" for k, n in counts.items() if n]
    return ", ".join(parts) if parts else "none"


def narrative(f: Facts) -> list[str]:
    """The leadership narrative: plain-text paragraphs whose every number comes from ``f``."""
    routed = {k: v for k, v in f.routed.items() if k != HELD}
    counts = f.checklist_counts
    failing = [f"{item['number']}. {item['item']}" for item in f.checklist if item["status"] == "fail"]
    return [
        f"Between {f.period_start} and {f.period_end}, {f.created:,} findings entered the record and "
        f"{f.routing_decisions:,} routing decisions were taken: {_listing(routed)}; {f.held_back:,} were held "
        "back (no resolved owner, an approved exception, or an asset being decommissioned).",
        f"As of {f.as_of}, {f.open_findings:,} of {f.findings_total:,} findings are open "
        f"({_listing(f.open_by_severity)}); {f.linked_open:,} open findings have a linked ticket.",
        (
            f"SLA compliance stands at {_pct(f.sla_compliance_pct)}"
            if f.sla_compliance_pct is not None
            else "No finding carries an SLA yet, so SLA compliance is not measurable"
        )
        + f": {f.sla_breached:,} findings breached their SLA, "
        f"{f.sla_overdue_open:,} of them still open past their due date. {f.kev_open:,} open findings carry a "
        f"CVE on CISA's KEV list, {f.kev_breached:,} of them past their due date (KEV SLA compliance "
        f"{_pct(f.kev_compliance_pct)}).",
        f"{f.verified_total:,} findings were closed on verification evidence in the period "
        f"({_listing(f.verified, {k: f'by {k}' for k in f.verified})}); {f.ticket_closures:,} ticket closures were "
        f"observed, and {f.closure_misses:,} findings sit behind a closed ticket without verification "
        f"(administrative closures). {f.reopened:,} verified findings were rediscovered by a later scan in the "
        f"period; the reopen rate to date is {_pct(f.reopen_rate_pct)}.",
        "Mean time from validation to verified closure for findings closed in the period: "
        + "; ".join(f"{band} {_days(f.mttr_days[band])}" for band in SEVERITIES)
        + f" (all bands "
        f"{_days(f.mttr_days['all'])}).",
        _reconciliation_sentence(f)
        + f" {f.calibrations:,} severity calibrations were made in the period, {f.calibrations_down:,} of them "
        "downward.",
        f"Governance checklist: {counts['pass']} of {len(f.checklist)} items pass, {counts['fail']} fail, "
        f"{counts['not-yet-measurable']} not yet measurable"
        + (f" (failing: {'; '.join(failing)})." if failing else "."),
        f"This report covers {f.events:,} activity-log events in the period; the log's head at the as-of "
        f"instant is seq {f.chain_head_seq:,} ({f.chain_head_hash}).",
    ]


#: How the narrative names each reconciliation category (every category with a count is named).
GAP_WORDS = {
    "routing_misses": "routing misses (policy says ticket, none linked)",
    "batch_misses": "batch misses (in a batch handoff, its batch ticket never raised)",
    "closure_misses": "administrative closures (ticket closed, finding not verified)",
    "severity_drift": "tickets whose priority drifted from the calibrated severity",
    "tickets_without_id": "tickets carrying no finding id",
    "findings_not_referenced": "linked tickets that do not carry their finding's id",
    "orphan_tickets": "orphan tickets (only unknown finding ids)",
    "stale_links": "links to tickets missing from the latest export",
    "tickets_outside_policy": "findings with a ticket the policy does not allow",
    "shared_queue_tickets": "tickets parked in a shared queue",
    "evidence_copied": "tickets carrying pasted evidence instead of the permalink",
    "reconciliation_overdue": "overdue reconciliation (the last run is older than the cadence)",
}


def _reconciliation_sentence(f: Facts) -> str:
    """Every reconciliation category with a count, in words; the overdue reconciliation last."""
    when = f.as_of[:10]
    named = [
        f"{n:,} {GAP_WORDS.get(k, k.replace('_', ' '))}"
        for k, n in f.reconciliation.items()
        if n and k != "reconciliation_overdue"
    ]
    overdue = " The reconciliation itself is overdue." if f.reconciliation.get("reconciliation_overdue") else ""
    if not named:
        return f"Reconciliation as of {when} finds no gap between the record and the tickets.{overdue}"
    return f"Reconciliation as of {when}: {'; '.join(named)}.{overdue}"


def checklist_rows(f: Facts, max_ids: int = 5) -> list[dict[str, Any]]:
    """The checklist items as :func:`handoffkit.report.display.checklist` rows: the item's summary is its evidence,
    followed by the first offending ids."""
    rows = []
    for item in f.checklist:
        ids = item.get("ids") or []
        shown = ", ".join(map(str, ids[:max_ids])) + (f" … (+{len(ids) - max_ids})" if len(ids) > max_ids else "")
        rows.append(
            {
                "item": item["item"],
                "status": item["status"],
                "evidence": item["summary"] + (f" — {shown}" if shown else ""),
            }
        )
    return rows


# ----------------------------------------------------------------------------------------- drilling


FIGURES = (
    "open_findings",
    "kev_open",
    "sla_overdue_open",
    "created",
    "verified_total",
    "reopened",
    "calibrations_down",
    "routing_misses",
    "closure_misses",
    "severity_drift",
    "orphan_tickets",
)
"""The :class:`Facts` numbers :func:`behind` can open up."""

_EVENT_FIGURES = {
    "created": "finding_created",
    "verified_total": "finding_verified_closed",
    "reopened": "finding_reopened",
    "calibrations_down": "severity_calibrated",
}


def behind(
    store: Store,
    engagement: str,
    figure: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> pd.DataFrame:
    """The findings (or tickets, for ``orphan_tickets``) behind one headline figure of :class:`Facts`.

    ``len(behind(..., figure))`` equals the figure for the same period and instant: event figures
    (``created``, ``verified_total``, ``reopened``, ``calibrations_down``) give one row per event.

    Raises:
        ConfigError: ``figure`` is not one of :data:`FIGURES`.
    """
    if figure not in FIGURES:
        close = difflib.get_close_matches(figure, FIGURES, n=1)
        raise ConfigError(
            f"figure {figure!r} cannot be drilled into"
            + (f" (did you mean {close[0]!r}?)" if close else f"; expected one of {FIGURES}")
        )
    when = replay.instant(as_of if as_of is not None else store.now())
    if figure in ("routing_misses", "closure_misses", "severity_drift", "orphan_tickets"):
        return views.mapping_gaps(store, engagement, figure, as_of=when, limit=None)
    if figure in _EVENT_FIGURES:
        return _event_rows(
            store, engagement, _EVENT_FIGURES[figure], start, end, when, down_only=figure == "calibrations_down"
        )
    frame = views.finding_list(store, engagement, when)
    is_open = ~frame["state"].isin(CLOSED_STATES)
    keep = {
        "open_findings": is_open,
        "kev_open": is_open & frame["kev"],
        "sla_overdue_open": is_open & frame["sla_status"].eq("breached"),
    }[figure]
    return frame[keep].reset_index(drop=True)


def _event_rows(
    store: Store, engagement: str, type_: str, start: Any, end: Any, when: str, *, down_only: bool
) -> pd.DataFrame:
    with store.read() as conn:
        engagements.get(conn, engagement)
        conditions = [EV.c.type == type_, *replay.window(start, end, when)]
        if down_only:
            conditions.append(replay.json_text(conn, EV.c.payload, "data", "direction") == "down")
        stmt = (
            select(EV.c.seq, EV.c.occurred_at, EV.c.actor, EV.c.finding_id, F.c.title, F.c.asset_ref, EV.c.severity)
            .join(F, F.c.finding_id == EV.c.finding_id)
            .where(EV.c.engagement == engagement, EV.c.outcome == "success", *conditions)
            .order_by(EV.c.seq)
        )
        return frames.frame(conn.execute(stmt))
