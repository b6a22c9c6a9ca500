"""Batch handoffs: one ticket per owner team per sprint or quarter for the bands the policy batches.

A band batches when its rule says ``batch: sprint`` or ``batch: quarter``, or names no cadence and routes
to ``sprint_backlog`` (per sprint) or ``quarterly_cycle`` (per quarter) — :attr:`BandRule.batch_cadence`.
A ticket band gets a ticket per finding (:mod:`~handoffkit.tickets.payload`), a record-only band none.

The batch id is deterministic and readable, and short enough for a GitHub label (50 characters):
``batch-<band>-<period>-<team>``, the period being the sprint's first day (sprints are two weeks long
and start on a Monday, counted from :data:`SPRINT_EPOCH`) or the quarter (``2026-Q3``), the team its
name in lower case with every other character run turned into ``-`` — with six hex digits of the name's
SHA-256 added when that changed the name or made it long, so two teams never share a batch id.

:func:`issue` batches every finding routed to a batching band with a resolved owner that is not in an
open batch already — one whose band and team are the finding's own (a finding whose band or team
changed is batched anew). Each finding batched gets a ``finding_batched`` event setting its
``batch_id``; each batch issued (new, or amended with findings added to it in the same period) one
``batch_issued`` event listing every member and the SHA-256 of its payload. A second run with nothing
new writes nothing. The payload lists each member's id, severity, due date and permalink, and carries
the batch id (a label and a ``[batch-…]`` token in its summary) and every member's id (labels, the
finding-id field and ``[HK-n]`` tokens) so the reconciliation links each member to the batch ticket.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select

from handoffkit.record import findings, schema
from handoffkit.record.canonical import canonical_json
from handoffkit.record.csvsafe import rows_to_csv, to_csv
from handoffkit.record.log import Event, append, mutation
from handoffkit.record.model import SEVERITIES
from handoffkit.record.people import require_actor
from handoffkit.record.policy import Policy
from handoffkit.record.store import Store
from handoffkit.tickets import payload

SPRINT_EPOCH = date(2024, 1, 1)
"""A Monday: sprint periods are the two-week runs counted from it."""
SPRINT_DAYS = 14
MAX_ID = 50
"""GitHub's longest label: a batch id is a label on every system."""

_PERIOD = r"[0-9]{4}-(?:[0-9]{2}-[0-9]{2}|Q[1-4])"
PATTERN = rf"batch-(?:{'|'.join(SEVERITIES)})-{_PERIOD}-[a-z0-9]+(?:-[a-z0-9]+)*"
"""One batch id, as regular-expression text."""
_WHOLE = re.compile(rf"batch-(?P<band>{'|'.join(SEVERITIES)})-(?P<period>{_PERIOD})-(?P<team>[a-z0-9]+(?:-[a-z0-9]+)*)")
_TOKEN = re.compile(rf"\[({PATTERN})\]")
LABELS = {"sprint": "Sprint backlog", "quarter": "Quarterly cycle"}


def period(cadence: str, day: date) -> str:
    """The period ``day`` falls in: the sprint's first day, or the quarter (``2026-Q3``)."""
    if cadence == "sprint":
        start = SPRINT_EPOCH.toordinal() + (day.toordinal() - SPRINT_EPOCH.toordinal()) // SPRINT_DAYS * SPRINT_DAYS
        return date.fromordinal(start).isoformat()
    if cadence == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    raise ValueError(f"batch cadence {cadence!r}: expected sprint or quarter")


def team_part(team: str) -> str:
    """The team as a batch id shows it (module docstring): readable, and never shared by two teams."""
    slug = re.sub(r"[^a-z0-9]+", "-", team.casefold()).strip("-") or "team"
    room = MAX_ID - len("batch-critical-2026-01-01-")
    if slug == team and len(slug) <= room:
        return slug
    tag = hashlib.sha256(team.encode()).hexdigest()[:6]
    return f"{slug[: room - 7].rstrip('-')}-{tag}"


