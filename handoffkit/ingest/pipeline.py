"""Scan ingestion: a scanner file becomes findings, evidence and events — all of it, or none of it.

Per file, in this order:

1. the file is parsed (format detected from content) and its records deduplicated on fingerprint. A
   scan is its content *and* its scan instant — read from the file where the format carries one, else
   given (``scanned_at``), else the ingest time: the same bytes for the same instant, already ingested
   into the engagement, change nothing and log one ``ingest_duplicate`` event, while the same bytes of
   a later scan (a deterministic scanner's) are a rescan like any other;
3. the normalised batch passes the Great Expectations gate (a failing batch is refused);
4. one write transaction inserts the scan, the new findings with their raw items as evidence, marks
   the ones seen again, reopens verified-closed ones that came back, records ``absent_in_rescan``
   evidence for open findings in the scan's scope that it no longer reports, and logs every change.

A file that fails at any step — a decode error included — leaves the record unchanged, logs one
``failure`` event naming it without quoting it (:mod:`~handoffkit.record.refusals`), and the other
files of the same command still load.
"""

from __future__ import annotations

import fnmatch
import gc
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, or_, select

from handoffkit.errors import HandoffkitError
from handoffkit.ingest import quality
from handoffkit.record import engagements, findings, ids, replay, schema
from handoffkit.record.canonical import sha256_bytes
from handoffkit.record.inputs import read_bytes
from handoffkit.record.log import Event, Source, append, log_event
from handoffkit.record.model import OPEN_STATES, NormalisedFinding, ParseResult
from handoffkit.record.owners import parents
from handoffkit.record.people import require_actor
from handoffkit.record.refusals import as_refusal, refusal
from handoffkit.record.store import Store, insert_tuples

Progress = Callable[[str], None]
CHUNK = 10_000


@dataclass
class FileResult:
    """What happened to one file (the ``--format json`` shape of ``ingest scan``)."""

    file: str
    sha256: str | None = None
    format: str | None = None
    parsed: int = 0
    parsed_by_kind: dict[str, int] = field(default_factory=dict)
    new: int = 0
    seen_again: int = 0
    reopened: int = 0
    absent_in_rescan: int = 0
    scanned_at: str | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ingest_scan(
    store: Store,
    engagement: str,
    paths: Sequence[str | Path],
    *,
    actor: str,
    fmt: str = "auto",
    scope: str | None = None,
    fallback_encoding: str | None = None,
    progress: Progress | None = None,
    scanned_at: datetime | str | None = None,
    served_gate: bool = False,
) -> list[FileResult]:
    """Ingest scanner files, each in its own transaction; see the module docstring. ``scanned_at`` is
    the scan instant of files that do not carry one (a date means the end of that day, UTC).
    ``served_gate`` hands the data-quality check to the long-lived gate process
    (:mod:`handoffkit.ingest.gate_server`; the CLI's choice) instead of loading Great Expectations here."""
    actor = require_actor(actor)
    given = replay.instant(scanned_at)
    with store.read() as conn:
        engagements.get(conn, engagement)
    checker = quality.check_findings
    if served_gate:
        from handoffkit.ingest import gate_server

        checker = gate_server.check_findings
    with _collector_paused():
        return [
            _ingest_file(
                store, engagement, Path(p), actor, fmt, scope, fallback_encoding, progress or _quiet, given, checker
            )
            for p in paths
        ]


def _quiet(_: str) -> None:
    pass


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A large scan allocates millions of long-lived objects; the cyclic collector would rescan them all
    over and over for garbage that is not there (reference counting frees what ingestion drops)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _ingest_file(
    store: Store,
    engagement: str,
    path: Path,
    actor: str,
    fmt: str,
    scope: str | None,
    fallback_encoding: str | None,
    progress: Progress,
    given: str | None,
    checker: Callable[[pd.DataFrame], quality.QualityResult],
) -> FileResult:
    result = FileResult(file=str(path))
    source: Source | None = None
    data: bytes | None = None
    try:
        data = read_bytes(path)
        result.sha256 = sha256_bytes(data)
        source = Source(str(path), result.sha256)
        if given is not None and _duplicate(store, engagement, actor, source, given, result):
            return result
        progress(f"{path}: parsing {len(data):,} bytes")
        from handoffkit.ingest.detect import parse_file

        parsed = parse_file(data, str(path), fmt, fallback_encoding=fallback_encoding)
        carried = schema.format_ts(parsed.scanned_at) if parsed.scanned_at else None
        result.scanned_at = carried or given or schema.format_ts(store.now())
        if carried is not None and _duplicate(store, engagement, actor, source, carried, result):
            return result
        result.format, result.parsed, result.parsed_by_kind = parsed.format, len(parsed.records), parsed.parsed_by_kind
        records, in_file_dupes = _dedup(parsed.records)
        skipped = Counter(parsed.skipped)
        if in_file_dupes:
            skipped["duplicate_in_file"] += in_file_dupes
        result.skipped = [{"reason": r, "count": c} for r, c in sorted(skipped.items())]
        progress(f"{path}: {len(records):,} records, checking data quality")
        batch = _gate_frame(records)
        check = quality.gate(batch, str(path), checker)
        progress(f"{path}: writing")
        _write(store, engagement, parsed, records, batch, check, source, actor, scope, result)
        progress(
            f"{path}: {result.new:,} new, {result.seen_again:,} seen again, {result.reopened:,} reopened, "
            f"{result.absent_in_rescan:,} absent in rescan"
        )
    except (HandoffkitError, UnicodeError) as exc:
        error = as_refusal(exc, str(path))
        result.status, result.error = "failed", str(error)
        _log_failure(store, engagement, actor, source, path, data, error)
    return result


