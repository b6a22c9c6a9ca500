"""Routing: the engagement's policy decides, for every validated finding, where it goes.

Decision order (first match wins), computed set-based over the whole engagement:

1. not validated by triage (pending, false positive, duplicate, reopened awaiting re-triage) → never routed;
2. an active exception                → ``held_exception`` (state ``excepted``);
3. the asset is being decommissioned  → ``held_decommissioning`` (state ``held_back``);
4. no resolved owner (see owners.py)  → ``paused_no_owner`` — never a shared queue;
5. a KEV-listed CVE                   → the KEV override (``ticket``, 14 days or CISA's earlier due date);
6. otherwise the severity band's rule → ``ticket`` / ``sprint_backlog`` / ``quarterly_cycle`` /
   ``security_record_only``, with the band's SLA days.

SLA due dates count from validation (``validated_at``). Findings awaiting verification or closed are
left alone. A real run writes one ``finding_routed`` event per finding whose decision changed,
carrying the policy version; an unchanged re-run writes nothing. ``dry_run`` computes the same plan
and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from handoffkit.record import engagements, findings, owners
from handoffkit.record.log import Event, append
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.workflow import exceptions

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


def decide(frame: pd.DataFrame, policy: Any, owner_rows: list[owners.Owner], excepted: set[str]) -> pd.DataFrame:
    """The policy's decision for each routable row of ``frame`` (vectorised; no database access)."""
    df = frame.copy()
    owner_of = owners.resolve(owner_rows, df["asset_ref"].unique().tolist())
    resolved = {ref: o for ref, o in owner_of.items() if owners.is_resolved(o, policy.ownership.shared_queues)}
    for col in ("owner_role", "owner_team", "owner_name"):
        df[f"new_{col}"] = df["asset_ref"].map({r: getattr(o, col) for r, o in resolved.items()})
    lifecycle = df["asset_ref"].map({r: o.lifecycle for r, o in owner_of.items() if o is not None})
    band_disp = df["severity"].map({b: r.disposition for b, r in policy.routing.bands.items()})
    kev = df["kev"].astype(bool)
    conditions = [
        df["finding_id"].isin(excepted).to_numpy(),
        lifecycle.eq("decommissioning").to_numpy(),
        df["new_owner_team"].isna().to_numpy(),
        kev.to_numpy(),
    ]
    df["new_disposition"] = np.select(
        conditions,
        ["held_exception", "held_decommissioning", "paused_no_owner", policy.routing.kev_override.disposition],
        default=band_disp,
    )
    df["new_state"] = np.select(conditions[:3], ["excepted", "held_back", "paused_no_owner"], default="routed")
    df["rule"] = np.select(
        conditions, ["exception", "decommissioning", "no_owner", "kev_override"], default="band:" + df["severity"]
    )
    df["new_sla_due"] = _due_dates(df, policy, kev)
    held = (df["new_state"] != "routed") & (df["new_disposition"] != "held_decommissioning")
    for col in ("owner_role", "owner_team", "owner_name"):
        df[f"new_{col}"] = df[f"new_{col}"].astype(object).where(~held & df[f"new_{col}"].notna(), None)
    return df


def _due_dates(df: pd.DataFrame, policy: Any, kev: pd.Series) -> pd.Series:
    """SLA due dates, vectorised: validation day + band days; KEV: + override days, capped by CISA's due."""
    start = pd.to_datetime(df["validated_at"], utc=True).dt.tz_localize(None).dt.normalize()
    days = df["severity"].map({b: r.sla_days for b, r in policy.routing.bands.items()}).astype("float64")
    due = start + pd.to_timedelta(days, unit="D")
    override = policy.routing.kev_override
    kev_due = start + pd.Timedelta(days=override.sla_days)
    if override.use_catalog_due_date:
        catalog = pd.to_datetime(df["kev_due"].astype(object).where(df["kev_due"].notna(), None))
        kev_due = kev_due.where(catalog.isna() | (kev_due <= catalog), catalog)
    due = due.where(~kev, kev_due).where(df["new_state"].eq("routed"))
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
        plan = decide(routable, policy, owner_map, excepted)
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
                    {"policy_version": eng.policy_version, "rule": row["rule"]},
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
    from sqlalchemy import select

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