def batch_id(band: str, when: str, team: str) -> str:
    """The batch of a band's findings owned by ``team`` in the period ``when``."""
    return f"batch-{band}-{when}-{team_part(team)}"


def parts(value: str | None) -> tuple[str, str, str] | None:
    """``(band, period, team part)`` of a batch id; None for anything else."""
    found = _WHOLE.fullmatch(value or "")
    return (found["band"], found["period"], found["team"]) if found else None


def carried(labels: tuple[str, ...] | list[str], *texts: str | None) -> str | None:
    """The batch id(s) a ticket names — labels that are one, ``[batch-…]`` tokens in its texts — space-separated
    and sorted (a ticket naming two batches is a batch ticket of neither); None when it names none."""
    found = {label for label in labels if _WHOLE.fullmatch(label)}
    for text in texts:
        found.update(_TOKEN.findall(text or ""))
    return " ".join(sorted(found)) or None


# ----------------------------------------------------------------------------------------- issuing

_COLUMNS = ("finding_id", "severity", "disposition", "owner_team", "batch_id", "row_version", "engagement", "state")


def plan(frame: pd.DataFrame, policy: Policy, day: date) -> pd.DataFrame:
    """The findings of ``frame`` to batch now, with their ``new_batch_id`` (vectorised; no database access):
    routed to a band the policy batches, in that band's disposition, with an owner team, and not in an
    open batch of their band and team."""
    cadence = {b: r.batch_cadence for b, r in policy.routing.bands.items() if r.batch_cadence}
    disposition = {b: policy.routing.bands[b].disposition for b in cadence}
    df = frame[
        frame["state"].eq("routed")
        & frame["owner_team"].notna()
        & frame["severity"].isin(list(cadence))
        & frame["disposition"].eq(frame["severity"].map(disposition))
    ].copy()
    periods = {b: period(c, day) for b, c in cadence.items()}
    teams = {t: team_part(t) for t in df["owner_team"].unique()}
    team = df["owner_team"].map(teams)
    df["new_batch_id"] = "batch-" + df["severity"] + "-" + df["severity"].map(periods) + "-" + team
    current = df["batch_id"].astype(object).where(df["batch_id"].notna(), "").str.fullmatch(_WHOLE.pattern)
    held = df["batch_id"].astype(object).where(current, "").str.extract(_WHOLE.pattern)
    open_batch = current & held["band"].eq(df["severity"]) & held["team"].eq(team)
    return df[~open_batch]


def issue(
    store: Store, engagement: str, *, target: str, actor: str, fmt: str = "json", today: date | None = None
) -> dict[str, Any]:
    """Batch what is due a batch (module docstring) and render each batch touched as one ticket payload.

    Returns ``{"text", "count", "payloads", "batches"}``: ``count`` batch tickets, ``batches`` each one's
    ``batch_id``, ``findings`` (every member) and ``added`` (the members this run batched).

    Raises:
        RefusedError: an unknown target or format, or a member's payload fails the policy's schema
            (nothing is written but one ``denied`` ``batch_issued`` event).
    """
    actor = require_actor(actor)
    template = Event(type="batch_issued", actor=actor, engagement=engagement, data={"target": target, "format": fmt})
    with mutation(store, template) as conn:
        policy = payload.handoff_policy(conn, engagement, target, fmt)
        day = today or store.now().date()
        todo = plan(findings.frame(conn, engagement, _COLUMNS), policy, day)
        if todo.empty:
            return {"text": _render([], policy, target, fmt), "count": 0, "payloads": [], "batches": []}
        added = todo.groupby("new_batch_id")["finding_id"].agg(list).to_dict()
        members = _members(conn, engagement, todo)
        checker = payload.validator_for(payload.json_schema(policy, engagement))
        evidence = payload.evidence_sha(conn, [r["finding_id"] for r in members])
        batches = []
        for bid in sorted(added):
            rows = [r for r in members if r["batch_id"] == bid]
            neutrals = [payload.neutral(r, policy, evidence.get(r["finding_id"])) for r in rows]
            for p in neutrals:
                payload.validate(p, checker)
            batches.append(_neutral(bid, neutrals, policy))
        rendered = [for_target(b, policy, target) for b in batches]
        shas = [hashlib.sha256(canonical_json(r).encode()).hexdigest() for r in rendered]
        sha_of = {b["batch_id"]: sha for b, sha in zip(batches, shas, strict=True)}
        findings.change_many(
            conn,
            store,
            [
                findings.Change(
                    r,
                    {"batch_id": r["new_batch_id"]},
                    {"target": target, "format": fmt, "sha256": sha_of[r["new_batch_id"]]},
                )
                for r in findings.records(todo)
            ],
            type="finding_batched",
            actor=actor,
        )
        append(
            conn,
            store,
            [
                Event(
                    type="batch_issued",
                    actor=actor,
                    engagement=engagement,
                    data={
                        "batch_id": b["batch_id"],
                        "band": b["band"],
                        "disposition": b["disposition"],
                        "cadence": b["cadence"],
                        "period": b["period"],
                        "owner_team": b["owner"]["team"],
                        "findings": [m["finding_id"] for m in b["findings"]],
                        "added": added[b["batch_id"]],
                        "target": target,
                        "format": fmt,
                        "sha256": sha,
                    },
                )
                for b, sha in zip(batches, shas, strict=True)
            ],
        )
    summary = [
        {"batch_id": b["batch_id"], "findings": [m["finding_id"] for m in b["findings"]], "added": added[b["batch_id"]]}
        for b in batches
    ]
    return {
        "text": _render(batches, policy, target, fmt, rendered),
        "count": len(rendered),
        "payloads": rendered,
        "batches": summary,
    }


