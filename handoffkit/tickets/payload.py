"""Ticket payloads: what a person imports into Jira, ServiceNow or GitHub for a routed finding.

handoffkit never creates tickets itself. For findings routed to ``ticket`` with a resolved owner it
produces payloads that carry the finding id (summary token, label and finding-id field), the
calibrated severity, the asset, reproduction steps (the scanner module reference, never the evidence
itself), CVE/CWE ids, the SLA due date and the permalink to the record. Each payload is first built
in a neutral shape that must validate against the JSON Schema derived from the policy's
``ticket_payload`` (:func:`json_schema`); issuing is logged with each payload's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from handoffkit.errors import RefusedError
from handoffkit.record import engagements, ids, schema
from handoffkit.record._jsonschema import jsonschema
from handoffkit.record.canonical import canonical_json
from handoffkit.record.csvsafe import rows_to_csv, to_csv
from handoffkit.record.log import Event, append, mutation
from handoffkit.record.model import SEVERITIES
from handoffkit.record.people import require_actor
from handoffkit.record.policy import Policy
from handoffkit.record.store import Store

TARGETS = ("jira", "servicenow", "github")
FORMATS = ("json", "csv", "md")
ELIGIBLE_STATE = "routed"

_PROPERTIES: dict[str, dict[str, Any]] = {
    "finding_id": {"type": "string", "pattern": f"^{ids.PATTERN}$"},
    "title": {"type": "string", "minLength": 1},
    "severity": {"enum": list(SEVERITIES)},
    "asset": {"type": "string", "minLength": 1},
    "reproduction": {"type": "string", "minLength": 1},
    "cve_cwe": {"type": "array", "items": {"type": "string", "pattern": r"^(CVE-[0-9]{4}-[0-9]{4,}|CWE-[0-9]+)$"}},
    "due_date": {"type": "string", "format": "date"},
    "permalink": {"type": "string"},
    "owner": {
        "type": "object",
        "required": ["team", "role"],
        "additionalProperties": False,
        "properties": {
            "team": {"type": "string", "minLength": 1},
            "role": {"type": "string", "minLength": 1},
            "name": {"type": ["string", "null"]},
        },
    },
    "affected_version": {"type": ["string", "null"]},
    "remediation": {"type": ["string", "null"]},
    "cvss_vector": {"type": ["string", "null"], "pattern": r"^CVSS:"},
}


def json_schema(policy: Policy, engagement: str) -> dict[str, Any]:
    """The JSON Schema every neutral payload must satisfy (required fields from the policy).

    ``additionalProperties`` is false: there is no field a copy of the evidence could travel in.
    """
    fields = [*policy.ticket_payload.required, *policy.ticket_payload.optional, "title", "owner"]
    props = {name: dict(_PROPERTIES[name]) for name in dict.fromkeys(fields)}
    props["permalink"]["pattern"] = "^" + policy.ticket_payload.permalink_pattern(engagement)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "handoffkit ticket payload",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": sorted({*policy.ticket_payload.required, "title", "owner"}),
    }


def validator_for(schema_doc: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema_doc, format_checker=jsonschema.FormatChecker())


def validate(payload: dict[str, Any], schema_doc: dict[str, Any] | jsonschema.Draft202012Validator) -> None:
    """Raise RefusedError naming the first schema violation (pass a validator to reuse it)."""
    validator = schema_doc if isinstance(schema_doc, jsonschema.Draft202012Validator) else validator_for(schema_doc)
    error = next(iter(sorted(validator.iter_errors(payload), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.path) or "(payload)"
        raise RefusedError(
            f"payload for {payload.get('finding_id')} fails the policy's schema at {where}: {error.message}"
        )


def neutral(row: Any, policy: Policy, evidence_sha: str | None) -> dict[str, Any]:
    """The system-neutral payload of one finding (the shape :func:`json_schema` describes)."""
    permalink = policy.ticket_payload.permalink(row["engagement"], row["finding_id"])
    where = row["location"] or row["asset_ref"]
    reproduction = (
        f"Reproduce with {row['tool']} — rule/module {row['rule_ref'] or 'n/a'} — against "
        f"{row['asset_ref']} at {where}. The scanner output is on the record (SHA-256 "
        f"{(evidence_sha or 'n/a')[:16]}…): {permalink}"
    )
    payload = {
        "finding_id": row["finding_id"],
        "title": row["title"],
        "severity": row["severity"],
        "asset": row["asset_ref"],
        "reproduction": reproduction,
        "cve_cwe": [*row["cves"].split(), *row["cwes"].split()],
        "due_date": row["sla_due"].isoformat() if row["sla_due"] else None,
        "permalink": permalink,
        "owner": {"team": row["owner_team"], "role": row["owner_role"], "name": row["owner_name"]},
        "affected_version": None,
        "remediation": None,
        "cvss_vector": row["calibrated_vector"] or row["cvss_vector"],
    }
    wanted = {*policy.ticket_payload.required, *policy.ticket_payload.optional, "title", "owner"}
    return {k: v for k, v in payload.items() if k in wanted and (v is not None or k in policy.ticket_payload.required)}


def _summary(p: dict[str, Any]) -> str:
    return f"[{p['finding_id']}] {p['title']}"[:250]


def _text(p: dict[str, Any]) -> str:
    refs = ", ".join(p.get("cve_cwe") or []) or "none"
    lines = [
        f"Finding: {p['finding_id']} (the security record is canonical; this ticket is a view of it)",
        f"Severity: {p['severity']} (calibrated on the record; edit it there, not here)",
        f"Asset: {p['asset']}",
        f"Due: {p.get('due_date')}",
        f"CVE/CWE: {refs}",
        f"Owner: {p['owner']['role']}, {p['owner']['team']}"
        + (f" ({p['owner']['name']})" if p["owner"].get("name") else ""),
        f"Reproduction: {p['reproduction']}",
    ]
    if p.get("cvss_vector"):
        lines.append(f"CVSS: {p['cvss_vector']}")
    lines.append(f"Record: {p['permalink']}")
    return "\n".join(lines)


def severity_label(policy: Policy, target: str, band: str) -> str:
    """The label a ticket carries for its band: GitHub's priority label, elsewhere ``severity-<band>``
    (per-finding, batch and update payloads all use this one)."""
    return policy.ticket_payload.priority_for("github", band) if target == "github" else f"severity-{band}"


def impact(band: str) -> str:
    """ServiceNow's impact and urgency for a band: 1 for critical, 2 for high, 3 below."""
    return str(min(SEVERITIES.index(band) + 1, 3))


