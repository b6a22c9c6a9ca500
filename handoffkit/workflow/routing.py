"""Routing: the engagement's policy decides, for every validated finding, where it goes.

Decision order (first match wins), computed set-based over the whole engagement:

1. not validated by triage (pending, false positive, duplicate, reopened awaiting re-triage) → never routed;
2. an active exception                → ``held_exception`` (state ``excepted``);
3. the asset is being decommissioned  → ``held_decommissioning`` (state ``held_back``);
4. a routing decision's hold in force → ``held_decision`` (state ``held_back``; see decisions.py);
5. no resolved owner (a routing decision's owner first, then the owners map, see owners.py)
                                      → ``paused_no_owner`` — never a shared queue;
6. a KEV-listed CVE                   → the KEV override (``ticket`` with the KEV due date, below);
7. otherwise the severity band's rule → ``ticket`` / ``sprint_backlog`` / ``quarterly_cycle`` /
   ``security_record_only``, with the band's SLA days.

SLA due dates count from validation (``validated_at``). The KEV clock, per listed CVE, starts at the
later of the finding's first detection and the CVE's ``dateAdded``: due = that day + the override's
``sla_days``, or the catalog's ``dueDate`` when that falls after the clock start and is earlier; with
several listed CVEs the earliest counts, and a KEV due date only ever tightens the band's (a finding
already open when its CVE joins the catalog gets it at the next run, in its ``finding_routed`` event).
Findings awaiting verification or closed are left alone. A real run writes one ``finding_routed``
event per finding whose decision changed, carrying the policy version; an unchanged re-run writes
nothing. ``dry_run`` computes the same plan and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, select, type_coerce

from handoffkit.record import engagements, findings, frames, owners, schema
from handoffkit.record.log import Event, append
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.workflow import decisions, exceptions

ROUTABLE_STATES = ("validated", "routed", "paused_no_owner", "excepted", "held_back")
DECIDED = ("disposition", "state", "owner_role", "owner_team", "owner_name", "sla_due")
_COLUMNS = (
    "finding_id",
    "engagement",
    "asset_ref",
    "severity",
    "kev",
    "kev_due",
    "triage",
    "state",
    "disposition",
    "owner_role",
    "owner_team",
    "owner_name",
    "sla_due",
    "validated_at",
    "policy_version",
    "row_version",
    "routed_at",
)


@dataclass
class RoutingResult:
    engagement: str
    policy_version: int
    dry_run: bool
    by_disposition: dict[str, int]
    by_owner_team: dict[str, int]
    held_back: dict[str, int]
    changes: list[dict[str, Any]] = field(default_factory=list)
    exceptions_expired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "changed": len(self.changes)}


def decide(
    frame: pd.DataFrame,
    policy: Any,
    owner_rows: list[owners.Owner],
    excepted: set[str],
    kev_clock: pd.DataFrame | None = None,
    decided: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The policy's decision for each routable row of ``frame`` (vectorised; no database access);
    ``kev_clock`` is :func:`kev_clock`'s frame for the KEV due dates, ``decided`` the routing decisions
    in force (:func:`handoffkit.workflow.decisions.in_force`)."""
    df = frame.copy()
    decided = decided if decided is not None else pd.DataFrame(columns=list(decisions.COLUMNS))
    owner_of = owners.resolve(owner_rows, df["asset_ref"].unique().tolist())
    resolved = {ref: o for ref, o in owner_of.items() if owners.is_resolved(o, policy.ownership.shared_queues)}
    by_person = decided[decided["decision"].eq("owner")].set_index("finding_id")
    df["owner_by"] = np.where(df["finding_id"].isin(by_person.index), "decision", "owners_map")
    for col in ("owner_role", "owner_team", "owner_name"):
        from_map = df["asset_ref"].map({r: getattr(o, col) for r, o in resolved.items()})
        df[f"new_{col}"] = from_map.where(df["owner_by"].ne("decision"), df["finding_id"].map(by_person[col]))
    lifecycle = df["asset_ref"].map({r: o.lifecycle for r, o in owner_of.items() if o is not None})
    band_disp = df["severity"].map({b: r.disposition for b, r in policy.routing.bands.items()})
    kev = df["kev"].astype(bool)
    conditions = [
        df["finding_id"].isin(excepted).to_numpy(),
        lifecycle.eq("decommissioning").to_numpy(),
        df["finding_id"].isin(decided.loc[decided["decision"].eq("hold"), "finding_id"]).to_numpy(),
        df["new_owner_team"].isna().to_numpy(),
        kev.to_numpy(),
    ]
    df["new_disposition"] = np.select(
        conditions,
        [
            "held_exception",
            "held_decommissioning",
            decisions.HOLD,
            "paused_no_owner",
            policy.routing.kev_override.disposition,
        ],
        default=band_disp,
    )
    df["new_state"] = np.select(
        conditions[:4], ["excepted", "held_back", "held_back", "paused_no_owner"], default="routed"
    )
    df["rule"] = np.select(
        conditions,
        ["exception", "decommissioning", "decision_hold", "no_owner", "kev_override"],
        default="band:" + df["severity"],
    )
    kev_due = kev_due_dates(kev_clock if kev_clock is not None else _NO_CLOCK, policy.routing.kev_override)
    df["new_sla_due"] = _due_dates(df, policy, kev, df["finding_id"].map(kev_due))
    held = (df["new_state"] != "routed") & (df["new_disposition"] != "held_decommissioning")
    for col in ("owner_role", "owner_team", "owner_name"):
        df[f"new_{col}"] = df[f"new_{col}"].astype(object).where(~held & df[f"new_{col}"].notna(), None)
    return df


