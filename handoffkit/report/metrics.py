"""Remediation metrics, as of any instant, computed in SQL over the record and its activity log.

==========================  =====================================================================
metric                      definition
==========================  =====================================================================
MTTR per band               validation → verified closure, in days: from the finding's first
                            ``finding_triaged`` event leaving it ``validated`` to its last
                            ``finding_verified_closed`` event; counted in the window its closure
                            falls in, under the band the finding had when it was closed
verified closures           ``finding_verified_closed`` events per period and evidence kind
                            (rescan, retest, commit, attestation)
administrative closures     a linked ticket is closed but the finding is not verified closed
                            (reconciliation's ``closure_misses``, as of the instant)
reopen rate                 findings reopened by a later scan ÷ findings ever verified closed
SLA compliance              :mod:`handoffkit.workflow.sla` (per band, plus KEV-listed findings)
routing-miss / drift rates  from each ``reconciliation_run`` event's counts and totals: routing
                            misses ÷ findings, severity drift ÷ tickets (cheap: one row per run)
==========================  =====================================================================

Every function takes an open connection (so a caller can compute several in one consistent read
transaction), the engagement, and ``as_of`` as canonical UTC text (:func:`handoffkit.record.replay.instant`);
``start`` / ``end`` are inclusive days bounding when the counted events happened.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, select

from handoffkit import reconcile
from handoffkit.record import _memo, frames, replay, schema
from handoffkit.record.model import SEVERITIES, VERIFICATION_KINDS

EV = schema.events
MTTR_COLUMNS = ("band", "closed", "mean_days", "median_days")
TREND_FIELDS = ("routing_misses", "severity_drift", "closure_misses", "orphan_tickets")


def mttr_durations(
    conn: Connection,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: str | None = None,
) -> pd.DataFrame:
    """One row per finding whose last verified closure (at or before ``as_of``) falls in the window.

    Returns:
        Columns ``finding_id``, ``band``, ``validated_at``, ``closed_at`` (UTC instants) and ``days``.
    """
    ev = EV.c
    closures = replay.finding_events(engagement, as_of, ev.type == "finding_verified_closed")
    # Each finding's last closure, ranked in the covering events index: its instant and band come with it,
    # where joining the closing event back by ``seq`` read one row of the (large) table per closed finding.
    ranked = (
        select(
            ev.finding_id,
            ev.severity.label("band"),
            ev.occurred_at.label("closed_at"),
            func.row_number().over(partition_by=ev.finding_id, order_by=ev.seq.desc()).label("latest"),
        )
        .where(*closures)
        .subquery("c")
    )
    closes = select(ranked.c.finding_id, ranked.c.band, ranked.c.closed_at).where(
        ranked.c.latest == 1, *replay.window(start, end, None, column=ranked.c.closed_at)
    )
    # Their first validations, joined here, not in SQL: a join of the two grouped subqueries gave SQLite,
    # on a store without ``ANALYZE`` statistics, a scan of one inside the other.
    # ``IN`` a subquery has one plan on every store: a probe of its rows, collected once. The findings with
    # any closure in the window (a range of the index, not the ranking again) hold every one merged.
    closed_in_window = select(ev.finding_id).where(*closures, *replay.window(start, end, None))
    validations = (
        select(ev.finding_id, func.min(ev.occurred_at).label("validated_at"))
        .where(
            *replay.finding_events(
                engagement,
                as_of,
                ev.type == "finding_triaged",
                ev.state == "validated",
                ev.finding_id.in_(closed_in_window),
            )
        )
        .group_by(ev.finding_id)
    )
    closed = frames.driver_frame(conn, closes, ["finding_id", "band", "closed_at"])
    valid = frames.driver_frame(conn, validations, ["finding_id", "validated_at"])
    df = closed.merge(valid, on="finding_id")[["finding_id", "band", "validated_at", "closed_at"]]
    for col in ("validated_at", "closed_at"):
        df[col] = pd.to_datetime(df[col], format="ISO8601", utc=True)
    df["days"] = (df["closed_at"] - df["validated_at"]).dt.total_seconds() / 86_400
    return df


def mttr(
    conn: Connection,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: str | None = None,
) -> pd.DataFrame:
    """Mean and median days from validation to verified closure, per band (and ``all``).

    Returns:
        :data:`MTTR_COLUMNS`, one row per band in severity order then ``all``; days are ``NaN``
        for a band with no closure in the window.
    """
    df = _memo.memo(
        conn,
        "mttr",
        (engagement, replay.day_start(start), replay.day_start(end), as_of),
        lambda: mttr_durations(conn, engagement, start=start, end=end, as_of=as_of),
    )
    grouped = df.groupby("band")["days"].agg(["count", "mean", "median"]).reindex(list(SEVERITIES))
    grouped.loc["all"] = [len(df), df["days"].mean(), df["days"].median()]
    out = grouped.reset_index(names="band").rename(
        columns={"count": "closed", "mean": "mean_days", "median": "median_days"}
    )
    out["closed"] = out["closed"].fillna(0).astype("int64")
    out[["mean_days", "median_days"]] = out[["mean_days", "median_days"]].astype("float64").round(1)
    return out[list(MTTR_COLUMNS)]


def verified_closures(
    conn: Connection,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: str | None = None,
    period: str = "month",
) -> pd.DataFrame:
    """Verified closures per period and evidence kind: columns ``period``, ``kind``, ``count``."""
    key = replay.period_key(EV.c.occurred_at, period).label("period")
    kind = replay.json_text(conn, EV.c.payload, "data", "kind").label("kind")
    return replay.event_counts(
        conn, engagement, [EV.c.type == "finding_verified_closed", *replay.window(start, end, as_of)], [key, kind]
    )


def closures_by_kind(
    conn: Connection,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: str | None = None,
) -> dict[str, int]:
    """Verified closures in the window per evidence kind (every accepted kind present, zero or not)."""
    df = verified_closures(conn, engagement, start=start, end=end, as_of=as_of)
    totals = df.groupby("kind")["count"].sum()
    return {kind: int(totals.get(kind, 0)) for kind in VERIFICATION_KINDS}


def count_events(
    conn: Connection,
    engagement: str,
    type_: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: str | None = None,
    distinct_findings: bool = False,
) -> int:
    """How many successful ``type_`` events (or distinct findings with one) fall in the window."""
    what = func.count(EV.c.finding_id.distinct()) if distinct_findings else func.count()
    stmt = select(what).where(
        EV.c.engagement == engagement, EV.c.type == type_, EV.c.outcome == "success", *replay.window(start, end, as_of)
    )
    return int(conn.execute(stmt).scalar() or 0)


def gaps(conn: Connection, engagement: str, as_of: str) -> reconcile.Reconciliation:
    """Reconciliation's categories as of ``as_of`` (current tables when nothing changed since)."""
    return _memo.memo(
        conn,
        "gaps",
        (engagement, as_of),
        lambda: reconcile.gaps(conn, engagement, _past(conn, engagement, as_of), now=schema.parse_ts(as_of)),
    )