def _members(conn: Any, engagement: str, todo: pd.DataFrame) -> list[dict[str, Any]]:
    """Every member of the batches ``todo`` touches: those already in them, and ``todo``'s own rows (their
    ``batch_id`` as it will be), in finding number order."""
    f = schema.findings.c
    wanted = sorted(set(todo["new_batch_id"]))
    fresh = set(todo["finding_id"])
    rows = [
        dict(r._mapping)
        for start in range(0, len(wanted), 1_000)
        for r in conn.execute(
            select(schema.findings).where(f.engagement == engagement, f.batch_id.in_(wanted[start : start + 1_000]))
        )
        if r.finding_id not in fresh
    ]
    ids = list(fresh)
    for start in range(0, len(ids), 10_000):
        for r in conn.execute(select(schema.findings).where(f.finding_id.in_(ids[start : start + 10_000]))):
            rows.append(dict(r._mapping))
    target = dict(zip(todo["finding_id"], todo["new_batch_id"], strict=True))
    for r in rows:
        r["batch_id"] = target.get(r["finding_id"], r["batch_id"])
    return sorted(rows, key=lambda r: r["number"])


def _neutral(bid: str, members: list[dict[str, Any]], policy: Policy) -> dict[str, Any]:
    """The system-neutral payload of one batch: its id, band, period and owner, and each member's id,
    title, severity, due date and permalink."""
    band, when, _ = parts(bid)  # type: ignore[misc]
    rule = policy.band_rule(band)
    dues = [m["due_date"] for m in members if m.get("due_date")]
    roles = {m["owner"]["role"] for m in members}
    names = {m["owner"].get("name") for m in members}
    return {
        "batch_id": bid,
        "band": band,
        "disposition": rule.disposition,
        "cadence": rule.batch_cadence,
        "period": when,
        "owner": {
            "team": members[0]["owner"]["team"],
            "role": members[0]["owner"]["role"] if len(roles) == 1 else ", ".join(sorted(roles)),
            "name": next(iter(names)) if len(names) == 1 else None,
        },
        "due_date": min(dues) if dues else None,
        "findings": [
            {k: m.get(k) for k in ("finding_id", "title", "severity", "due_date", "permalink", "asset")}
            for m in members
        ],
    }


def _summary(b: dict[str, Any]) -> str:
    n = len(b["findings"])
    what = f"{LABELS[b['cadence']]} {b['period']}"
    return f"[{b['batch_id']}] {what}: {n} {b['band']} finding{'s' * (n != 1)} for {b['owner']['team']}"[:250]