def _duplicate(store: Store, engagement: str, actor: str, source: Source, scanned_at: str, result: FileResult) -> bool:
    """Is this content at this scan instant ingested already? If so, log ``ingest_duplicate`` and say so."""
    s = schema.scans.c
    with store.read() as conn:
        found = conn.execute(
            select(s.scan_id).where(s.engagement == engagement, s.sha256 == source.sha256, s.scanned_at == scanned_at)
        ).first()
    if found is None:
        return False
    result.status, result.scanned_at = "duplicate", scanned_at
    log_event(
        store,
        Event(
            type="ingest_duplicate",
            actor=actor,
            engagement=engagement,
            source=source,
            data={"sha256": source.sha256, "scanned_at": scanned_at, "scan_id": found.scan_id},
        ),
    )
    return True


def _log_failure(
    store: Store,
    engagement: str,
    actor: str,
    source: Source | None,
    path: Path,
    data: bytes | None,
    exc: HandoffkitError,
) -> None:
    """One ``scan_refused`` failure event: the file's name, hash, size, place and a fixed reason (never
    its bytes, :mod:`~handoffkit.record.refusals`), and the gate's result without the values it quotes."""
    quality_result = getattr(exc, "result", None)
    with store.write() as conn:
        if quality_result is not None:
            _keep_validation(conn, store, engagement, str(path), source, quality_result)
        append(
            conn,
            store,
            [
                Event(
                    type="scan_refused",
                    actor=actor,
                    engagement=engagement,
                    outcome="failure",
                    source=source,
                    data=refusal(exc, path, data),
                )
            ],
        )


def _keep_validation(
    conn: Connection, store: Store, engagement: str, subject: str, source: Source | None, result: quality.QualityResult
) -> int:
    return conn.execute(
        insert(schema.validations).values(
            engagement=engagement,
            subject=subject,
            sha256=source.sha256 if source else None,
            success=result.success,
            result=json.dumps(result.stored(), sort_keys=True),
            created_at=store.now(),
        )
    ).inserted_primary_key[0]


def _dedup(records: list[NormalisedFinding]) -> tuple[list[NormalisedFinding], int]:
    """First occurrence of each fingerprint wins (a scanner repeating an item is one finding)."""
    seen: dict[str, NormalisedFinding] = {}
    for r in records:
        seen.setdefault(r.fingerprint, r)
    return list(seen.values()), len(records) - len(seen)


def _gate_frame(records: list[NormalisedFinding]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fingerprint": [r.fingerprint for r in records],
            "title": [r.title for r in records],
            "asset_ref": [r.asset_ref for r in records],
            "severity": [r.severity for r in records],
            "cves": [" ".join(r.cves) for r in records],
            "cwes": [" ".join(r.cwes) for r in records],
            "source_ref": [r.source_ref or f"item {i + 1}" for i, r in enumerate(records)],
        },
        columns=list(quality.GATE_COLUMNS),
    )


# ------------------------------------------------------------------------------------------- write


