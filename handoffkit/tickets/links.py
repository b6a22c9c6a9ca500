"""Links between findings and tickets: many-to-many (a split ticket keeps every link), each with its
origin (``export`` — the ticket carried the finding id; ``manual``; ``defectdojo`` — a DefectDojo
Jira mapping). Removing a link deactivates it; the row and its history stay.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from handoffkit.errors import RefusedError
from handoffkit.record import findings, schema
from handoffkit.record.log import Event, Source, append, mutation
from handoffkit.record.model import OPEN_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store

L = schema.links
CLOSABLE = tuple(sorted(OPEN_STATES - {"awaiting_verification"}))
SYSTEMS = ("jira", "servicenow", "github")


def by_ticket(conn: Connection, engagement: str, system: str, keys: list[str]) -> dict[str, list[str]]:
    """Finding ids actively linked to each ticket key (whatever the link's origin)."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(keys), 10_000):
        for fid, key in conn.execute(
            select(L.c.finding_id, L.c.ticket_key).where(
                L.c.engagement == engagement,
                L.c.system == system,
                L.c.active,
                L.c.ticket_key.in_(keys[start : start + 10_000]),
            )
        ):
            out.setdefault(key, []).append(fid)
    return out


def link_states(conn: Connection, finding_ids: list[str]) -> dict[str, dict[tuple[str, str], bool]]:
    """Every link (active or not) of these findings: finding_id → {(system, ticket_key): active}."""
    out: dict[str, dict[tuple[str, str], bool]] = {}
    for start in range(0, len(finding_ids), 10_000):
        for fid, system, key, active in conn.execute(
            select(L.c.finding_id, L.c.system, L.c.ticket_key, L.c.active).where(
                L.c.finding_id.in_(finding_ids[start : start + 10_000])
            )
        ):
            out.setdefault(fid, {})[(system, key)] = bool(active)
    return out


def row(finding: Any, system: str, key: str, *, origin: str, at: Any, note: str | None = None) -> dict[str, Any]:
    """A new links row (``at`` may be filled in by the caller)."""
    return {
        "finding_id": finding["finding_id"],
        "system": system,
        "ticket_key": key,
        "engagement": finding["engagement"],
        "origin": origin,
        "active": True,
        "created_at": at,
        "note": note,
    }


def added_event(
    finding: Any,
    system: str,
    key: str,
    *,
    origin: str,
    actor: str,
    source: Source | None = None,
    note: str | None = None,
) -> Event:
    return _event("link_added", finding, system, key, actor, source, {"origin": origin, "note": note})


def _event(
    type_: str, finding: Any, system: str, key: str, actor: str, source: Source | None, data: dict[str, Any]
) -> Event:
    """A link event: on the finding (with its current state) and on the ticket."""
    return Event(
        type=type_, actor=actor, engagement=finding["engagement"], finding_id=finding["finding_id"], ticket_key=key,
        state=finding["state"], disposition=finding["disposition"], severity=finding["severity"], source=source,
        data={"system": system, **data},
    )  # fmt: skip


def reactivate(conn: Connection, system: str, pairs: list[tuple[str, str]]) -> None:
    """Re-activate (finding_id, ticket_key) links of ``system`` (rare: a ticket carrying an id again)."""
    for fid, key in pairs:
        conn.execute(
            update(L).where(L.c.finding_id == fid, L.c.system == system, L.c.ticket_key == key).values(active=True)
        )


def add(
    conn: Connection,
    store: Store,
    finding: Any,
    system: str,
    key: str,
    *,
    origin: str,
    actor: str,
    source: Source | None = None,
    note: str | None = None,
) -> Event | None:
    """Create or re-activate one link; returns its ``link_added`` event (to append), or None if it exists."""
    state = link_states(conn, [finding["finding_id"]]).get(finding["finding_id"], {}).get((system, key))
    if state:
        return None
    if state is None:
        conn.execute(insert(L).values(row(finding, system, key, origin=origin, at=store.now(), note=note)))
    else:
        reactivate(conn, system, [(finding["finding_id"], key)])
    return added_event(finding, system, key, origin=origin, actor=actor, source=source, note=note)


def remove(
    conn: Connection,
    store: Store,
    finding: Any,
    system: str,
    key: str,
    *,
    actor: str,
    reason: str,
    source: Source | None = None,
) -> Event | None:
    """Deactivate one link; returns its ``link_removed`` event (to append), or None if it was not active."""
    done = conn.execute(
        update(L)
        .where(L.c.finding_id == finding["finding_id"], L.c.system == system, L.c.ticket_key == key, L.c.active)
        .values(active=False)
    ).rowcount
    if not done:
        return None
    return _event("link_removed", finding, system, key, actor, source, {"reason": reason})


def link(
    store: Store, finding_id: str, ticket_key: str, *, system: str, actor: str, note: str | None = None
) -> dict[str, Any]:
    """Link a finding to a ticket by hand (``handoffkit link``)."""
    actor = require_actor(actor)
    template = Event(
        type="link_added",
        actor=actor,
        finding_id=finding_id,
        ticket_key=ticket_key,
        data={"system": system, "origin": "manual"},
    )
    with mutation(store, template) as conn:
        finding = findings.get(conn, finding_id)._mapping
        template.engagement = finding["engagement"]
        _check_system(system)
        if not ticket_key.strip():
            raise RefusedError("a ticket key is required")
        ev = add(conn, store, finding, system, ticket_key.strip(), origin="manual", actor=actor, note=note)
        if ev is None:
            raise RefusedError(f"{finding_id} is already linked to {system}:{ticket_key}")
        append(conn, store, [ev])
        _closed_already(conn, store, finding, system, ticket_key.strip(), actor)
    return {"finding_id": finding_id, "system": system, "ticket_key": ticket_key, "active": True}


def _closed_already(conn: Connection, store: Store, finding: Any, system: str, key: str, actor: str) -> None:
    """Linking a finding to a ticket the last export showed as done is its closure: the finding moves
    to awaiting_verification (and no further), as if the closure had been observed now."""
    t = schema.tickets.c
    snapshot = conn.execute(
        select(t.status, t.resolution).where(
            t.engagement == finding["engagement"],
            t.system == system,
            t.key == key,
            t.current,
            t.status_category == "done",
        )
    ).first()
    if snapshot is not None and finding["state"] in CLOSABLE:
        findings.change(
            conn,
            store,
            finding,
            {"state": "awaiting_verification"},
            type="ticket_closed_observed",
            actor=actor,
            ticket_key=key,
            data={"system": system, "status": snapshot.status, "resolution": snapshot.resolution, "on_link": True},
        )


def unlink(
    store: Store, finding_id: str, ticket_key: str, *, system: str, actor: str, reason: str = "unlinked by hand"
) -> dict[str, Any]:
    """Deactivate a link (``handoffkit unlink``)."""
    actor = require_actor(actor)
    template = Event(
        type="link_removed", actor=actor, finding_id=finding_id, ticket_key=ticket_key, data={"system": system}
    )
    with mutation(store, template) as conn:
        finding = findings.get(conn, finding_id)._mapping
        template.engagement = finding["engagement"]
        _check_system(system)
        ev = remove(conn, store, finding, system, ticket_key, actor=actor, reason=reason)
        if ev is None:
            raise RefusedError(f"{finding_id} has no active link to {system}:{ticket_key}")
        append(conn, store, [ev])
    return {"finding_id": finding_id, "system": system, "ticket_key": ticket_key, "active": False}


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise RefusedError(f"--system {system!r}: expected one of {', '.join(SYSTEMS)}")
