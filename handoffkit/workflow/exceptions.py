"""The exception register: accepted risk, approved by someone other than the requester, with expiry.

An excepted finding is held out of every queue (routing never gives it a ticket or a payload). On
expiry the next routing run returns it to routing and logs ``exception_expired``; a revoked exception
returns it at once.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, insert, select, update

from handoffkit.errors import RefusedError
from handoffkit.record import engagements, findings, people, schema
from handoffkit.record.log import Event, mutation
from handoffkit.record.model import CLOSED_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store

X = schema.exceptions


def grant(store: Store, finding_id: str, *, approver: str, reason: str, expires: date, actor: str) -> dict[str, Any]:
    """Grant an exception requested by ``actor`` and approved by a different ``approver``."""
    actor = require_actor(actor)
    template = Event(
        type="exception_granted",
        actor=actor,
        finding_id=finding_id,
        data={"approver": approver, "expires_on": expires, "reason": reason},
    )
    with mutation(store, template) as conn:
        row = findings.get(conn, finding_id)._mapping
        template.engagement = row["engagement"]
        people.check_approval(actor, approver, people.directory(conn, row["engagement"]), acting_as="requester")
        if not reason or not reason.strip():
            raise RefusedError("an exception needs a --reason")
        today = store.now().date()
        if expires <= today:
            raise RefusedError(f"--expires {expires} is not in the future (today is {today})")
        if row["state"] in CLOSED_STATES:
            raise RefusedError(f"{finding_id} is {row['state']}; there is no risk left to accept")
        if _active(conn, finding_id) is not None:
            raise RefusedError(f"{finding_id} already has an active exception; revoke it first")
        exception_id = conn.execute(
            insert(X).values(
                finding_id=finding_id,
                engagement=row["engagement"],
                requester=actor,
                approver=approver.strip(),
                reason=reason.strip(),
                granted_at=store.now(),
                expires_on=expires,
                status="active",
            )
        ).inserted_primary_key[0]
        changes = (
            {"state": "excepted", "disposition": "held_exception"}
            if row["state"] not in ("new", "awaiting_verification")
            else {}
        )
        findings.change(
            conn,
            store,
            row,
            changes,
            type="exception_granted",
            actor=actor,
            data={
                "exception_id": exception_id,
                "approver": approver.strip(),
                "expires_on": expires,
                "reason": reason.strip(),
            },
        )
    return {
        "exception_id": exception_id,
        "finding_id": finding_id,
        "approver": approver.strip(),
        "expires_on": expires.isoformat(),
        "status": "active",
    }


def revoke(store: Store, finding_id: str, *, reason: str, actor: str) -> dict[str, Any]:
    """Revoke the finding's active exception; the finding goes back to routing."""
    actor = require_actor(actor)
    template = Event(type="exception_revoked", actor=actor, finding_id=finding_id, data={"reason": reason})
    with mutation(store, template) as conn:
        row = findings.get(conn, finding_id)._mapping
        template.engagement = row["engagement"]
        active = _active(conn, finding_id)
        if active is None:
            raise RefusedError(f"{finding_id} has no active exception")
        if not reason or not reason.strip():
            raise RefusedError("revoking an exception needs a --reason")
        _close(conn, store, active.exception_id, "revoked", actor)
        findings.change(
            conn,
            store,
            row,
            _back_to_routing(row),
            type="exception_revoked",
            actor=actor,
            data={"exception_id": active.exception_id, "reason": reason.strip()},
        )
    return {"exception_id": active.exception_id, "finding_id": finding_id, "status": "revoked"}


def expire(conn: Connection, store: Store, engagement: str, today: date, actor: str) -> list[str]:
    """Close exceptions whose expiry date has passed (called by routing, inside its transaction)."""
    due = conn.execute(
        select(X.c.exception_id, X.c.finding_id, X.c.expires_on)
        .where(X.c.engagement == engagement, X.c.status == "active", X.c.expires_on < today)
        .order_by(X.c.exception_id)
    ).all()
    items = []
    for ex in due:
        _close(conn, store, ex.exception_id, "expired", actor)
        row = findings.get(conn, ex.finding_id)._mapping
        items.append(
            findings.Change(row, _back_to_routing(row), {"exception_id": ex.exception_id, "expired_on": ex.expires_on})
        )
    findings.change_many(conn, store, items, type="exception_expired", actor=actor)
    return [ex.finding_id for ex in due]


def _back_to_routing(row: Any) -> dict[str, Any]:
    return {"state": "validated", "disposition": None} if row["state"] == "excepted" else {}


def _active(conn: Connection, finding_id: str) -> Any:
    return conn.execute(select(X).where(X.c.finding_id == finding_id, X.c.status == "active")).first()


def _close(conn: Connection, store: Store, exception_id: int, status: str, actor: str) -> None:
    conn.execute(
        update(X).where(X.c.exception_id == exception_id).values(status=status, closed_at=store.now(), closed_by=actor)
    )


def active_ids(conn: Connection, engagement: str) -> set[str]:
    return set(
        conn.execute(select(X.c.finding_id).where(X.c.engagement == engagement, X.c.status == "active")).scalars()
    )


def list_exceptions(store: Store, engagement: str, status: str | None = None) -> list[dict[str, Any]]:
    with store.read() as conn:
        engagements.get(conn, engagement)
        stmt = select(X).where(X.c.engagement == engagement).order_by(X.c.exception_id)
        if status:
            stmt = stmt.where(X.c.status == status)
        return [dict(r._mapping) for r in conn.execute(stmt)]


__all__ = ["active_ids", "expire", "grant", "list_exceptions", "revoke"]
