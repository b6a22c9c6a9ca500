"""The five reconciliation views: frames as of any instant, each aggregated in SQL before it is charted.

Each view is a function returning a DataFrame, as of any instant, aggregated in SQL (``GROUP BY`` a
period prefix of the text timestamps) before anything is charted, so a record of millions of events
charts as a few hundred rows:

1. :func:`routing_decisions` — findings created vs routing decisions per disposition, per period
   (and :func:`routing_decisions_taken`, the decisions people took on single findings);
2. :func:`ticket_mapping` — linked open findings, routing misses, closure-verification misses,
   orphan tickets, severity drift (and :func:`mapping_trend` over reconciliation runs);
3. :func:`severity_calibration` — every calibration with who / when / from / to / why, and
   :func:`calibration_trend` (downward drift per period); :func:`ticket_updates` — the updates the
   tickets are owed since the record moved, and those handed over;
4. :func:`closure_verification` — verified closures by evidence kind vs ticket closures observed,
   per period (MTTR and reopen rate in :mod:`handoffkit.report.metrics`);
5. :func:`activity` — events per type and outcome with their control mapping (the CSV itself is
   :func:`handoffkit.report.log_export.export_log`).

The figures of a period, the headline and the narrative are :mod:`handoffkit.report.facts`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, exists, func, select

from handoffkit import reconcile
from handoffkit.errors import ConfigError
from handoffkit.record import _memo, engagements, frames, ids, replay, schema
from handoffkit.record.model import CLOSED_STATES, HOLDS
from handoffkit.record.store import Store, sqlite_file
from handoffkit.report import controls, log_export, metrics
from handoffkit.tickets import updates
from handoffkit.workflow import sla

EV, F = schema.events, schema.findings
PERIODS = ("week", "month", "quarter")
DISPOSITION_SERIES = ("ticket", "sprint_backlog", "quarterly_cycle", "security_record_only")
HELD = "held_back"
ROUTING_SERIES = ("created", *DISPOSITION_SERIES, HELD)
OUTCOMES = ("success", "denied", "failure")
MAPPING_CATEGORIES = {
    "linked": "open findings with a linked ticket",
    "routing_misses": "policy says ticket, no ticket linked",
    "batch_misses": "in a batch handoff, its batch ticket never raised (no ticket linked)",
    "closure_misses": "ticket closed, finding not verified (administrative closure)",
    "orphan_tickets": "tickets carrying only finding ids the record does not know",
    "tickets_without_id": "tickets carrying no finding id at all",
    "severity_drift": "ticket priority differs from the calibrated severity",
}


# ------------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Parameters:
    """Validated notebook parameters, with the store they name opened."""

    db: str
    engagement: str
    period_start: date
    period_end: date
    as_of: str
    store: Store = field(repr=False, compare=False)


def parameters(
    db: str, engagement: str, period_start: str | date, period_end: str | date, as_of: str | datetime | None = None
) -> Parameters:
    """Check a notebook's parameters and open the record they name.

    Args:
        db: database URL (a relative SQLite path is relative to the working directory).
        engagement: engagement key.
        period_start, period_end: the reporting period, inclusive days ``YYYY-MM-DD``.
        as_of: the instant the report describes (``YYYY-MM-DD`` = end of that day, UTC); None = now.

    Raises:
        ConfigError: a value is malformed, the period is reversed, the SQLite file is missing or the
            engagement does not exist (the message names the parameter and offers close matches).
    """
    start, end = _day_param("period_start", period_start), _day_param("period_end", period_end)
    if start > end:
        raise ConfigError(f"parameters: period_start {start} is after period_end {end}")
    _check_db(db)
    store = Store(db, create=False)
    try:
        when = replay.instant(as_of) if as_of not in (None, "") else replay.instant(store.now())
    except ValueError as exc:
        raise ConfigError(f"parameter as_of={as_of!r}: expected YYYY-MM-DD or an ISO 8601 instant") from exc
    with store.read() as conn:
        known = list(conn.execute(select(schema.engagements.c.key).order_by(schema.engagements.c.key)).scalars())
    if engagement not in known:
        close = difflib.get_close_matches(str(engagement), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"parameter engagement={engagement!r}: no such engagement in {store.safe_url}{hint}; "
            f"known: {', '.join(known) or 'none'}"
        )
    return Parameters(db, engagement, start, end, when, store)


def _day_param(name: str, value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"parameter {name}={value!r}: expected a date YYYY-MM-DD") from exc


def _check_db(db: str) -> None:
    """A SQLite file must exist: opening a missing one would silently create an empty record."""
    if not isinstance(db, str) or not db:
        raise ConfigError(f"parameter db={db!r}: expected a database URL such as sqlite:///../handoffkit.db")
    file = sqlite_file(db)
    if file is not None and not Path(file).is_file():
        raise ConfigError(
            f"parameter db={db!r}: no database file {Path(file).resolve()} "
            "(run `make demo`, or pass the URL of an existing record)"
        )


# ------------------------------------------------------------------------------------------ periods


def _period_frame(df: pd.DataFrame, period: str) -> pd.DataFrame:
    """Roll ``period`` (a day or month text key from SQL) up to week / month / quarter labels, re-summed."""
    if period not in PERIODS:
        raise ConfigError(f"period {period!r}: expected one of {', '.join(PERIODS)}")
    if df.empty:
        return df
    out = df.copy()
    stamp = pd.to_datetime(out["period"], format="%Y-%m-%d" if period == "week" else "%Y-%m")
    if period == "week":
        out["period"] = (stamp - pd.to_timedelta(stamp.dt.day_of_week, unit="D")).dt.strftime("%Y-%m-%d")
    elif period == "quarter":
        out["period"] = stamp.dt.year.astype(str) + "-Q" + stamp.dt.quarter.astype(str)
    keys = [c for c in out.columns if c != "count"]
    return out.groupby(keys, as_index=False, sort=True)["count"].sum()


def _sql_period(period: str) -> str:
    return "day" if period == "week" else "month"


def _when(store: Store, as_of: datetime | date | str | None) -> str:
    return replay.instant(as_of if as_of is not None else store.now())


# ---------------------------------------------------------------------------------------- 1 routing


def routing_decisions(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    period: str = "month",
) -> pd.DataFrame:
    """Findings created and routing decisions taken, per period.

    Returns:
        Long frame ``period``, ``series``, ``count``; series are :data:`ROUTING_SERIES`: ``created``,
        one per disposition, and ``held_back`` (paused without owner, exception, decommissioning).
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        # The leadership page and the routing page chart the same frame (shared through the memo).
        key = (engagement, replay.day_start(start), replay.day_start(end), when, period)
        return _memo.memo(conn, "routing_decisions", key, lambda: _routing_decisions(conn, *key)).copy()


