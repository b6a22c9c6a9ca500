"""Semgrep CLI JSON (``semgrep --json``): ``results[]``; ``errors[]`` are scan problems, not
findings, and are neither records nor counted.

One record per ``results[]`` entry; ``extra.is_ignored`` (a ``nosemgrep`` comment) → kept with
``suppressed=True``.

Severity: ``extra.severity`` ERROR → high, WARNING → medium, INFO → low (what Semgrep's own SARIF
output calls error / warning / note, so both outputs of one scan agree); the newer CRITICAL /
HIGH / MEDIUM / LOW words map to their bands.

Asset: Semgrep names no repository, so :func:`~handoffkit.ingest.common.code_asset` of ``path``
(its top-level directory, ``.`` for a file at the root). Location: ``path:start.line``. CWE and
references from ``extra.metadata``.

Fingerprint: ``semgrep``, check id, path and Semgrep's own ``extra.fingerprint`` when it is a real
one (not the ``requires login`` placeholder); else the matched source text (``extra.lines``),
which survives line shifts, and only as a last resort the start line. Excluded: message text,
metavariable bindings, severity, Semgrep version.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    band,
    code_asset,
    cwes,
    expect_dict,
    expect_list,
    first_sentence,
    json_raw,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "semgrep"
CONTAINERS = ("json",)

SEVERITY = {"error": "high", "warning": "medium", "info": "low"}
PLACEHOLDER = "requires login"
"""What Semgrep writes instead of a fingerprint or matched lines when not logged in."""


def sniff(doc: object) -> bool:
    """A JSON object with ``results`` and ``errors`` arrays, results carrying ``check_id``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) or "errors" not in doc:
        return False
    return all(isinstance(r, dict) and "check_id" in r for r in doc["results"])


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse a Semgrep JSON report; see the module docstring for the mapping."""
    version = text(doc.get("version"))
    result = ParseResult(format=FORMAT, tool="Semgrep", tool_version=version)
    scanned = (doc.get("paths") or {}).get("scanned") if isinstance(doc.get("paths"), dict) else None
    result.scope_assets.update(code_asset(p) for p in scanned or [] if isinstance(p, str))
    for i, item in enumerate(expect_list(doc.get("results"), source, "results", "the results")):
        place = f"results[{i}]"
        record = _record(expect_dict(item, source, place, "a result"), version, source, place)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    return result


def _real(value: Any) -> str | None:
    found = text(value)
    return found if found and found != PLACEHOLDER else None


def _record(item: dict[str, Any], version: str | None, source: str, place: str) -> NormalisedFinding:
    extra = item.get("extra") or {}
    meta = extra.get("metadata") or {}
    check, path = text(item.get("check_id")), text(item.get("path"))
    line = (item.get("start") or {}).get("line")
    raw_severity = text(extra.get("severity")) or ""
    identity = _real(extra.get("fingerprint")) or _real(extra.get("lines")) or line
    message = text(extra.get("message"))
    references = [*(meta.get("references") or []), meta.get("source"), meta.get("source-rule-url")]
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, check, path, identity),
        title=first_sentence(message) or check or "(untitled)",
        asset_ref=code_asset(path),
        tool="Semgrep",
        tool_version=version,
        severity=band(raw_severity, source, place, SEVERITY),
        raw_severity=raw_severity,
        kind="code",
        rule_ref=check,
        location=f"{path}:{line}" if path and line else path,
        cwes=cwes(meta.get("cwe")),
        description=message,
        references=tuple(dict.fromkeys(u for u in references if isinstance(u, str) and u)),
        suppressed=bool(extra.get("is_ignored")),
        raw=json_raw(item),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
