"""Routing decisions: a person decides, for one finding, who owns it or that it waits.

The policy routes by the owners map; a finding whose asset has no resolved owner pauses
(``paused_no_owner``). Rather than edit the owners map for one finding, an operator records a
*routing decision* on the finding itself, as a ``routing_decided`` event:

- ``owner`` — ``TEAM/ROLE[/NAME]``: the team and role must be a pair the owners map already names (a
  typo would otherwise route work to nobody) and the team must not be a shared queue. The finding's
  owner is set at once and a paused or held finding goes back to ``validated``; the next ``route``
  routes it per policy (band, KEV override, SLA) to that owner, which takes precedence over the owners
  map for this finding. A later decision replaces it.
- ``hold`` — until a date after today: the finding is ``held_back`` (disposition ``held_decision``),
  out of every queue, owner and due date cleared; ``route`` keeps it there while today is before the
  date, and routes it per policy from that day on.

A decision applies to a validated, open, not yet handed-off finding (``validated``, ``routed``,
``paused_no_owner``, ``held_back``); a closed, excepted, untriaged or awaiting-verification finding is
refused. Separation of duties: the finding's named owner cannot put their own finding on hold. Every
refusal writes one ``denied`` event. The decision in force is always the finding's last
``routing_decided`` event, so routing and any as-of replay read it from the log alone.
"""

from __future__ import annotations

import difflib
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from handoffkit.errors import RefusedError
from handoffkit.record import engagements, findings, frames, owners, replay, schema
from handoffkit.record.log import Event, mutation
from handoffkit.record.people import require_actor, same_person
from handoffkit.record.store import Store

DECIDABLE = ("validated", "routed", "paused_no_owner", "held_back")
HOLD = "held_decision"
OWNER_COLUMNS = ("owner_team", "owner_role", "owner_name")
COLUMNS = ("finding_id", "decision", "until", *OWNER_COLUMNS)


def decide(
    store: Store,
    finding_id: str,
    *,
    reason: str,
    actor: str,
    owner: str | None = None,
    hold_until: date | None = None,
) -> dict[str, Any]:
    """Record a routing decision on ``finding_id``: an ``owner`` (``TEAM/ROLE[/NAME]``) or a hold until
    ``hold_until`` (exactly one of the two); see the module docstring.

    Raises:
        RefusedError: a rule refuses the decision (one ``denied`` event is logged, nothing else).
        NotFoundError: no such finding.
    """
    actor = require_actor(actor)
    kind = "hold" if hold_until is not None else "owner"
    template = Event(
        type="routing_decided",
        actor=actor,
        finding_id=finding_id,
        data={"decision": kind, "owner": owner, "until": hold_until, "reason": reason},
    )
    with mutation(store, template) as conn:
        row = findings.get(conn, finding_id)._mapping
        template.engagement = row["engagement"]
        if (owner is None) == (hold_until is None):
            raise RefusedError("a routing decision is either --owner TEAM/ROLE[/NAME] or --hold --until DATE")
        if not reason or not reason.strip():
            raise RefusedError("a routing decision needs a --reason")
        _check_state(row)
        if kind == "owner":
            named = _owner(conn, row["engagement"], owner or "")
            changes: dict[str, Any] = dict(named)
            if row["state"] in ("paused_no_owner", "held_back"):
                changes.update(state="validated", disposition=None, sla_due=None)
        else:
            today = store.now().date()
            if hold_until <= today:  # type: ignore[operator]
                raise RefusedError(f"--until {hold_until} is not after today ({today}); a hold needs a future date")
            if same_person(actor, row["owner_name"]):
                raise RefusedError(
                    f"{actor!r} is the named owner of {finding_id}; an owner cannot hold their own finding"
                )
            changes = {"state": "held_back", "disposition": HOLD, "sla_due": None, **dict.fromkeys(OWNER_COLUMNS)}
        data = {
            "decision": kind,
            "owner": "/".join(v for v in (changes.get(c) for c in OWNER_COLUMNS) if v) if kind == "owner" else None,
            "until": hold_until,
            "reason": reason.strip(),
        }
        findings.change(conn, store, row, changes, type="routing_decided", actor=actor, data=data)
    return {"finding_id": finding_id, **data, "state": changes.get("state", row["state"])}