def _text(b: dict[str, Any], markdown: bool = False) -> str:
    owner = b["owner"]
    head = [
        f"Batch: {b['batch_id']} (the security record is canonical; this ticket is a view of the findings it lists)",
        f"{LABELS[b['cadence']]}: {b['period']} — severity {b['band']}, earliest due {b['due_date']}",
        f"Owner: {owner['role']}, {owner['team']}" + (f" ({owner['name']})" if owner["name"] else ""),
        "Close each finding on the record with verification evidence; closing this ticket closes none.",
        "",
    ]
    if markdown:
        rows = ["| Finding | Severity | Due | Title | Record |", "| --- | --- | --- | --- | --- |"]
        rows += [
            f"| [{m['finding_id']}] | {m['severity']} | {m['due_date']} | {m['title']} | {m['permalink']} |"
            for m in b["findings"]
        ]
    else:
        rows = [
            f"- [{m['finding_id']}] {m['severity']}, due {m['due_date']}: {m['title']} — {m['permalink']}"
            for m in b["findings"]
        ]
    return "\n".join(head + rows)


def _labels(b: dict[str, Any], policy: Policy, target: str) -> list[str]:
    severity = payload.severity_label(policy, target, b["band"])
    return [b["batch_id"], "handoffkit", severity, *(m["finding_id"] for m in b["findings"])]


def for_target(b: dict[str, Any], policy: Policy, target: str) -> dict[str, Any]:
    """Render one batch for a ticket system's import (the shapes :func:`payload.for_target` uses)."""
    tp = policy.ticket_payload
    ids = ", ".join(m["finding_id"] for m in b["findings"])
    if target == "jira":
        fields = payload.jira_fields(
            policy,
            summary=_summary(b),
            description=_text(b),
            band=b["band"],
            labels=_labels(b, policy, target),
            due_date=b["due_date"],
            team=b["owner"]["team"],
            finding_ids=ids,
        )
        return {"fields": fields}
    if target == "servicenow":
        return {
            "short_description": _summary(b),
            "description": _text(b),
            "u_finding_id": ids,
            "u_batch_id": b["batch_id"],
            "priority": tp.priority_for("servicenow", b["band"]),
            "impact": payload.impact(b["band"]),
            "urgency": payload.impact(b["band"]),
            "due_date": b["due_date"],
            "assignment_group": b["owner"]["team"],
        }
    return {"title": _summary(b), "body": _text(b, markdown=True), "labels": _labels(b, policy, target)}


def _render(
    batches: list[dict[str, Any]], policy: Policy, target: str, fmt: str, rendered: list[dict[str, Any]] | None = None
) -> str:
    rendered = rendered or []
    if fmt == "csv" and target == "jira":
        labels = [_labels(b, policy, "jira") for b in batches]
        width = max((len(x) for x in labels), default=0)
        header = ["Summary", "Issue Type", "Priority", "Description", "Due Date", "Component/s"]
        header += [policy.ticket_payload.custom_field, *["Labels"] * width]
        rows = [
            [
                _summary(b),
                policy.ticket_payload.jira_issue_type,
                policy.ticket_payload.priority_for("jira", b["band"]),
                _text(b),
                b["due_date"] or "",
                b["owner"]["team"],
                ", ".join(m["finding_id"] for m in b["findings"]),
                *x,
                *[""] * (width - len(x)),
            ]
            for b, x in zip(batches, labels, strict=True)
        ]
        return rows_to_csv(header, rows)
    if fmt == "csv":
        columns = list(dict.fromkeys(k for r in rendered for k in r))
        return to_csv(rendered, columns)
    if fmt == "md":
        parts_ = []
        for b in batches:
            shown = for_target(b, policy, "github")
            parts_.append(f"## {shown['title']}\n\nLabels: {', '.join(shown['labels'])}\n\n{shown['body']}\n")
        return "\n".join(parts_)
    return json.dumps({"records": rendered} if target == "servicenow" else rendered, indent=2, ensure_ascii=False)
