"""The triage gate: a person decides whether a finding is real before anything routes it.

Only ``validated`` findings are ever routed (routing fires after triage, never before). Validation
starts the SLA clock (``validated_at``); a reopened finding that is validated again starts a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from handoffkit.errors import NotFoundError, RefusedError
from handoffkit.record import engagements, findings, schema
from handoffkit.record.log import Event, mutation
from handoffkit.record.model import SEVERITIES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store

OUTCOMES = ("validated", "false_positive", "duplicate")
TRIAGEABLE = ("new", "reopened", "validated", "routed", "paused_no_owner", "held_back", "false_positive", "duplicate")
"""States a triage decision may be taken (or revised) in; closed or excepted findings are not."""


def select_ids(
    store: Store,
    engagement: str,
    *,
    tool: str | None = None,
    rule: str | None = None,
    asset: str | None = None,
    severity: str | None = None,
    state: str | None = "new",
) -> list[str]:
    """Finding ids matching a filter (``--tool``, ``--rule``, ``--asset`` glob, ``--severity``)."""
    f = schema.findings.c
    stmt = select(f.finding_id).where(f.engagement == engagement).order_by(f.number)
    if tool:
        stmt = stmt.where(f.tool == tool)
    if rule:
        stmt = stmt.where(f.rule_ref == rule)
    if asset:
        stmt = stmt.where(f.asset_ref.like(asset.replace("*", "%").replace("?", "_")))
    if severity:
        if severity not in SEVERITIES:
            raise RefusedError(f"--severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
        stmt = stmt.where(f.severity == severity)
    if state:
        stmt = stmt.where(f.state == state)
    with store.read() as conn:
        engagements.get(conn, engagement)
        return list(conn.execute(stmt).scalars())


def triage(
    store: Store,
    finding_ids: Sequence[str],
    outcome: str,
    *,
    reason: str,
    actor: str,
    duplicate_of: str | None = None,
    expected_versions: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Record one triage decision for each finding (one transaction; all or nothing)."""
    actor = require_actor(actor)
    template = Event(type="finding_triaged", actor=actor, data={"as": outcome, "findings": list(finding_ids)})
    with mutation(store, template) as conn:
        if outcome not in OUTCOMES:
            raise RefusedError(f"--as {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        if not reason or not reason.strip():
            raise RefusedError("a triage decision needs a --reason")
        if not finding_ids:
            raise RefusedError("no findings to triage (check the ids or the filter)")
        rows = _rows(conn, list(finding_ids))
        template.engagement = rows[0]["engagement"]
        _check(conn, rows, outcome, duplicate_of)
        now = store.now()
        items = []
        for row in rows:
            if expected_versions and expected_versions.get(row["finding_id"], row["row_version"]) != row["row_version"]:
                from handoffkit.errors import ConcurrentEditError

                raise ConcurrentEditError(f"finding {row['finding_id']} changed since it was read; reload and retry")
            changes = _changes(row, outcome, now)
            items.append(
                findings.Change(row, changes, {"as": outcome, "reason": reason.strip(), "duplicate_of": duplicate_of})
            )
        findings.change_many(conn, store, items, type="finding_triaged", actor=actor)
    return [{"finding_id": i.before["finding_id"], "triage": outcome, "state": i.changes.get("state")} for i in items]


def _rows(conn: Connection, ids: list[str]) -> list[Any]:
    """The findings' rows in the order given, read in chunks (not one round trip per finding)."""
    f = schema.findings.c
    found: dict[str, Any] = {}
    for start in range(0, len(ids), 10_000):
        for row in conn.execute(select(schema.findings).where(f.finding_id.in_(ids[start : start + 10_000]))):
            found[row.finding_id] = row._mapping
    missing = next((fid for fid in ids if fid not in found), None)
    if missing is not None:
        raise RefusedError(f"no finding {missing!r} (finding ids look like HK-123)")
    return [found[fid] for fid in ids]


def _row(conn: Connection, fid: str) -> Any:
    try:
        return findings.get(conn, fid)._mapping
    except NotFoundError as exc:
        raise RefusedError(str(exc)) from exc


def _check(conn: Connection, rows: list[Any], outcome: str, duplicate_of: str | None) -> None:
    engagements_seen = {r["engagement"] for r in rows}
    if len(engagements_seen) > 1:
        raise RefusedError(
            f"findings from several engagements ({', '.join(sorted(engagements_seen))}); "
            "triage one engagement at a time"
        )
    blocked = [f"{r['finding_id']} ({r['state']})" for r in rows if r["state"] not in TRIAGEABLE]
    if blocked:
        raise RefusedError(f"cannot triage {', '.join(blocked)}: closed, excepted or awaiting verification")
    if outcome == "duplicate":
        if not duplicate_of:
            raise RefusedError("--as duplicate needs --duplicate-of FINDING (the finding it duplicates)")
        original = _row(conn, duplicate_of)
        if original["engagement"] not in engagements_seen or duplicate_of in {r["finding_id"] for r in rows}:
            raise RefusedError(f"--duplicate-of {duplicate_of}: must be another finding of the same engagement")
    elif duplicate_of:
        raise RefusedError("--duplicate-of only goes with --as duplicate")


def _changes(row: Any, outcome: str, now: Any) -> dict[str, Any]:
    if outcome != "validated":
        return {"triage": outcome, "state": outcome, "disposition": None}
    changes: dict[str, Any] = {"triage": "validated"}
    if row["state"] in ("new", "reopened", "false_positive", "duplicate"):
        changes["state"] = "validated"
    if row["validated_at"] is None or row["state"] == "reopened":
        changes["validated_at"] = now  # the SLA clock starts here
    return changes