def _check_state(row: Any) -> None:
    fid, state = row["finding_id"], row["state"]
    if state not in DECIDABLE or row["triage"] != "validated":
        raise RefusedError(
            f"{fid} is {state}; a routing decision applies to a validated finding not yet handed off "
            f"({', '.join(DECIDABLE)})"
        )
    if row["disposition"] == "held_decommissioning":
        raise RefusedError(f"{fid}'s asset is being decommissioned (owners map lifecycle); nothing to route")


def _owner(conn: Connection, engagement: str, text: str) -> dict[str, str | None]:
    """``TEAM/ROLE[/NAME]`` checked against the owners map: the team and role as the map spells them."""
    parts = [p.strip() for p in text.split("/", 2)]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise RefusedError(f"--owner {text!r}: expected TEAM/ROLE or TEAM/ROLE/NAME (e.g. payments/service owner)")
    team, role = parts[0], parts[1]
    name = " ".join(parts[2].split()) if len(parts) == 3 and parts[2] else None
    policy = engagements.policy(conn, engagement)
    if team.casefold() in {q.casefold() for q in policy.ownership.shared_queues}:
        raise RefusedError(f"--owner team {team!r} is a shared queue in the policy, never an owner")
    rows = owners.owner_map(conn, engagement)
    teams = {o.owner_team.casefold(): o.owner_team for o in rows if o.owner_team}
    if team.casefold() not in teams:
        close = difflib.get_close_matches(team, list(teams.values()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(teams.values())) or 'none'}"
        raise RefusedError(f"--owner team {team!r} is not in the owners map{hint}")
    roles = {
        o.owner_role.casefold(): o.owner_role
        for o in rows
        if o.owner_role and (o.owner_team or "").casefold() == team.casefold()
    }
    if role.casefold() not in roles:
        raise RefusedError(
            f"--owner role {role!r} is not a role of team {teams[team.casefold()]!r} in the owners map; "
            f"expected one of {', '.join(sorted(roles.values()))}"
        )
    return {"owner_team": teams[team.casefold()], "owner_role": roles[role.casefold()], "owner_name": name}


def in_force(conn: Connection, engagement: str, today: date, as_of: str | None = None) -> pd.DataFrame:
    """Each finding's last routing decision (at or before ``as_of``) that still holds on ``today``:
    :data:`COLUMNS`; a hold whose date has come is no longer in force."""
    df = log(conn, engagement, as_of)
    lapsed = df["decision"].eq("hold") & (df["until"].fillna("") <= today.isoformat())
    return df[~lapsed].reset_index(drop=True)


def log(conn: Connection, engagement: str, as_of: str | None = None) -> pd.DataFrame:
    """Each finding's last routing decision at or before ``as_of``, read from the activity log (set-based)."""
    last = replay.last_events(engagement, as_of, replay.EV.c.type == "routing_decided", name="decided_last")
    e = schema.events.alias("decided")
    text = lambda *path: replay.json_text(conn, e.c.payload, "data", *path)  # noqa: E731
    stmt = select(
        e.c.finding_id,
        text("decision").label("decision"),
        text("until").label("until"),
        *[text("set", c).label(c) for c in OWNER_COLUMNS],
        text("reason").label("reason"),
        e.c.actor,
        e.c.occurred_at,
    ).join(last, last.c.seq == e.c.seq)
    return frames.frame(conn.execute(stmt), [*COLUMNS, "reason", "actor", "occurred_at"])


__all__ = ["decide", "in_force", "log"]