_NO_CLOCK = pd.DataFrame(
    {c: pd.Series(dtype=object) for c in ("finding_id", "first_seen", "date_added", "catalog_due")}
)


def kev_clock(conn: Any, engagement: str) -> pd.DataFrame:
    """One row per KEV-listed CVE of each flagged finding: ``finding_id``, ``first_seen`` (the finding's
    first detection), and the CVE's ``date_added`` and ``catalog_due`` from the loaded catalog."""
    f, fc, k = schema.findings.c, schema.finding_cves.c, schema.kev.c
    stmt = (
        select(
            fc.finding_id,
            type_coerce(f.first_seen, String),
            type_coerce(k.date_added, String),
            type_coerce(k.due_date, String),
        )
        .join(schema.findings, f.finding_id == fc.finding_id)
        .join(schema.kev, k.cve_id == fc.cve_id)
        .where(f.engagement == engagement, f.kev)
    )
    return frames.frame(conn.execute(stmt), ["finding_id", "first_seen", "date_added", "catalog_due"])


def kev_due_dates(clock: pd.DataFrame, override: Any) -> pd.Series:
    """Each finding's KEV due date (the module docstring's rule), indexed by finding id."""
    if clock.empty:
        return pd.Series(dtype=object)
    day = lambda col: pd.to_datetime(clock[col].str.slice(0, 10), format="%Y-%m-%d")  # noqa: E731
    start = pd.concat([day("first_seen"), day("date_added")], axis=1).max(axis=1)
    due = start + pd.Timedelta(days=override.sla_days)
    if override.use_catalog_due_date:
        catalog = day("catalog_due")
        due = due.where(~((catalog > start) & (catalog < due)), catalog)
    return due.groupby(clock["finding_id"]).min()


def _due_dates(df: pd.DataFrame, policy: Any, kev: pd.Series, kev_due: pd.Series) -> pd.Series:
    """SLA due dates, vectorised: validation day + band days; a KEV-listed finding: the earlier of that
    and its KEV due date (validation day + the override's days where the catalog no longer lists it)."""
    start = pd.to_datetime(df["validated_at"], utc=True).dt.tz_localize(None).dt.normalize()
    days = df["severity"].map({b: r.sla_days for b, r in policy.routing.bands.items()}).astype("float64")
    due = start + pd.to_timedelta(days, unit="D")
    listed = pd.to_datetime(kev_due).fillna(start + pd.Timedelta(days=policy.routing.kev_override.sla_days))
    tightened = pd.concat([due, listed], axis=1).min(axis=1)
    due = due.where(~kev, tightened).where(df["new_state"].eq("routed"))
    return due.map(lambda d: None if pd.isna(d) else d.date()).astype(object)


