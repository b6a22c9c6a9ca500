"""Closure verification: a finding closes on verification evidence alone, never on a ticket's status.

Accepted kinds (only those the policy's ``closure_verification.accepted`` lists):

- ``rescan``      — an ``absent_in_rescan`` record from a scan ingested after the ticket was closed
                    (or, with no closure observed, after the finding was routed);
- ``retest``      — a manual retest that references an artefact: an evidence file from the evidence
                    directory (stored by its SHA-256 and name, :mod:`~handoffkit.workflow.evidence_files`),
                    or a text opening with ``sha256:<64 hex digits>`` (the retest report's hash) or
                    ``run:<id>`` (the tool run that retested it), a note allowed after it; free text
                    alone is refused — only an attestation may rest on someone's word;
- ``commit``      — a remediation commit reference: ``repo@<7-40 hex sha>`` or an http(s) URL;
- ``attestation`` — the finding's named owner attests, and a **different** named approver approves
                    (identities compared case- and whitespace-insensitively).

A refusal changes nothing and logs one ``denied`` event with the reason; success moves the finding
to ``verified_closed`` and attaches the evidence to the record.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import Connection, desc, func, insert, select

from handoffkit.errors import RefusedError
from handoffkit.record import engagements, findings, people, schema
from handoffkit.record.log import Event, mutation
from handoffkit.record.model import VERIFICATION_KINDS
from handoffkit.record.people import require_actor
from handoffkit.record.store import bulk_insert
from handoffkit.workflow.evidence_files import EvidenceFiles

_COMMIT = re.compile(r"^[\w.\-/:]+@[0-9a-fA-F]{7,40}$")
_URL = re.compile(r"^https?://\S+$")
VERIFIABLE = (
    "routed",
    "awaiting_verification",
    "paused_no_owner",
    "validated",
    "held_back",
    "excepted",
    "reopened",
    "new",
)


def verify(
    store: Any,
    finding_id: str,
    *,
    kind: str,
    evidence: str | None,
    actor: str,
    approver: str | None = None,
    evidence_files: EvidenceFiles | None = None,
) -> dict[str, Any]:
    """Close ``finding_id`` on evidence of ``kind`` (see the module docstring) or refuse.

    ``evidence_files``: where a retest's evidence file may be read from (default: ``--evidence-dir``'s
    environment variable, else nowhere).
    """
    actor = require_actor(actor)
    files = evidence_files or EvidenceFiles.configured()
    template = Event(
        type="finding_verified_closed", actor=actor, finding_id=finding_id, data={"kind": kind, "approver": approver}
    )
    with mutation(store, template) as conn:
        row = findings.get(conn, finding_id)._mapping
        template.engagement = row["engagement"]
        policy = engagements.policy(conn, row["engagement"])
        if kind not in VERIFICATION_KINDS:
            raise RefusedError(f"--kind {kind!r}: expected one of {', '.join(VERIFICATION_KINDS)}")
        if kind not in policy.closure_verification.accepted:
            raise RefusedError(
                f"the policy does not accept {kind!r} evidence (accepted: "
                f"{', '.join(policy.closure_verification.accepted)})"
            )
        if row["state"] not in VERIFIABLE:
            raise RefusedError(f"{finding_id} is {row['state']}; only an open finding can be verified closed")
        content, location, detail = _EVIDENCE[kind](conn, row, evidence, actor, approver, files)
        now = store.now()
        sha = hashlib.sha256(content).hexdigest()
        evidence_id = conn.execute(
            insert(schema.evidence).values(
                finding_id=finding_id,
                kind=kind,
                sha256=sha,
                media_type=detail.pop("media_type", "text/plain"),
                content=content,
                location=location,
                scan_id=detail.get("scan_id"),
                actor=actor,
                created_at=now,
            )
        ).inserted_primary_key[0]
        findings.change(
            conn,
            store,
            row,
            {"state": "verified_closed", "closed_at": now},
            type="finding_verified_closed",
            actor=actor,
            data={
                "kind": kind,
                "evidence_id": evidence_id,
                "evidence_sha256": sha,
                "approver": approver,
                "location": location,
                **detail,
            },
        )
    return {
        "finding_id": finding_id,
        "state": "verified_closed",
        "kind": kind,
        "evidence_id": evidence_id,
        "evidence_sha256": sha,
    }


def verify_rescans(
    store: Any, engagement: str, *, actor: str, evidence: str | None = None, finding_ids: list[str] | None = None
) -> dict[str, Any]:
    """Close, in one set-based pass, every open finding (or every one of ``finding_ids``) a rescan has
    proved absent since its ticket closed (or since it was routed) — the bulk form of
    ``verify --kind rescan``; findings without such evidence are left as they are."""
    actor = require_actor(actor)
    template = Event(
        type="finding_verified_closed", actor=actor, engagement=engagement, data={"kind": "rescan", "bulk": True}
    )
    with mutation(store, template) as conn:
        policy = engagements.policy(conn, engagement)
        if "rescan" not in policy.closure_verification.accepted:
            raise RefusedError("the policy does not accept rescan evidence")
        wanted = None if finding_ids is None else set(finding_ids)
        rows = [
            dict(r._mapping)
            for r in conn.execute(_proved_absent(engagement))
            if wanted is None or r.finding_id in wanted
        ]
        if not rows:
            return {"engagement": engagement, "verified": 0, "finding_ids": []}
        now = schema.format_ts(store.now())
        evidence_rows = [
            {
                "finding_id": r["finding_id"],
                "kind": "rescan",
                "media_type": "text/plain",
                "content": _rescan_text(r).encode(),
                "sha256": hashlib.sha256(_rescan_text(r).encode()).hexdigest(),
                "location": r["absent_location"],
                "scan_id": r["absent_scan"],
                "actor": actor,
                "created_at": now,
            }
            for r in rows
        ]
        bulk_insert(conn, schema.evidence, evidence_rows)
        e = schema.evidence.c
        ids = dict(
            conn.execute(
                select(e.finding_id, e.evidence_id).where(e.kind == "rescan", e.created_at == now, e.actor == actor)
            ).all()
        )
        findings.change_many(
            conn,
            store,
            [
                findings.Change(
                    r,
                    {"state": "verified_closed", "closed_at": now},
                    {
                        "kind": "rescan",
                        "evidence_id": ids[r["finding_id"]],
                        "evidence_sha256": ev["sha256"],
                        "absent_evidence_id": r["absent_id"],
                        "scan_id": r["absent_scan"],
                        "note": evidence,
                    },
                )
                for r, ev in zip(rows, evidence_rows, strict=True)
            ],
            type="finding_verified_closed",
            actor=actor,
        )
    return {"engagement": engagement, "verified": len(rows), "finding_ids": [r["finding_id"] for r in rows]}


def _rescan_text(row: dict[str, Any]) -> str:
    return f"absent_in_rescan evidence {row['absent_id']} from {row['absent_location']} (scan {row['absent_scan']})"


def _proved_absent(engagement: str):
    """Open findings whose latest absent_in_rescan evidence is newer than their closure reference."""
    f, ev, e = schema.findings, schema.events.c, schema.evidence.c
    closed = (
        select(ev.finding_id, func.max(ev.occurred_at).label("closed"))
        .where(ev.engagement == engagement, ev.type == "ticket_closed_observed", ev.outcome == "success")
        .group_by(ev.finding_id)
        .subquery()
    )
    latest = (
        select(e.finding_id, func.max(e.evidence_id).label("absent_id"))
        .where(e.kind == "absent_in_rescan")
        .group_by(e.finding_id)
        .subquery()
    )
    absent = schema.evidence.alias("absent")
    since = func.coalesce(closed.c.closed, f.c.routed_at)
    return (
        select(
            f,
            absent.c.evidence_id.label("absent_id"),
            absent.c.location.label("absent_location"),
            absent.c.scan_id.label("absent_scan"),
        )
        .join(latest, latest.c.finding_id == f.c.finding_id)
        .join(absent, absent.c.evidence_id == latest.c.absent_id)
        .outerjoin(closed, closed.c.finding_id == f.c.finding_id)
        .where(f.c.engagement == engagement, f.c.state.in_(VERIFIABLE), since.is_not(None), absent.c.created_at > since)
        .order_by(f.c.number)
    )


def _closure_reference(conn: Connection, row: Any) -> Any:
    """When the ticket was closed (latest ``ticket_closed_observed``), else when the finding was routed."""
    ev = schema.events.c
    closed = conn.execute(
        select(ev.occurred_at)
        .where(ev.finding_id == row["finding_id"], ev.outcome == "success", ev.type == "ticket_closed_observed")
        .order_by(desc(ev.seq))
        .limit(1)
    ).scalar()
    return closed or (schema.format_ts(row["routed_at"]) if row["routed_at"] else None)


def _rescan(conn: Connection, row: Any, evidence: str | None, actor: str, approver: str | None, files: Any):
    since = _closure_reference(conn, row)
    if since is None:
        raise RefusedError(
            f"{row['finding_id']} was never routed nor its ticket closed; a rescan cannot "
            "verify a fix that was never handed off"
        )
    e = schema.evidence.c
    found = conn.execute(
        select(e.evidence_id, e.location, e.scan_id, e.created_at, e.sha256)
        .where(e.finding_id == row["finding_id"], e.kind == "absent_in_rescan")
        .order_by(desc(e.evidence_id))
    ).first()
    if found is None or schema.format_ts(found.created_at) <= since:
        raise RefusedError(
            f"no rescan after {since} reports {row['finding_id']} absent; ingest a rescan of "
            f"{row['asset_ref']} with {row['tool']} first"
        )
    text = f"absent_in_rescan evidence {found.evidence_id} from {found.location} (scan {found.scan_id})"
    return (
        text.encode(),
        found.location,
        {"scan_id": found.scan_id, "absent_evidence_id": found.evidence_id, "note": evidence},
    )


def _retest(conn: Connection, row: Any, evidence: str | None, actor: str, approver: str | None, files: EvidenceFiles):
    if not evidence or not evidence.strip():
        raise RefusedError(f"a retest needs --evidence: {_ARTEFACT}")
    found = files.read(evidence)
    if found is not None:
        return found.content, found.name, {"media_type": found.media_type, "file": found.name}
    text = " ".join(evidence.split())
    ref = artefact(text.split(" ", 1)[0])
    return text.encode(), ref, {"artefact": ref}


_SHA256 = re.compile(r"^sha256:([0-9a-fA-F]*)$", re.IGNORECASE)
_RUN = re.compile(r"^run:[A-Za-z0-9][\w.:/#@+-]{0,127}$")
_ARTEFACT = (
    "an evidence file, sha256:<64 hex digits> of the retest report or run:<id> of the tool run, "
    "then any note; free text alone is accepted only as an attestation (owner and a different approver)"
)


def artefact(token: str) -> str:
    """A retest's artefact reference, ``sha256:<64 hex>`` (lower-cased) or ``run:<id>``, or a refusal."""
    sha = _SHA256.match(token)
    if sha:
        digits = sha.group(1)
        if len(digits) != 64:
            raise RefusedError(f"--evidence: a sha256 has 64 hex digits, this one {len(digits)}")
        return f"sha256:{digits.lower()}"
    if token.lower().startswith("sha256:"):
        raise RefusedError("--evidence: a sha256 is 64 hex digits (0-9, a-f)")
    if _RUN.match(token):
        return token
    raise RefusedError(f"--evidence does not reference an artefact; a retest needs {_ARTEFACT}")


def _commit(conn: Connection, row: Any, evidence: str | None, actor: str, approver: str | None, files: Any):
    ref = (evidence or "").strip()
    if not (_COMMIT.match(ref) or _URL.match(ref)):
        raise RefusedError(
            f"--evidence {ref!r}: a commit needs a reference: repo@<commit sha> "
            "(7-40 hex digits) or an http(s) URL to the commit or merge request"
        )
    return ref.encode(), ref, {}


def _attestation(conn: Connection, row: Any, evidence: str | None, actor: str, approver: str | None, files: Any):
    owner = row["owner_name"]
    if not owner:
        raise RefusedError(f"{row['finding_id']} has no named owner; an attestation needs one")
    directory = people.directory(conn, row["engagement"])
    if not people.same_person(actor, owner, directory):
        raise RefusedError(f"an attestation must come from the named owner {owner!r}, not {actor!r}")
    people.check_approval(actor, approver, directory, acting_as="attesting owner")
    if not evidence or not evidence.strip():
        raise RefusedError("an attestation needs --evidence: what the owner attests was done")
    return evidence.strip().encode(), "attestation", {"owner": owner}


_EVIDENCE = {"rescan": _rescan, "retest": _retest, "commit": _commit, "attestation": _attestation}