def _write(
    store: Store,
    engagement: str,
    parsed: ParseResult,
    records: list[NormalisedFinding],
    batch: pd.DataFrame,
    check: quality.QualityResult,
    source: Source,
    actor: str,
    scope: str | None,
    result: FileResult,
) -> None:
    with store.write(bulk=True) as conn:
        now = schema.format_ts(store.now())  # bound once as text, not per row
        validation_id = _keep_validation(conn, store, engagement, source.file, source, check)
        scopes = parsed.scopes()
        scan_scope = {
            "tool": parsed.tool,
            "assets": sorted(parsed.scope_assets | set(batch["asset_ref"])),
            "glob": scope,
        }
        if len(scopes) > 1:  # several tools' runs in one file: which tool covered which assets
            scan_scope["tools"] = {tool: sorted(assets) for tool, assets in sorted(scopes.items())}
        scan_id = conn.execute(
            insert(schema.scans).values(
                engagement=engagement,
                sha256=source.sha256,
                file_name=Path(source.file).name,
                format=parsed.format,
                tool=parsed.tool,
                tool_version=parsed.tool_version,
                scope=json.dumps(scan_scope, sort_keys=True),
                ingested_at=now,
                scanned_at=result.scanned_at,
                actor=actor,
                parsed=len(parsed.records),
            )
        ).inserted_primary_key[0]
        existing = _existing(conn, engagement, batch["fingerprint"].tolist())
        new = [r for r in records if r.fingerprint not in existing]
        again = [existing[r.fingerprint] for r in records if r.fingerprint in existing]
        _create(conn, store, engagement, new, scan_id, source, actor, now)
        reopened = _seen_again(conn, store, again, scan_id, source, actor, now)
        absent = _absent(conn, store, engagement, scopes, scope, set(batch["fingerprint"]), scan_id, source, actor, now)
        result.new, result.seen_again, result.reopened, result.absent_in_rescan = len(new), len(again), reopened, absent
        append(
            conn,
            store,
            [
                Event(
                    type="scan_ingested",
                    actor=actor,
                    engagement=engagement,
                    source=source,
                    data={
                        "scan_id": scan_id,
                        "format": parsed.format,
                        "tool": parsed.tool,
                        "tool_version": parsed.tool_version,
                        "validation_id": validation_id,
                        "warnings": parsed.warnings,
                        **{k: v for k, v in result.as_dict().items() if k not in ("file", "status", "error", "sha256")},
                    },
                )
            ],
        )


def _existing(conn: Connection, engagement: str, fingerprints: list[str]) -> dict[str, Any]:
    f = schema.findings.c
    out: dict[str, Any] = {}
    # An engagement's first scan finds none: one probe of the index instead of a lookup per fingerprint.
    if conn.execute(select(f.finding_id).where(f.engagement == engagement).limit(1)).first() is None:
        return out
    for start in range(0, len(fingerprints), CHUNK):
        chunk = fingerprints[start : start + CHUNK]
        for row in conn.execute(select(schema.findings).where(f.engagement == engagement, f.fingerprint.in_(chunk))):
            out[row.fingerprint] = row._mapping
    return out


def _create(
    conn: Connection,
    store: Store,
    engagement: str,
    new: list[NormalisedFinding],
    scan_id: int,
    source: Source,
    actor: str,
    now: Any,
) -> None:
    if not new:
        return
    kev = _kev_for({c for r in new for c in r.cves}, conn)
    first = findings.next_number(conn)
    rows, evidence = [], []
    for number, r in enumerate(new, start=first):
        fid = ids.make(number)
        rows.append(finding_row(r, fid, number, engagement, now, scan_id, [kev[c] for c in r.cves if c in kev]))
        evidence.append(
            (
                fid, "scanner_output", hashlib.sha256(r.raw).hexdigest(), r.raw_media_type, r.raw,
                f"{source.file}#{r.source_ref}", scan_id, actor, now,
            )
        )  # fmt: skip
    for start in range(0, len(rows), CHUNK):
        findings.create_many(
            conn,
            store,
            rows[start : start + CHUNK],
            actor=actor,
            source=source,
            data=({"scan_id": scan_id, "evidence_sha256": e[2]} for e in evidence[start : start + CHUNK]),
        )
        insert_tuples(conn, schema.evidence, _EVIDENCE, evidence[start : start + CHUNK])


_EVIDENCE = ["finding_id", "kind", "sha256", "media_type", "content", "location", "scan_id", "actor", "created_at"]
"""The columns of a new finding's raw-item evidence, in the order :func:`_create` writes them."""


def finding_row(
    r: NormalisedFinding, fid: str, number: int, engagement: str, now: str, scan_id: int | None, kev_dues: list[Any]
) -> dict[str, Any]:
    """The findings row of a new record: the scanner's view, untriaged, unrouted, first seen now."""
    return {
        "finding_id": fid, "number": number, "engagement": engagement, "fingerprint": r.fingerprint,
        "kind": r.kind, "title": r.title, "asset_ref": r.asset_ref, "tool": r.tool, "tool_version": r.tool_version,
        "rule_ref": r.rule_ref, "location": r.location, "cves": " ".join(r.cves), "cwes": " ".join(r.cwes),
        "raw_severity": r.raw_severity, "scanner_severity": r.severity, "cvss_vector": r.cvss_vector,
        "cvss_score": r.cvss_score, "description": r.description, "references": " ".join(r.references),
        "suppressed": r.suppressed, "external_id": r.external_id, "severity": r.severity,
        "calibrated_vector": None, "calibrated_score": None, "kev": bool(kev_dues),
        "kev_due": min(filter(None, kev_dues), default=None) if kev_dues else None, "triage": "pending",
        "state": "new", "disposition": None, "owner_role": None, "owner_team": None, "owner_name": None,
        "policy_version": None, "sla_due": None, "validated_at": None, "routed_at": None, "closed_at": None,
        "first_seen": now, "last_seen": now, "last_scan_id": scan_id,
    }  # fmt: skip