def gap_ids(conn: Connection, engagement: str, as_of: str, category: str) -> list[str]:
    """One category's ids as of ``as_of``: :func:`gaps`' list when this process holds it, else from the
    one query that finds the category (a page showing one list need not reconcile everything)."""
    full = _memo.remembered(conn, "gaps", (engagement, as_of))
    if full is not None:
        return full.ids[category]
    return _memo.memo(
        conn,
        f"gaps:{category}",
        (engagement, as_of),
        lambda: reconcile.category_ids(conn, engagement, category, _past(conn, engagement, as_of)),
    )


def _past(conn: Connection, engagement: str, as_of: str) -> datetime | None:
    """``as_of`` for reconciliation, or None when nothing changed since (the current tables answer)."""
    return None if replay.settled(conn, engagement, as_of) else schema.parse_ts(as_of)


def reopen_rate(conn: Connection, engagement: str, *, as_of: str | None = None) -> dict[str, Any]:
    """``reopened`` findings ÷ findings ever ``verified`` closed (as of), as ``rate_pct`` (None if none)."""
    verified = count_events(conn, engagement, "finding_verified_closed", as_of=as_of, distinct_findings=True)
    reopened = count_events(conn, engagement, "finding_reopened", as_of=as_of, distinct_findings=True)
    return {
        "reopened": reopened,
        "verified": verified,
        "rate_pct": round(100 * reopened / verified, 1) if verified else None,
    }


def reconciliation_trend(
    conn: Connection,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: str | None = None,
) -> pd.DataFrame:
    """One row per ``reconciliation_run`` in the window (a retrospective run, which reconciled another
    instant than the one it ran at, left out): when, its headline counts, totals and rates.

    Returns:
        Columns ``occurred_at``, ``as_of``, :data:`TREND_FIELDS`, ``findings``, ``tickets``,
        ``routing_miss_rate_pct`` (routing misses ÷ findings) and ``drift_rate_pct`` (drift ÷ tickets).
    """
    fields = [replay.json_text(conn, EV.c.payload, "data", "counts", name).label(name) for name in TREND_FIELDS]
    totals = [
        replay.json_text(conn, EV.c.payload, "data", "totals", name).label(name) for name in ("findings", "tickets")
    ]
    stmt = (
        select(EV.c.occurred_at, replay.json_text(conn, EV.c.payload, "data", "as_of").label("as_of"), *fields, *totals)
        .where(
            EV.c.engagement == engagement,
            EV.c.type == "reconciliation_run",
            EV.c.outcome == "success",
            *replay.window(start, end, as_of),
            func.coalesce(replay.json_text(conn, EV.c.payload, "data", "retrospective"), "0").not_in(("1", "true")),
        )
        .order_by(EV.c.seq)
    )
    df = frames.frame(conn.execute(stmt))
    numeric = [*TREND_FIELDS, "findings", "tickets"]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce").fillna(0).astype("int64")
    df["routing_miss_rate_pct"] = (100 * df["routing_misses"] / df["findings"].where(df["findings"] > 0)).round(2)
    df["drift_rate_pct"] = (100 * df["severity_drift"] / df["tickets"].where(df["tickets"] > 0)).round(2)
    return df