def _differs(old: pd.Series, new: pd.Series) -> np.ndarray:
    """Null-aware inequality (dates and strings compared by their text)."""

    def text(s: pd.Series) -> pd.Series:
        return s.astype(object).where(s.notna(), "\0").astype(str)

    return text(old).to_numpy() != text(new).to_numpy()


def route(
    store: Store, engagement: str, *, actor: str, dry_run: bool = False, today: date | None = None
) -> RoutingResult:
    """Apply the engagement's policy (see the module docstring)."""
    actor = require_actor(actor)
    with store.read() if dry_run else store.write() as conn:
        eng = engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
        today = today or store.now().date()
        expired = [] if dry_run else exceptions.expire(conn, store, engagement, today, actor)
        frame = findings.frame(conn, engagement, _COLUMNS)
        excepted = exceptions.active_ids(conn, engagement)
        if dry_run:
            excepted -= _would_expire(conn, engagement, today)
        owner_map = owners.owner_map(conn, engagement)
        routable = frame[frame["triage"].eq("validated") & frame["state"].isin(ROUTABLE_STATES)]
        decided = decisions.in_force(conn, engagement, today)
        plan = decide(routable, policy, owner_map, excepted, kev_clock(conn, engagement), decided)
        for col in DECIDED:
            plan[f"chg_{col}"] = _differs(plan[col], plan[f"new_{col}"])
        changed = plan[plan[[f"chg_{c}" for c in DECIDED]].any(axis=1)]
        result = _summary(engagement, eng.policy_version, dry_run, frame, plan, changed, expired)
        if not dry_run and len(changed):
            now = store.now()
            items = [
                findings.Change(
                    row,
                    {
                        **{c: row[f"new_{c}"] for c in DECIDED if row[f"chg_{c}"]},
                        "policy_version": eng.policy_version,
                        "routed_at": now,
                    },
                    {
                        "policy_version": eng.policy_version,
                        "rule": row["rule"],
                        **({"owner_by": "decision"} if row["owner_by"] == "decision" else {}),
                    },
                )
                for row in findings.records(changed)
            ]
            findings.change_many(conn, store, items, type="finding_routed", actor=actor)
        if not dry_run and (len(changed) or expired):
            append(
                conn,
                store,
                [
                    Event(
                        type="routing_run",
                        actor=actor,
                        engagement=engagement,
                        data={k: v for k, v in result.as_dict().items() if k != "changes"},
                    )
                ],
            )
    return result


def _would_expire(conn: Any, engagement: str, today: date) -> set[str]:
    x = exceptions.X.c
    return set(
        conn.execute(
            select(x.finding_id).where(x.engagement == engagement, x.status == "active", x.expires_on < today)
        ).scalars()
    )


def _summary(
    engagement: str,
    version: int,
    dry_run: bool,
    frame: pd.DataFrame,
    plan: pd.DataFrame,
    changed: pd.DataFrame,
    expired: list[str],
) -> RoutingResult:
    held = {
        "not_validated": int((frame["triage"].eq("pending") | frame["state"].eq("reopened")).sum()),
        "false_positive": int(frame["triage"].eq("false_positive").sum()),
        "duplicate": int(frame["triage"].eq("duplicate").sum()),
        "exception": int(plan["new_disposition"].eq("held_exception").sum()),
        "decommissioning": int(plan["new_disposition"].eq("held_decommissioning").sum()),
        "no_owner": int(plan["new_disposition"].eq("paused_no_owner").sum()),
        "decision": int(plan["new_disposition"].eq(decisions.HOLD).sum()),
    }
    by_disp = plan["new_disposition"].value_counts().sort_index()
    routed = plan[plan["new_state"] == "routed"]
    by_team = routed["new_owner_team"].value_counts().sort_index()
    changes = [
        {
            "finding_id": r["finding_id"],
            "from": r["disposition"],
            "to": r["new_disposition"],
            "owner_team": r["new_owner_team"],
            "sla_due": r["new_sla_due"],
            "rule": r["rule"],
        }
        for r in changed.to_dict(orient="records")
    ]
    return RoutingResult(
        engagement,
        version,
        dry_run,
        {k: int(v) for k, v in by_disp.items()},
        {k: int(v) for k, v in by_team.items()},
        held,
        changes,
        expired,
    )