def jira_fields(
    policy: Policy,
    *,
    summary: str,
    description: str,
    band: str,
    labels: list[str],
    due_date: str | None,
    team: str,
    finding_ids: str,
) -> dict[str, Any]:
    """A Jira issue's ``fields`` for an import (one finding's ticket, or a batch's listing several ids)."""
    tp = policy.ticket_payload
    fields: dict[str, Any] = {
        "project": {"key": tp.jira_project},
        "issuetype": {"name": tp.jira_issue_type},
        "summary": summary,
        "description": description,
        "priority": {"name": tp.priority_for("jira", band)},
        "labels": labels,
        "duedate": due_date,
        "components": [{"name": team}],
    }
    if tp.jira_finding_field_id:
        fields[tp.jira_finding_field_id] = finding_ids
    return fields


def _labels(p: dict[str, Any], policy: Policy, target: str) -> list[str]:
    return [p["finding_id"], "handoffkit", severity_label(policy, target, p["severity"])]


def for_target(p: dict[str, Any], policy: Policy, target: str) -> dict[str, Any]:
    """Render a neutral payload for one ticket system's import."""
    tp = policy.ticket_payload
    if target == "jira":
        fields = jira_fields(
            policy,
            summary=_summary(p),
            description=_text(p),
            band=p["severity"],
            labels=_labels(p, policy, target),
            due_date=p.get("due_date"),
            team=p["owner"]["team"],
            finding_ids=p["finding_id"],
        )
        return {"fields": fields}
    if target == "servicenow":
        return {
            "short_description": _summary(p),
            "description": _text(p),
            "u_finding_id": p["finding_id"],
            "u_permalink": p["permalink"],
            "priority": tp.priority_for("servicenow", p["severity"]),
            "impact": impact(p["severity"]),
            "urgency": impact(p["severity"]),
            "due_date": p.get("due_date"),
            "assignment_group": p["owner"]["team"],
            "cmdb_ci": p["asset"],
        }
    body = _text(p).replace("\n", "\n\n")
    return {"title": _summary(p), "body": body, "labels": _labels(p, policy, target)}


JIRA_CSV_LABEL_COLUMNS = 3


def jira_csv(payloads: list[dict[str, Any]], policy: Policy) -> str:
    """A CSV for Jira's CSV importer (repeated ``Labels`` columns; dates as yyyy-MM-dd)."""
    header = [
        "Summary",
        "Issue Type",
        "Priority",
        "Description",
        "Due Date",
        "Component/s",
        policy.ticket_payload.custom_field,
        *["Labels"] * JIRA_CSV_LABEL_COLUMNS,
    ]
    rows = []
    for p in payloads:
        labels = _labels(p, policy, "jira")
        rows.append(
            [
                _summary(p),
                policy.ticket_payload.jira_issue_type,
                policy.ticket_payload.priority_for("jira", p["severity"]),
                _text(p),
                p.get("due_date") or "",
                p["owner"]["team"],
                p["finding_id"],
                *labels[:JIRA_CSV_LABEL_COLUMNS],
            ]
        )
    return rows_to_csv(header, rows)


