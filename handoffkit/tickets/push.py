"""Push: create the tickets routed findings call for, through the ticket system's API.

The plan, worked out for every finding routed to a ticket with a resolved owner, and every finding
already linked to a ticket on the target:

- ``create`` — no linked ticket and none on the system carrying the finding id: the ticket is created
  from the finding's payload (:mod:`handoffkit.tickets.payload`, the same payload ``handoffkit payload``
  prints), with a ``kev`` label (ServiceNow: ``u_kev``) for a KEV-listed finding;
- ``link`` — no linked ticket, but a search finds the id on one (a ticket made by hand, or by a push
  stopped between the system's answer and the record's commit): it is linked, never created again;
- ``update`` — the ticket is owed a calibrated severity or SLA due date (:mod:`handoffkit.tickets.updates`:
  the record differs from what was last handed over, by a push, a payload or an update issued), or its
  KEV status differs from what the last push sent: only those fields are sent, never status or
  assignee (engineering owns them); each severity / due-date line is logged ``ticket_update_issued``
  (``via: push``) as ``handoffkit payload --updates`` logs it;
- ``adopt`` — a linked ticket no push has sent anything to yet and owed nothing: what the record holds
  now becomes the baseline later KEV changes are compared with (nothing is sent).

A dry run (the default) searches but writes nothing, there or here. ``apply`` does each step and
commits it at once with its events — ``ticket_created`` / ``ticket_found`` / ``ticket_updated`` /
``ticket_adopted`` carrying what was sent (``pushed``), and ``link_added`` (origin ``push``) — so a
push stopped halfway leaves every ticket it made linked, and running it again creates no duplicate.
The link runs both ways: the record links the finding to the ticket; the ticket carries the finding
id (label, field, ``[HK-n]`` token) and the permalink to the record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from handoffkit.errors import HandoffkitError, RemoteError
from handoffkit.record import engagements, schema
from handoffkit.record.canonical import canonical_json, sha256_bytes
from handoffkit.record.log import Event, append, log_event
from handoffkit.record.model import OPEN_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.tickets import links, payload, trackers, updates
from handoffkit.tickets.connection import Client, Settings, open_client

PUSH_EVENTS = ("ticket_created", "ticket_found", "ticket_updated", "ticket_adopted")


@dataclass
class Step:
    finding_id: str
    action: str
    ticket_key: str | None = None
    changes: dict[str, list[Any]] = field(default_factory=dict)
    remote_id: str | None = None
    done: bool = False


def push(
    store: Store,
    engagement: str,
    target: str,
    settings: Settings,
    *,
    actor: str,
    apply: bool = False,
    client: Client | None = None,
) -> dict[str, Any]:
    """Plan (and with ``apply``, carry out) the pushes of ``engagement`` to ``target``.

    Returns ``{"target", "applied", "steps": [...], "counts": {action: n}, "requests"}``.

    Raises:
        RemoteError / ConfigError: a request failed or no credentials (after logging ``push_refused``;
            the steps done before stay done and recorded).
        RefusedError: a payload fails the policy's schema.
    """
    actor = require_actor(actor)
    with store.read() as conn:
        engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
        routed = payload.eligible(conn, engagement, None)
        linked = _linked(conn, engagement, target)
        pushed = _pushed(conn, engagement, target)
        owed_lines = updates.owed(conn, engagement, target)
        owed = updates.changes_by_ticket(owed_lines)
        rendered = _rendered(conn, engagement, policy, target, [r for r in routed if r["finding_id"] not in linked])
    own = client is None
    steps: list[Step] = []
    try:
        client = client or open_client(target, settings)
        steps += [_compare(row, pushed, owed) for row in linked.values()]
        for row in routed:
            if row["finding_id"] in linked:
                continue
            found = trackers.find(client, policy, row["finding_id"])
            step = Step(row["finding_id"], "link" if found else "create", found[0].key if found else None)
            steps.append(step)
            if apply:
                _do(store, client, policy, target, actor, step, row, found, rendered[row["finding_id"]])
        if apply:
            for step in steps:
                if step.action in ("update", "adopt"):
                    _do(store, client, policy, target, actor, step, linked[step.finding_id], [], None, owed_lines)
    except HandoffkitError as exc:
        if apply:
            reason = client.scrub(str(exc)) if client is not None else str(exc)
            log_event(
                store,
                Event(
                    type="push_refused", actor=actor, engagement=engagement, outcome="failure",
                    data={"system": target, "url": settings.url, "reason": reason,
                          "done": [asdict(s) for s in steps if s.done]},
                ),
            )  # fmt: skip
        raise
    finally:
        if own and client is not None:
            client.close()
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.action] = counts.get(s.action, 0) + 1
    if apply:
        log_event(
            store,
            Event(type="push_run", actor=actor, engagement=engagement,
                  data={"system": target, "url": settings.url, "counts": counts, "requests": client.requests}),
        )  # fmt: skip
    return {
        "target": target,
        "applied": apply,
        "steps": [asdict(s) for s in steps],
        "counts": counts,
        "requests": client.requests,
    }


def _state(row: dict[str, Any]) -> dict[str, Any]:
    """What a push sends that may change later: the calibrated severity, the due date, KEV."""
    due = row["sla_due"]
    return {"severity": row["severity"], "due_date": due.isoformat() if due else None, "kev": bool(row["kev"])}


def _compare(
    row: dict[str, Any],
    pushed: dict[tuple[str, str], dict[str, Any]],
    owed: dict[tuple[str, str], dict[str, list[Any]]],
) -> Step:
    """Severity and due date: what the ticket is owed (see :mod:`handoffkit.tickets.updates`); KEV: what
    the last push sent."""
    key = row["ticket_key"]
    before = pushed.get((row["finding_id"], key))
    changes = dict(owed.get((row["finding_id"], key), {}))
    if before is None and not changes:
        return Step(row["finding_id"], "adopt", key)
    kev = bool(row["kev"])
    if before is not None and before.get("kev") != kev:
        changes["kev"] = [before.get("kev"), kev]
    remote_id = before.get("remote_id") if before else None
    return Step(row["finding_id"], "update" if changes else "up_to_date", key, changes, remote_id)


def _do(
    store: Store,
    client: Client,
    policy: Any,
    target: str,
    actor: str,
    step: Step,
    row: dict[str, Any],
    found: list[trackers.Remote],
    body: dict[str, Any] | None,
    owed_lines: Any = None,
) -> None:
    """One step: the request first, then its record in one transaction (so a crash between the two
    leaves a ticket a later search finds, never a link to nothing)."""
    state = _state(row)
    data: dict[str, Any] = {"system": target, "pushed": state}
    if step.action == "create":
        assert body is not None
        remote = trackers.create(client, body, state["kev"])
        step.ticket_key = remote.key
        data |= {"remote_id": remote.remote_id, "payload_sha256": sha256_bytes(canonical_json(body).encode())}
    elif step.action == "link":
        data |= {"remote_id": found[0].remote_id, "also_found": [r.key for r in found[1:]]}
    elif step.action == "update":
        remote_id = step.remote_id or _remote_id(client, policy, row["finding_id"], step.ticket_key or "")
        trackers.update(client, policy, trackers.Remote(step.ticket_key or "", remote_id),
                        {k: tuple(v) for k, v in step.changes.items()})  # fmt: skip
        data |= {"changes": step.changes, "remote_id": remote_id}
    elif step.action == "adopt":
        data |= {"note": "baseline for later updates; nothing sent"}
    else:
        return
    type_ = {"create": "ticket_created", "link": "ticket_found", "update": "ticket_updated", "adopt": "ticket_adopted"}
    assert step.ticket_key is not None
    with store.write() as conn:
        new = [] if step.action in ("update", "adopt") else [
            links.add(conn, store, row, target, step.ticket_key, origin="push", actor=actor,
                      note=f"{step.action} by push")
        ]  # fmt: skip
        if step.action == "update":
            mine = owed_lines[
                owed_lines["finding_id"].eq(row["finding_id"]) & owed_lines["ticket_key"].eq(step.ticket_key)
            ]
            sent = {k: v for k, v in step.changes.items() if k in updates.FIELDS}
            doc = {(row["finding_id"], step.ticket_key): updates.for_target(policy, target, row["finding_id"],
                                                                            step.ticket_key, sent)}  # fmt: skip
            new += updates.events_for(mine, doc, actor=actor, engagement=row["engagement"], via="push",
                                      finding_rows={row["finding_id"]: row})  # fmt: skip
        new.append(
            Event(type=type_[step.action], actor=actor, engagement=row["engagement"], finding_id=row["finding_id"],
                  ticket_key=step.ticket_key, state=row["state"], disposition=row["disposition"],
                  severity=row["severity"], data=data)
        )  # fmt: skip
        append(conn, store, [e for e in new if e is not None])
    step.done = True


def _remote_id(client: Client, policy: Any, finding_id: str, key: str) -> str:
    """The id an API addresses a ticket by, for a ticket no push recorded one for: from its key where
    they coincide (a Jira key, a GitHub number), else (ServiceNow's sys_id) by searching for the finding."""
    if client.system != "servicenow":
        return key.rsplit("#", 1)[-1]
    for remote in trackers.find(client, policy, finding_id):
        if remote.key == key:
            return remote.remote_id
    raise RemoteError(f"servicenow: {key} (linked to {finding_id}) is not found by its finding id; cannot update it")


def _rendered(conn: Any, engagement: str, policy: Any, target: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each finding's payload for ``target``, validated against the policy's schema."""
    checker = payload.validator_for(payload.json_schema(policy, engagement))
    shas = payload.evidence_sha(conn, [r["finding_id"] for r in rows])
    out = {}
    for r in rows:
        neutral = payload.neutral(r, policy, shas.get(r["finding_id"]))
        payload.validate(neutral, checker)
        out[r["finding_id"]] = payload.for_target(neutral, policy, target)
    return out


def _linked(conn: Any, engagement: str, target: str) -> dict[str, dict[str, Any]]:
    """Open findings with an active link on ``target``: finding id → its row plus ``ticket_key`` (the
    first linked ticket; a split finding is updated on that one) and the ``remote_id`` a push recorded."""
    f, lk = schema.findings.c, schema.links.c
    rows = conn.execute(
        select(schema.findings, lk.ticket_key)
        .join(schema.links, lk.finding_id == f.finding_id)
        .where(lk.engagement == engagement, lk.system == target, lk.active, f.state.in_(sorted(OPEN_STATES)))
        .order_by(f.number, lk.ticket_key)
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r.finding_id, dict(r._mapping))
    return out


def _pushed(conn: Any, engagement: str, target: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(finding id, ticket key) → what the last push sent (or adopted) there."""
    ev = schema.events.c
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for fid, key, text in conn.execute(
        select(ev.finding_id, ev.ticket_key, ev.payload)
        .where(ev.engagement == engagement, ev.type.in_(PUSH_EVENTS), ev.outcome == "success")
        .order_by(ev.seq)
    ):
        data = json.loads(text)["data"]
        if data.get("system") == target:
            out[(fid, key)] = data["pushed"]
            if data.get("remote_id"):
                out[(fid, key)] = {**data["pushed"], "remote_id": data["remote_id"]}
    return out