def _kev_for(cves: set[str], conn: Connection) -> dict[str, date | None]:
    k = schema.kev.c
    out: dict[str, date | None] = {}
    listed = sorted(cves)
    for start in range(0, len(listed), CHUNK):
        for cve, due in conn.execute(select(k.cve_id, k.due_date).where(k.cve_id.in_(listed[start : start + CHUNK]))):
            out[cve] = due
    return out


def _seen_again(
    conn: Connection, store: Store, rows: list[Any], scan_id: int, source: Source, actor: str, now: Any
) -> int:
    """Update last_seen; a verified-closed finding that is back is reopened (its ticket links stay)."""
    seen, back = [], []
    for row in rows:
        changes = {"last_seen": now, "last_scan_id": scan_id}
        if row["state"] == "verified_closed":
            changes |= {"state": "reopened", "closed_at": None}
            back.append(
                findings.Change(
                    row,
                    changes,
                    {"scan_id": scan_id, "reason": "rediscovered by a later scan", "ticket_links_kept": True},
                )
            )
        else:
            seen.append(findings.Change(row, changes, {"scan_id": scan_id}))
    findings.change_many(conn, store, seen, type="finding_seen", actor=actor, source=source)
    findings.change_many(conn, store, back, type="finding_reopened", actor=actor, source=source)
    return len(back)


def _absent(
    conn: Connection,
    store: Store,
    engagement: str,
    scopes: dict[str, set[str]],
    glob: str | None,
    fingerprints: set[str],
    scan_id: int,
    source: Source,
    actor: str,
    now: Any,
) -> int:
    """Open findings of the scan's tools, each in its own tool's scope, that the scan no longer reports.

    A tool's scope is every asset it covered in this file (``scopes``; the ``--scope`` glob instead, when
    given, for every tool); a finding is in it when its asset or one of its parents (host of
    ``host:port``, image of a package) is. A file with several tools' runs (SARIF) proves a finding absent
    only where that finding's own tool looked.
    """
    f = schema.findings.c
    # What this scan created or saw again already carries its scan id: only the rest can be absent, and
    # a 200k-result first scan need not read its own 200k findings back.
    candidates = conn.execute(
        select(f.finding_id, f.fingerprint, f.tool, f.asset_ref, f.state, f.disposition, f.severity)
        .where(
            f.engagement == engagement,
            f.tool.in_(sorted(scopes)),
            f.state.in_(sorted(OPEN_STATES)),
            or_(f.last_scan_id.is_(None), f.last_scan_id != scan_id),
        )
        .order_by(f.number)
    ).all()  # events in a stable order on every backend
    # Scope is decided once per distinct (tool, asset) (a programme has far fewer assets than findings).
    in_scope = {
        (tool, a)
        for tool, a in {(c.tool, c.asset_ref) for c in candidates}
        if (fnmatch.fnmatchcase(a, glob) if glob else not scopes[tool].isdisjoint(parents(a)))
    }
    gone = [c for c in candidates if (c.tool, c.asset_ref) in in_scope and c.fingerprint not in fingerprints]
    if not gone:
        return 0
    marker = hashlib.sha256(f"{source.sha256}:absent".encode()).hexdigest()
    conn.execute(
        insert(schema.evidence),
        [
            {
                "finding_id": c.finding_id,
                "kind": "absent_in_rescan",
                "sha256": marker,
                "media_type": None,
                "content": None,
                "location": source.file,
                "scan_id": scan_id,
                "actor": actor,
                "created_at": now,
            }
            for c in gone
        ],
    )
    append(
        conn,
        store,
        [
            Event(
                type="absent_in_rescan",
                actor=actor,
                engagement=engagement,
                finding_id=c.finding_id,
                state=c.state,
                disposition=c.disposition,
                severity=c.severity,
                source=source,
                data={"scan_id": scan_id},
            )
            for c in gone
        ],
    )
    return len(gone)


def failed(results: list[FileResult]) -> bool:
    return any(r.status == "failed" for r in results)


__all__ = ["FileResult", "failed", "ingest_scan"]