def markdown(payloads: list[dict[str, Any]], policy: Policy, target: str) -> str:
    parts = []
    for p in payloads:
        rendered = for_target(p, policy, "github")
        parts.append(f"## {rendered['title']}\n\nLabels: {', '.join(rendered['labels'])}\n\n{rendered['body']}\n")
    return "\n".join(parts)


def handoff_policy(conn, engagement: str, target: str, fmt: str) -> Policy:
    """The engagement's policy for a handoff to ``target`` in ``fmt``, once both are known (per-finding,
    batch and update payloads open the same way, inside their logged transaction)."""
    if target not in TARGETS:
        raise RefusedError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    if fmt not in FORMATS:
        raise RefusedError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    engagements.get(conn, engagement)
    return engagements.policy(conn, engagement)


def issue(
    store: Store,
    engagement: str,
    *,
    target: str,
    actor: str,
    finding_ids: Sequence[str] | None = None,
    fmt: str = "json",
) -> dict[str, Any]:
    """Build, validate and log the payloads; returns ``{"text", "count", "payloads"}``."""
    actor = require_actor(actor)
    template = Event(
        type="payload_issued",
        actor=actor,
        engagement=engagement,
        data={"target": target, "format": fmt, "findings": list(finding_ids or [])},
    )
    with mutation(store, template) as conn:
        policy = handoff_policy(conn, engagement, target, fmt)
        rows = eligible(conn, engagement, finding_ids)
        checker = validator_for(json_schema(policy, engagement))
        evidence = evidence_sha(conn, [r["finding_id"] for r in rows])
        neutrals = [neutral(r, policy, evidence.get(r["finding_id"])) for r in rows]
        for p in neutrals:
            validate(p, checker)
        rendered = [for_target(p, policy, target) for p in neutrals]
        shas = [hashlib.sha256(canonical_json(r).encode()).hexdigest() for r in rendered]
        append(
            conn,
            store,
            [
                Event(
                    type="payload_issued",
                    actor=actor,
                    engagement=engagement,
                    finding_id=r["finding_id"],
                    state=r["state"],
                    disposition=r["disposition"],
                    severity=r["severity"],
                    data={"target": target, "format": fmt, "sha256": sha},
                )
                for r, sha in zip(rows, shas, strict=True)
            ],
        )
    if fmt == "csv":
        text = jira_csv(neutrals, policy) if target == "jira" else _flat_csv(rendered)
    elif fmt == "md":
        text = markdown(neutrals, policy, target)
    else:
        text = json.dumps({"records": rendered} if target == "servicenow" else rendered, indent=2, ensure_ascii=False)
    return {"text": text, "count": len(rendered), "payloads": rendered, "sha256": shas}


def _flat_csv(rendered: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rendered for k in r))
    return to_csv(rendered, columns)


def eligible(conn, engagement: str, finding_ids: Sequence[str] | None) -> list[dict[str, Any]]:
    """Findings routed to a ticket with a resolved owner (all of them, or exactly ``finding_ids``)."""
    f = schema.findings.c
    stmt = select(schema.findings).where(f.engagement == engagement).order_by(f.number)
    if finding_ids:
        wanted = list(dict.fromkeys(finding_ids))
        rows = [
            dict(r._mapping)
            for start in range(0, len(wanted), 10_000)
            for r in conn.execute(stmt.where(f.finding_id.in_(wanted[start : start + 10_000])))
        ]
    else:
        rows = [
            dict(r._mapping) for r in conn.execute(stmt.where(f.state == ELIGIBLE_STATE, f.disposition == "ticket"))
        ]
    if finding_ids:
        found = {r["finding_id"] for r in rows}
        missing = [i for i in finding_ids if i not in found]
        if missing:
            raise RefusedError(f"not findings of {engagement}: {', '.join(missing)}")
        blocked = [
            f"{r['finding_id']} ({r['state']}, {r['disposition'] or 'not routed'})" for r in rows if not _is_eligible(r)
        ]
        if blocked:
            raise RefusedError(
                "only findings routed to a ticket with a resolved owner get a payload; not: " + ", ".join(blocked)
            )
    return [r for r in rows if _is_eligible(r)]


def _is_eligible(r: dict[str, Any]) -> bool:
    return r["state"] == ELIGIBLE_STATE and r["disposition"] == "ticket" and bool(r["owner_team"])


def evidence_sha(conn, ids: list[str]) -> dict[str, str]:
    """The SHA-256 of each finding's first scanner output (the payload names it, never copies it)."""
    e = schema.evidence.c
    out: dict[str, str] = {}
    for start in range(0, len(ids), 10_000):
        for fid, sha in conn.execute(
            select(e.finding_id, e.sha256)
            .where(e.finding_id.in_(ids[start : start + 10_000]), e.kind == "scanner_output")
            .order_by(e.evidence_id)
        ):
            out.setdefault(fid, sha)
    return out