def _routing_decisions(conn: Connection, engagement: str, start: Any, end: Any, when: str, period: str) -> pd.DataFrame:
    key = replay.period_key(EV.c.occurred_at, _sql_period(period)).label("period")
    created = replay.event_counts(
        conn, engagement, [EV.c.type == "finding_created", *replay.window(start, end, when)], [key]
    )
    routed = replay.event_counts(
        conn,
        engagement,
        [EV.c.type == "finding_routed", *replay.window(start, end, when)],
        [key, EV.c.disposition.label("series")],
    )
    created["series"] = "created"
    routed["series"] = routed["series"].where(~routed["series"].isin(HOLDS), HELD)
    df = pd.concat([created[["period", "series", "count"]], routed[["period", "series", "count"]]], ignore_index=True)
    return _ordered(_period_frame(df, period), "series", ROUTING_SERIES)


def routing_summary(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> dict[str, int]:
    """Findings created and routing decisions per disposition (holds as ``held_back``) in the window.

    Returns:
        ``{"created": n, "ticket": n, "sprint_backlog": n, "quarterly_cycle": n, "security_record_only": n,
        "held_back": n}`` — the same numbers the facts report (:func:`handoffkit.report.facts.compute`).
    """
    with store.read() as conn:
        engagements.get(conn, engagement)
        return routing_counts(conn, engagement, start, end, _when(store, as_of))


DECISION_COLUMNS = (
    "finding_id",
    "decision",
    "owner_team",
    "owner_role",
    "owner_name",
    "until",
    "in_force",
    "reason",
    "actor",
    "decided_at",
)


def routing_decisions_taken(
    store: Store, engagement: str, *, as_of: datetime | date | str | None = None
) -> pd.DataFrame:
    """Each finding's last routing decision taken by a person (``handoffkit decide``) as of an instant:
    an owner or a hold, with its reason, who took it and when, and ``in_force`` (a hold whose day has
    come no longer holds); oldest first.

    Returns:
        Columns :data:`DECISION_COLUMNS`.
    """
    from handoffkit.workflow import decisions

    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        df = decisions.log(conn, engagement, when)
    df = df.rename(columns={"occurred_at": "decided_at"}).sort_values("decided_at", kind="stable")
    df["in_force"] = ~(df["decision"].eq("hold") & (df["until"].fillna("") <= when[:10]))
    return df[list(DECISION_COLUMNS)].reset_index(drop=True)


def _ordered(df: pd.DataFrame, column: str, order: tuple[str, ...]) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(
            {"period": pd.Series(dtype=str), column: pd.Series(dtype=str), "count": pd.Series(dtype="int64")}
        )
    rank = {name: i for i, name in enumerate(order)}
    out = df.assign(_rank=df[column].map(rank).fillna(len(order)))
    return (
        out.sort_values(["period", "_rank", column])
        .drop(columns="_rank")
        .reset_index(drop=True)
        .astype({"count": "int64"})
    )


def pivot(df: pd.DataFrame, column: str = "series") -> pd.DataFrame:
    """A long ``period, <column>, count`` frame as a table: one row per period, one column per series."""
    if df.empty:
        return pd.DataFrame({"period": pd.Series(dtype=str)})
    order = list(dict.fromkeys(df[column]))
    wide = df.pivot_table(index="period", columns=column, values="count", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=order, fill_value=0).reset_index()
    wide.columns.name = None
    return wide


# ---------------------------------------------------------------------------------------- 2 mapping


def linked_open(conn: Connection, engagement: str, as_of: str, frame: pd.DataFrame | None = None) -> int:
    """Open findings (as of) with at least one active ticket link (as of); ``frame`` is the findings
    frame as of then, when the caller holds it. The facts and the mapping chart both show this number."""
    return _memo.memo(conn, "linked_open", (engagement, as_of), lambda: _linked_open(conn, engagement, as_of, frame))


def _linked_open(conn: Connection, engagement: str, as_of: str, frame: pd.DataFrame | None) -> int:
    if frame is None and replay.settled(conn, engagement, as_of):
        # The current tables answer: one count instead of a frame of every finding.
        f, lk = schema.findings.c, schema.links.c
        linked = exists().where(lk.finding_id == f.finding_id, lk.active)
        stmt = select(func.count()).where(f.engagement == engagement, f.state.not_in(CLOSED_STATES), linked)
        return int(conn.execute(stmt).scalar() or 0)
    frame = frame if frame is not None else replay.state_frame(conn, engagement, as_of)
    open_ids = frame.loc[~frame["state"].isin(CLOSED_STATES), "finding_id"]
    return int(open_ids.isin(_linked_ids(conn, engagement, as_of)).sum())


def _linked_ids(conn: Connection, engagement: str, as_of: str) -> pd.Series:
    if replay.settled(conn, engagement, as_of):
        lk = schema.links.c
        stmt = select(lk.finding_id).where(lk.engagement == engagement, lk.active).distinct()
    else:
        last = (
            select(EV.c.finding_id, EV.c.ticket_key, func.max(EV.c.seq).label("seq"))
            .where(
                EV.c.engagement == engagement,
                EV.c.type.in_(("link_added", "link_removed")),
                EV.c.outcome == "success",
                EV.c.occurred_at <= as_of,
            )
            .group_by(EV.c.finding_id, EV.c.ticket_key)
            .subquery()
        )
        e = EV.alias("e")
        stmt = select(e.c.finding_id).join(last, last.c.seq == e.c.seq).where(e.c.type == "link_added").distinct()
    return pd.Series(list(conn.execute(stmt).scalars()), dtype=object)


def ticket_mapping(store: Store, engagement: str, *, as_of: datetime | date | str | None = None) -> pd.DataFrame:
    """The ticket-to-finding mapping as of an instant: one row per :data:`MAPPING_CATEGORIES` entry.

    Returns:
        Columns ``category``, ``count``, ``meaning``.
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        gaps = metrics.gaps(conn, engagement, when)
        linked = linked_open(conn, engagement, when)
    counts = {"linked": linked, **{k: gaps.counts[k] for k in MAPPING_CATEGORIES if k != "linked"}}
    return pd.DataFrame(
        {
            "category": list(MAPPING_CATEGORIES),
            "count": [counts[k] for k in MAPPING_CATEGORIES],
            "meaning": list(MAPPING_CATEGORIES.values()),
        }
    )


BATCH_COLUMNS = (
    "batch_id",
    "band",
    "period",
    "owner_team",
    "issued_at",
    "findings",
    "tickets",
    "batch_misses",
    "outside_policy",
)


def batches(store: Store, engagement: str, *, as_of: datetime | date | str | None = None) -> pd.DataFrame:
    """The batch handoffs as of an instant (``payload --batch``): one row per batch issued by then.

    Returns:
        Columns :data:`BATCH_COLUMNS`: the batch, its band, period and owner team, when it was last
        issued, its members then (from their ``finding_batched`` events), the batch tickets naming it (the
        latest snapshot of each observed by then), and how many of its members were then in ``batch_misses``
        and in ``tickets_outside_policy`` (a ticket of theirs other than their batch's, or naming another batch).
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        issued = _batches_issued(conn, engagement, when)
        members = _batch_members(conn, engagement, when)
        tickets = _batch_tickets(conn, engagement, when)
        if issued.empty:
            return pd.DataFrame(columns=list(BATCH_COLUMNS))
        missed = metrics.gap_ids(conn, engagement, when, "batch_misses")
        outside = metrics.gap_ids(conn, engagement, when, "tickets_outside_policy")
    members["missed"] = members["finding_id"].isin(missed)
    members["outside"] = members["finding_id"].isin(outside)
    per = members.groupby("batch_id").agg(
        findings=("finding_id", "size"), batch_misses=("missed", "sum"), outside_policy=("outside", "sum")
    )
    keys = tickets.groupby("batch_id")["key"].agg(lambda k: ", ".join(ids.ordered(k)))
    df = issued.join(per, on="batch_id").join(keys.rename("tickets"), on="batch_id")
    parts = df["batch_id"].str.extract(r"^batch-(?P<band>[a-z]+)-(?P<period>[0-9]{4}-(?:[0-9]{2}-[0-9]{2}|Q[1-4]))-")
    df = df.assign(band=parts["band"], period=parts["period"])
    counts = ["findings", "batch_misses", "outside_policy"]
    df[counts] = df[counts].fillna(0).astype(int)
    df["tickets"] = df["tickets"].fillna("")
    return df.sort_values(["period", "band", "owner_team"]).reset_index(drop=True)[list(BATCH_COLUMNS)]


def batches_caption(df: pd.DataFrame) -> str:
    """One sentence about :func:`batches`' frame: how many batch tickets carry how many findings."""
    if df.empty:
        return "No batch handoff issued by then."
    raised = df[df["tickets"].ne("")]
    tickets = sum(len(k.split(", ")) for k in raised["tickets"])
    missed, outside = int(df["batch_misses"].sum()), int(df["outside_policy"].sum())
    return (
        f"{len(df):,} batches of {int(df['findings'].sum()):,} findings; {tickets:,} batch tickets raised for "
        f"{len(raised):,} of them, carrying {int(raised['findings'].sum()):,} findings; "
        f"{missed:,} findings in a batch with no ticket linked (batch misses); "
        f"{outside:,} with a ticket outside the policy."
    )


def _batches_issued(conn: Connection, engagement: str, when: str) -> pd.DataFrame:
    """Each batch issued by ``when``: its id, owner team and the instant it was last issued."""
    bid = replay.json_text(conn, EV.c.payload, "data", "batch_id")
    team = replay.json_text(conn, EV.c.payload, "data", "owner_team")
    stmt = (
        select(bid.label("batch_id"), func.max(team).label("owner_team"), func.max(EV.c.occurred_at))
        .where(EV.c.engagement == engagement, EV.c.type == "batch_issued", EV.c.outcome == "success")
        .where(*replay.window(None, None, when))
        .group_by(bid)
    )
    return frames.frame(conn.execute(stmt), ["batch_id", "owner_team", "issued_at"])


def _batch_members(conn: Connection, engagement: str, when: str) -> pd.DataFrame:
    """Each finding's batch as of ``when``: what its last ``finding_batched`` event by then set."""
    last = replay.last_events(engagement, when, EV.c.type == "finding_batched", name="batched_last")
    e = EV.alias("batched_e")
    bid = replay.json_text(conn, e.c.payload, "data", "set", "batch_id")
    rows = conn.execute(select(e.c.finding_id, bid).join(last, last.c.seq == e.c.seq))
    return frames.frame(rows, ["finding_id", "batch_id"])


def _batch_tickets(conn: Connection, engagement: str, when: str) -> pd.DataFrame:
    """The tickets naming a batch, each as its latest snapshot observed by ``when`` showed it."""
    t = schema.tickets.c
    latest = (
        select(func.max(t.snapshot_id).label("sid"))
        .where(t.engagement == engagement, t.observed_at <= when)
        .group_by(t.system, t.key)
        .subquery()
    )
    stmt = select(t.batch_id, t.key).join(latest, latest.c.sid == t.snapshot_id).where(t.batch_id.is_not(None))
    return frames.frame(conn.execute(stmt), ["batch_id", "key"])


def mapping_trend(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> pd.DataFrame:
    """Routing-miss, closure-miss, drift and orphan counts (and rates) at each reconciliation run."""
    with store.read() as conn:
        engagements.get(conn, engagement)
        return metrics.reconciliation_trend(conn, engagement, start=start, end=end, as_of=_when(store, as_of))


def mapping_gaps(
    store: Store, engagement: str, category: str, *, as_of: datetime | date | str | None = None, limit: int | None = 50
) -> pd.DataFrame:
    """The findings or tickets behind one reconciliation category (titles as the record holds them).

    Raises:
        ConfigError: an unknown category (the message offers the closest known one).
    """
    known = (*reconcile.FINDING_CATEGORIES, *reconcile.TICKET_CATEGORIES)
    if category not in known:
        close = difflib.get_close_matches(category, known, n=1)
        raise ConfigError(
            f"category {category!r} is not a reconciliation category"
            + (f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(known)}")
        )
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        ids = metrics.gap_ids(conn, engagement, when, category)[: limit or None]
        if category == "severity_drift":  # the drift is between two values: show the ticket's side too
            rows = _finding_rows(conn, engagement, when, ids)
            rows["finding_id"] = rows["finding_id"].astype(object)  # an empty frame's column may be float
            return rows.merge(_ticket_priorities(conn, engagement, when, ids), on="finding_id", how="left")
        if category in reconcile.FINDING_CATEGORIES:
            return _finding_rows(conn, engagement, when, ids)
        return _ticket_rows(conn, engagement, when, ids)


def _finding_rows(conn: Connection, engagement: str, when: str, ids: list[str]) -> pd.DataFrame:
    """The findings as of ``when`` (state, owner, due date from the log), with their title and asset."""
    state = replay.state_frame(conn, engagement, when)
    state = state[state["finding_id"].isin(ids)]
    details = []
    for start in range(0, len(ids), 5_000):  # bounded IN lists, one query per 5,000 ids
        chunk = ids[start : start + 5_000]
        details += conn.execute(select(F.c.finding_id, F.c.title, F.c.asset_ref).where(F.c.finding_id.in_(chunk)))
    df = state.merge(frames.frame(details, ["finding_id", "title", "asset_ref"]), on="finding_id", how="left")
    df["sla_due"] = df["sla_due"].dt.strftime("%Y-%m-%d").where(df["sla_due"].notna(), None)
    cols = ["finding_id", "title", "asset_ref", "severity", "state", "disposition", "owner_team", "sla_due"]
    order = {fid: i for i, fid in enumerate(ids)}
    return df[cols].sort_values("finding_id", key=lambda s: s.map(order)).reset_index(drop=True)


def _ticket_priorities(conn: Connection, engagement: str, when: str, ids: list[str]) -> pd.DataFrame:
    """Per finding, the tickets carrying it as last observed by ``when``, with their priority and its band:
    ``SEC-12: Low (low)``; one finding may have several."""
    t, tf = schema.tickets.c, schema.ticket_findings.c
    latest = (
        select(func.max(t.snapshot_id).label("sid"))
        .where(t.engagement == engagement, t.observed_at <= when)
        .group_by(t.system, t.key)
        .subquery()
    )
    rows: list[Any] = []
    for start in range(0, len(ids), 5_000):
        rows += conn.execute(
            select(tf.finding_id, t.key, t.priority, t.priority_band)
            .join(latest, latest.c.sid == tf.snapshot_id)
            .join(schema.tickets, t.snapshot_id == tf.snapshot_id)
            .where(tf.finding_id.in_(ids[start : start + 5_000]))
            .order_by(tf.finding_id, t.system, t.key)
        )
    said: dict[str, list[str]] = {}
    for fid, key, priority, band in rows:
        said.setdefault(fid, []).append(f"{key}: {priority or 'no priority'}" + (f" ({band})" if band else ""))
    return pd.DataFrame(
        {
            "finding_id": pd.Series(list(said), dtype=object),
            "ticket_priority": pd.Series(["; ".join(v) for v in said.values()], dtype=object),
        }
    )


def _ticket_rows(conn: Connection, engagement: str, when: str, keys: list[str]) -> pd.DataFrame:
    """Each ticket as its latest snapshot observed by ``when`` showed it."""
    t = schema.tickets.c
    latest = (
        select(func.max(t.snapshot_id).label("sid"))
        .where(t.engagement == engagement, t.observed_at <= when, t.key.in_(keys or [""]))
        .group_by(t.system, t.key)
        .subquery()
    )
    stmt = (
        select(t.system, t.key, t.title, t.status, t.priority, t.assignee, t.finding_ids)
        .join(latest, latest.c.sid == t.snapshot_id)
        .order_by(t.system, t.key)
    )
    return frames.frame(conn.execute(stmt))


# ------------------------------------------------------------------------------------ 3 calibration


CALIBRATION_COLUMNS = ("seq", "occurred_at", "actor", "finding_id", "from", "to", "direction", "reason", "base_vector")


def severity_calibration(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    direction: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Every severity calibration in the window: who, when, which finding, from, to, direction, why.

    Args:
        direction: only ``up`` / ``down`` / ``same`` changes (None: all).
        limit: only the latest ``limit`` changes (newest first); None: all, oldest first.

    Returns:
        Columns :data:`CALIBRATION_COLUMNS`.
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        direction_col = replay.json_text(conn, EV.c.payload, "data", "direction")
        stmt = select(
            EV.c.seq,
            EV.c.occurred_at,
            EV.c.actor,
            EV.c.finding_id,
            replay.json_text(conn, EV.c.payload, "data", "from", "severity").label("from"),
            EV.c.severity.label("to"),
            direction_col.label("direction"),
            replay.json_text(conn, EV.c.payload, "data", "reason").label("reason"),
            replay.json_text(conn, EV.c.payload, "data", "base_vector").label("base_vector"),
        ).where(
            EV.c.engagement == engagement,
            EV.c.type == "severity_calibrated",
            EV.c.outcome == "success",
            *replay.window(start, end, when),
        )
        if direction is not None:
            stmt = stmt.where(direction_col == direction)
        stmt = stmt.order_by(EV.c.seq.desc()).limit(limit) if limit else stmt.order_by(EV.c.seq)
        df = frames.frame(conn.execute(stmt), list(CALIBRATION_COLUMNS))
    # a calibration that only changed the vector keeps its band: "from" is then the band it kept
    df["from"] = df["from"].fillna(df["to"])
    return df


def calibration_trend(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    period: str = "month",
) -> pd.DataFrame:
    """Calibrations per period and direction (``up`` / ``down`` / ``same``): ``period, direction, count``."""
    when = _when(store, as_of)
    key = replay.period_key(EV.c.occurred_at, _sql_period(period)).label("period")
    with store.read() as conn:
        engagements.get(conn, engagement)
        direction = replay.json_text(conn, EV.c.payload, "data", "direction").label("direction")
        df = replay.event_counts(
            conn, engagement, [EV.c.type == "severity_calibrated", *replay.window(start, end, when)], [key, direction]
        )
    return _ordered(_period_frame(df, period), "direction", ("down", "up", "same"))


UPDATES_OWED_COLUMNS = ["finding_id", "ticket_key", "system", "field", "handed_over", "record", "cause", "seq"]
UPDATES_ISSUED_COLUMNS = ["occurred_at", "finding_id", "ticket_key", "system", "field", "old", "new", "cause", "via"]


def ticket_updates(
    store: Store,
    engagement: str,
    *,
    handed_over: bool = False,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> pd.DataFrame:
    """The ticket updates owed as of ``as_of`` (the record moved after the handoff: a recalibration, a due
    date, a KEV match; :mod:`handoffkit.tickets.updates`), or with ``handed_over`` those handed over in the
    window (``payload --updates`` or ``push``).

    Returns:
        Columns :data:`UPDATES_OWED_COLUMNS` (``seq``: the event that moved the record), or
        :data:`UPDATES_ISSUED_COLUMNS`.
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        if not handed_over:
            owed = updates.owed(conn, engagement, as_of=when).rename(columns={"cause_seq": "seq"})
            return owed[UPDATES_OWED_COLUMNS]
        done = updates.handed_over(conn, engagement, when)
    day = done["occurred_at"].str.slice(0, 10)
    keep = (day >= (replay.day_start(start) or "")) & (day <= (str(end) if end else "9999"))
    return done.loc[keep, UPDATES_ISSUED_COLUMNS].reset_index(drop=True)


def ticket_updates_summary(
    store: Store, engagement: str, *, as_of: datetime | date | str | None = None
) -> pd.DataFrame:
    """Per ticket system and field: updates ``owed`` as of ``as_of`` and ``handed_over`` up to it."""
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        return updates.summary(conn, engagement, when)


# --------------------------------------------------------------------------------------- 4 closure


CLOSURE_SERIES = ("rescan", "retest", "commit", "attestation", "ticket_closed")


def closure_verification(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    period: str = "month",
) -> pd.DataFrame:
    """Verified closures per period and evidence kind, beside ticket closures observed per period.

    Returns:
        Long frame ``period``, ``series``, ``count``; series are the evidence kinds and
        ``ticket_closed`` (a ticket reached *done*: a routing event, not a closure).
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        # The leadership page and the closure page chart the same frame (shared through the memo).
        key = (engagement, replay.day_start(start), replay.day_start(end), when, period)
        return _memo.memo(conn, "closure_verification", key, lambda: _closure_verification(conn, *key)).copy()


def _closure_verification(
    conn: Connection, engagement: str, start: Any, end: Any, when: str, period: str
) -> pd.DataFrame:
    key = replay.period_key(EV.c.occurred_at, _sql_period(period))
    verified = metrics.verified_closures(
        conn, engagement, start=start, end=end, as_of=when, period=_sql_period(period)
    ).rename(columns={"kind": "series"})
    tickets = replay.event_counts(
        conn,
        engagement,
        [EV.c.type == "ticket_closed_observed", *replay.window(start, end, when)],
        [key.label("period")],
    )
    tickets["series"] = "ticket_closed"
    df = pd.concat([verified, tickets[["period", "series", "count"]]], ignore_index=True)
    return _ordered(_period_frame(df, period), "series", CLOSURE_SERIES)


def closure_summary(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> pd.DataFrame:
    """Verified closures in the window by evidence kind, then the administrative closures as of the instant.

    Returns:
        Columns ``closure``, ``count``, ``meaning``.
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        kinds = metrics.closures_by_kind(conn, engagement, start=start, end=end, as_of=when)
        administrative = len(metrics.gap_ids(conn, engagement, when, "closure_misses"))
    rows = [(f"verified: {k}", n, "closed on verification evidence in the period") for k, n in kinds.items()]
    rows.append(("administrative", administrative, "ticket closed, finding not verified (as of)"))
    return pd.DataFrame(rows, columns=["closure", "count", "meaning"])


def mttr(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> pd.DataFrame:
    """:func:`handoffkit.report.metrics.mttr` on the store (closures in the window, as of the instant)."""
    with store.read() as conn:
        engagements.get(conn, engagement)
        return metrics.mttr(conn, engagement, start=start, end=end, as_of=_when(store, as_of))


def reopen_rate(store: Store, engagement: str, *, as_of: datetime | date | str | None = None) -> dict[str, Any]:
    """:func:`handoffkit.report.metrics.reopen_rate` on the store."""
    with store.read() as conn:
        engagements.get(conn, engagement)
        return metrics.reopen_rate(conn, engagement, as_of=_when(store, as_of))


# -------------------------------------------------------------------------------------- 5 activity


def activity(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
) -> pd.DataFrame:
    """Exported events per type, detail and outcome with their control mapping (the CSV's rows, aggregated).

    Returns:
        Columns ``type``, ``detail`` (the evidence kind of a verified closure, else empty), ``outcome``,
        ``count`` and one column per framework in :data:`controls.FRAMEWORKS`.
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        window = log_export.conditions(engagement, start=start, end=end, as_of=when)
        plain = frames.frame(
            conn.execute(
                select(EV.c.type, EV.c.outcome, func.count().label("count"))
                .where(*window, EV.c.type.not_in(controls.DETAILED))
                .group_by(EV.c.type, EV.c.outcome)
            ),
            ["type", "outcome", "count"],
        ).assign(detail="")
        detail = replay.json_text(conn, EV.c.payload, "data", log_export.DETAIL_KEYS["finding_verified_closed"])
        detailed = frames.frame(
            conn.execute(
                select(EV.c.type, detail.label("detail"), EV.c.outcome, func.count().label("count"))
                .where(*window, EV.c.type.in_(controls.DETAILED))
                .group_by(EV.c.type, detail, EV.c.outcome)
            ),
            ["type", "detail", "outcome", "count"],
        )
    df = pd.concat([plain, detailed], ignore_index=True)
    df["detail"] = df["detail"].fillna("")
    mapped = pd.DataFrame(
        [controls.controls(t, d or None) for t, d in zip(df["type"], df["detail"], strict=True)],
        columns=list(controls.FRAMEWORKS),
        index=df.index,
    )
    out = pd.concat([df[["type", "detail", "outcome", "count"]], mapped], axis=1)
    return out.sort_values(["type", "detail", "outcome"]).reset_index(drop=True).astype({"count": "int64"})


def control_coverage(activity_frame: pd.DataFrame) -> pd.DataFrame:
    """Events evidencing each control the mapping names, zero included: ``framework``, ``control``, ``events``."""
    rows = []
    for framework, named in zip(controls.FRAMEWORKS, controls.ALL, strict=True):
        counts = dict.fromkeys(named, 0)
        for cell, n in zip(activity_frame[framework], activity_frame["count"], strict=True):
            for control in cell.split():
                counts[control] = counts.get(control, 0) + int(n)
        rows += [(framework, control, n) for control, n in counts.items()]
    return pd.DataFrame(rows, columns=["framework", "control", "events"]).astype({"events": "int64"})


#: How pages name the frameworks of :data:`controls.FRAMEWORKS`.
FRAMEWORK_NAMES = {"iso27001": "ISO/IEC 27001", "soc2": "SOC 2", "pci_dss": "PCI DSS", "nist_800_53": "NIST SP 800-53"}


def events_by_type(activity_frame: pd.DataFrame) -> pd.DataFrame:
    """Events per type (frame of :func:`activity`), most frequent first: ``type``, ``events`` and one
    column per outcome of :data:`OUTCOMES` (zero included)."""
    counts = activity_frame.pivot_table(index="type", columns="outcome", values="count", aggfunc="sum", fill_value=0)
    counts = counts.reindex(columns=list(OUTCOMES), fill_value=0).astype("int64")
    counts.insert(0, "events", counts.sum(axis=1))
    counts.columns.name = None
    return counts.reset_index().sort_values(["events", "type"], ascending=[False, True]).reset_index(drop=True)


def events_by_control(activity_frame: pd.DataFrame) -> pd.DataFrame:
    """Events evidencing each control the mapping names, zero included, framework by framework:
    ``framework`` (its name in words), ``control``, ``events``."""
    coverage = control_coverage(activity_frame)
    return coverage.assign(framework=coverage["framework"].map(FRAMEWORK_NAMES))


def recent_summary(recent: pd.DataFrame) -> pd.DataFrame:
    """The activity-log rows of :func:`recent_events` as a page shows them, without hashes or payloads:
    ``seq``, ``occurred_at``, ``actor``, ``type``, ``subject`` (the finding and/or ticket), ``outcome``."""
    subject = (recent["finding_id"].fillna("") + " " + recent["ticket_key"].fillna("")).str.strip().replace("", "—")
    return recent[["seq", "occurred_at", "actor", "type"]].assign(subject=subject, outcome=recent["outcome"])


def activity_by_period(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    period: str = "month",
) -> pd.DataFrame:
    """Exported events per period and outcome: ``period``, ``series`` (outcome), ``count``."""
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        key = replay.period_key(EV.c.occurred_at, _sql_period(period)).label("period")
        result = conn.execute(
            select(key, EV.c.outcome.label("series"), func.count().label("count"))
            .where(*log_export.conditions(engagement, start=start, end=end, as_of=when))
            .group_by(key, EV.c.outcome)
        )
        df = frames.frame(result, ["period", "series", "count"])
    rolled = _period_frame(df, period)
    if start is not None and end is not None:
        rolled = _every_period(rolled, period, start, end, OUTCOMES)
    return _ordered(rolled, "series", OUTCOMES)


def _every_period(df: pd.DataFrame, period: str, start: Any, end: Any, series: tuple[str, ...]) -> pd.DataFrame:
    """Every period from ``start`` to ``end`` and every series, a pair with no events counted 0 (a quiet
    week is a bar of zero, not a missing bar)."""
    first, last = pd.Timestamp(str(start)), pd.Timestamp(str(end))
    if period == "week":
        days = pd.date_range(first - pd.Timedelta(days=first.day_of_week), last, freq="W-MON")
        labels = days.strftime("%Y-%m-%d")
    elif period == "month":
        labels = pd.period_range(first, last, freq="M").strftime("%Y-%m")
    else:
        labels = [f"{p.year}-Q{p.quarter}" for p in pd.period_range(first, last, freq="Q")]
    grid = pd.MultiIndex.from_product([list(labels), list(series)], names=["period", "series"])
    full = df.set_index(["period", "series"])["count"].reindex(grid.union(df.set_index(["period", "series"]).index))
    return full.fillna(0).astype("int64").reset_index()


def sla_compliance(store: Store, engagement: str, as_of: datetime | date | str | None = None) -> pd.DataFrame:
    """SLA compliance as of ``as_of`` (default now), per band plus KEV and all (:func:`sla.summary`).

    Raises:
        NotFoundError: the engagement does not exist.
    """
    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        frame = replay.state_frame(conn, engagement, when)
    return sla.summary(frame, when)


def recent_events(
    store: Store,
    engagement: str,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """The last ``limit`` rows of the activity-log CSV for the window, exactly as the export writes them."""
    return log_export.preview(store, engagement, start=start, end=end, as_of=as_of, limit=limit)


def finding_list(store: Store, engagement: str, as_of: datetime | date | str | None = None) -> pd.DataFrame:
    """Every finding as of an instant (state, disposition, severity, owner team, KEV, SLA due and status,
    all as the log rebuilds them), with its title and asset, and ``escalated_to``: the escalation owner
    when the finding's current breach of its due date was escalated by then."""
    from handoffkit.workflow import escalation

    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        frame = replay.state_frame(conn, engagement, when)
        details = frames.frame(
            conn.execute(select(F.c.finding_id, F.c.title, F.c.asset_ref).where(F.c.engagement == engagement))
        )
        escalated = escalation.latest(conn, engagement, when)
    frame["sla_status"] = sla.status(frame, when)
    due = frame["sla_due"].dt.strftime("%Y-%m-%d")
    current = escalated.set_index(escalated["finding_id"] + "|" + escalated["sla_due"].astype(str))["escalated_to"]
    frame["escalated_to"] = (frame["finding_id"] + "|" + due.fillna("")).map(current)
    return frame.merge(details, on="finding_id", how="left")


# ------------------------------------------------------------------------------ the retest queue

QUEUE_COLUMNS = (
    "finding_id",
    "title",
    "asset_ref",
    "severity",
    "owner_team",
    "owner_role",
    "owner_name",
    "awaiting_since",
    "age_days",
    "sla_due",
    "sla_status",
    "escalated_to",
    "accepts",
)
#: What each evidence kind needs, as the queue's legend says (handoffkit.workflow.verification).
EVIDENCE_NEEDS = {
    "rescan": "a scan of the asset after the ticket closed that no longer reports it",
    "retest": "an evidence file, sha256:<64 hex> of the retest report or run:<tool run id>",
    "commit": "repo@<commit sha> or the URL of the commit or merge request",
    "attestation": "the named owner attests, a different named person approves",
}


def retest_queue(store: Store, engagement: str, as_of: datetime | date | str | None = None) -> pd.DataFrame:
    """Findings awaiting verification as of an instant (their ticket closed, no verification evidence
    yet), oldest due date first: owner, since when and how many days they have waited, SLA due date and
    status, the escalation owner if the current breach was escalated, and the evidence kinds that can
    close each (``accepts``: the policy's kinds; an attestation only where the finding names an owner).

    Returns:
        Columns :data:`QUEUE_COLUMNS`.
    """
    from handoffkit.workflow import escalation

    when = _when(store, as_of)
    with store.read() as conn:
        engagements.get(conn, engagement)
        policy = engagements.policy_at(conn, engagement, when)
        frame = replay.state_frame(conn, engagement, when)
        frame = frame[frame["state"].eq("awaiting_verification")]
        frame = frame.assign(sla_status=sla.status(frame, when)).drop(columns="owner_team")
        frame = frame.merge(replay.owners(conn, engagement, when), on="finding_id", how="left")
        frame = frame.merge(
            replay.entered(conn, engagement, "awaiting_verification", when), on="finding_id", how="left"
        )
        escalated = escalation.latest(conn, engagement, when)[["finding_id", "sla_due", "escalated_to"]]
        details = frames.frame(
            conn.execute(select(F.c.finding_id, F.c.title, F.c.asset_ref).where(F.c.engagement == engagement))
        )
    frame = frame.merge(details, on="finding_id", how="left")
    frame["sla_due"] = frame["sla_due"].dt.strftime("%Y-%m-%d").where(frame["sla_due"].notna(), None)
    frame = frame.merge(escalated, on=["finding_id", "sla_due"], how="left")
    since = pd.to_datetime(frame["since"], format="ISO8601", utc=True)
    frame["awaiting_since"] = since
    frame["age_days"] = (pd.Timestamp(replay.instant(when)) - since).dt.days.astype("Int64")
    kinds = list(policy.closure_verification.accepted)
    plain = ", ".join(k for k in kinds if k != "attestation")
    frame["accepts"] = plain
    if "attestation" in kinds:
        named = frame["owner_name"].notna()
        frame.loc[named, "accepts"] = ", ".join(kinds)
    by_id = frame.iloc[ids.frame_order(frame["finding_id"])] if len(frame) else frame
    out = by_id.sort_values(["sla_due", "awaiting_since"], na_position="last", kind="stable")[list(QUEUE_COLUMNS)]
    texts = ["owner_team", "owner_role", "owner_name", "sla_due", "escalated_to"]
    out[texts] = out[texts].astype(object).where(out[texts].notna(), None)
    return out.reset_index(drop=True)


def routing_counts(conn: Connection, engagement: str, start: Any, end: Any, as_of: str) -> dict[str, int]:
    """Findings created and routing decisions per disposition in the window (the holds as one ``held_back``)."""
    df = replay.event_counts(
        conn, engagement, [EV.c.type == "finding_routed", *replay.window(start, end, as_of)], [EV.c.disposition]
    )
    counts = {
        "created": metrics.count_events(conn, engagement, "finding_created", start=start, end=end, as_of=as_of),
        **dict.fromkeys((*DISPOSITION_SERIES, HELD), 0),
    }
    for disposition, n in zip(df["disposition"], df["count"], strict=True):
        key = HELD if disposition in HOLDS else disposition
        counts[key] = counts.get(key, 0) + int(n)
    return counts
