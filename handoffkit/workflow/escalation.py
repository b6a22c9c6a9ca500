"""Escalation: a finding past its SLA due date goes up to the escalation owner its band names.

The policy names an escalation owner per band (``routing.bands.<band>.escalation``, optional). A run
(``handoffkit escalate -e ENG``, meant for a daily schedule beside ``route``) finds, set-based, every
open finding whose due date has passed (the SLA status ``breached`` of :mod:`handoffkit.workflow.sla`:
the day after the due date or later), other than one excepted or held back, and logs one
``finding_escalated`` event for it naming the escalation owner, the due date, the days overdue and
the finding's owner. A breach is the pair (finding, due date): a finding already escalated for its
current due date is not escalated again, so a run repeated the same day, or every day, writes nothing
new; a new due date (a recalibration, a KEV listing) that passes is a new breach and escalates again.
A band whose rule names no escalation owner escalates nothing; the run reports those findings as
``unescalated`` per band, so the gap in the policy shows.

Escalation is its own command rather than a step of ``route``: routing decides where findings go
from the policy and writes nothing when nothing changed, while escalation is driven by the calendar
alone and must run on days when no routing decision changes. The event changes no column of the
finding (the state, owner and due date stay as routing set them); the views and the retest queue
read escalations from the log, as of any instant (:func:`log`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select

from handoffkit.record import engagements, findings, frames, replay, schema
from handoffkit.record.log import Event, append
from handoffkit.record.model import OPEN_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store

NOT_ESCALATED_STATES = ("excepted", "held_back")
_COLUMNS = (
    "finding_id",
    "engagement",
    "severity",
    "state",
    "disposition",
    "sla_due",
    "owner_team",
    "owner_role",
    "owner_name",
)


@dataclass
class EscalationResult:
    engagement: str
    today: date
    dry_run: bool
    escalated: list[dict[str, Any]] = field(default_factory=list)
    already_escalated: int = 0
    unescalated: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "today": self.today.isoformat(), "count": len(self.escalated)}


def escalate(
    store: Store, engagement: str, *, actor: str, dry_run: bool = False, today: date | None = None
) -> EscalationResult:
    """Escalate every finding past its due date not yet escalated for it (see the module docstring)."""
    actor = require_actor(actor)
    with store.read() if dry_run else store.write() as conn:
        eng = engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
        today = today or store.now().date()
        F = schema.findings.c
        overdue = findings.frame(
            conn,
            engagement,
            _COLUMNS,
            where=(F.sla_due < today.isoformat()) & F.state.in_(sorted(OPEN_STATES - set(NOT_ESCALATED_STATES))),
        )
        # a breach is (finding, due date): an anti-join with the escalations already logged
        done = log(conn, engagement)[["finding_id", "sla_due"]].drop_duplicates().astype(str).assign(seen=True)
        keys = {"finding_id": overdue["finding_id"].astype(str), "due_text": overdue["sla_due"].astype(str)}
        overdue = overdue.assign(**keys).merge(
            done.rename(columns={"sla_due": "due_text"}), on=["finding_id", "due_text"], how="left"
        )
        seen = overdue["seen"].eq(True)
        fresh = overdue[~seen].copy()
        to = {band: rule.escalation for band, rule in policy.routing.bands.items()}
        fresh["escalated_to"] = fresh["severity"].map(to)
        missing = fresh[fresh["escalated_to"].isna()]
        fresh = fresh[fresh["escalated_to"].notna()]
        fresh["days_overdue"] = (pd.Timestamp(today) - pd.to_datetime(fresh["sla_due"])).dt.days
        items = [
            {
                "finding_id": r["finding_id"],
                "band": r["severity"],
                "sla_due": r["sla_due"],
                "days_overdue": int(r["days_overdue"]),
                "escalated_to": r["escalated_to"],
                "owner": "/".join(v for v in (r["owner_team"], r["owner_role"], r["owner_name"]) if v) or None,
                "_row": r,
            }
            for r in findings.records(fresh)
        ]
        result = EscalationResult(
            engagement,
            today,
            dry_run,
            [{k: v for k, v in i.items() if k != "_row"} for i in items],
            int(seen.sum()),
            {str(k): int(v) for k, v in missing["severity"].value_counts().sort_index().items()},
        )
        if not dry_run and items:
            new = [
                Event(
                    type="finding_escalated",
                    actor=actor,
                    engagement=engagement,
                    finding_id=i["finding_id"],
                    state=i["_row"]["state"],
                    disposition=i["_row"]["disposition"],
                    severity=i["band"],
                    data={
                        **{k: v for k, v in i.items() if k not in ("_row", "finding_id")},
                        "policy_version": eng.policy_version,
                    },
                )
                for i in items
            ]
            summary = {k: v for k, v in result.as_dict().items() if k != "escalated"}
            new.append(Event(type="escalation_run", actor=actor, engagement=engagement, data=summary))
            append(conn, store, new)
    return result


def log(conn: Any, engagement: str, as_of: str | None = None) -> pd.DataFrame:
    """Every escalation at or before ``as_of`` (set-based, from the activity log): ``finding_id``,
    ``sla_due``, ``escalated_to``, ``days_overdue``, ``escalated_at``, oldest first."""
    ev = schema.events.alias("escalated")
    text = lambda name: replay.json_text(conn, ev.c.payload, "data", name)  # noqa: E731
    stmt = (
        select(
            ev.c.finding_id,
            text("sla_due").label("sla_due"),
            text("escalated_to").label("escalated_to"),
            text("days_overdue").label("days_overdue"),
            ev.c.occurred_at.label("escalated_at"),
        )
        .where(
            ev.c.engagement == engagement,
            ev.c.type == "finding_escalated",
            ev.c.outcome == "success",
            *replay.window(None, None, as_of, ev.c.occurred_at),
        )
        .order_by(ev.c.seq)
    )
    return frames.frame(conn.execute(stmt), ["finding_id", "sla_due", "escalated_to", "days_overdue", "escalated_at"])


def latest(conn: Any, engagement: str, as_of: str | None = None) -> pd.DataFrame:
    """Each finding's last escalation at or before ``as_of`` (one row per escalated finding)."""
    return log(conn, engagement, as_of).drop_duplicates("finding_id", keep="last").reset_index(drop=True)


__all__ = ["EscalationResult", "escalate", "latest", "log"]
