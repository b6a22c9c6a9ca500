"""Wiz CSV exports: the Issues export (``Created At,Title,Severity,Status,…,Control ID,…,Issue ID,…``) and
the vulnerability findings export (``ID,WizURL,Name,CVSSSeverity,…,DetailedName,Version,FixedVersion,
AssetName,…,FindingStatus,…``).

One record per non-empty data row, except rows Wiz marks resolved (Issues ``Status`` ``RESOLVED``,
findings ``FindingStatus`` ``Resolved``): counted in ``skipped``, their resource kept in scope so a later
export marks the finding absent. ``IGNORED`` / ``Rejected`` rows are kept with ``suppressed=True``.

Severity: Issues ``Severity``; findings ``VendorSeverity`` else ``CVSSSeverity`` — CRITICAL / HIGH /
MEDIUM / LOW / INFORMATIONAL (NONE → info).

Asset: Issues — ``Resource external ID`` (the cloud provider's id: an ARN, an Azure resource id, a
Kubernetes object), else ``Resource Name``; findings — ``<asset> pkg:<DetailedName>@<Version>``, the asset
being ``ProviderUniqueId`` else ``AssetName``. Location: ``Resource Type`` / ``LocationPath``. Scan
instant: findings — the latest ``LastDetected``; Issues carry none (use ``--scanned-at``).

CVEs: the findings ``Name`` (a CVE id) ; CVSS: ``Score``. References: ``Wiz URL`` / ``WizURL``.

Fingerprint: Issues — ``wiz``, ``Issue ID`` (Wiz's own id); findings — ``wiz``, asset, package name,
location path, vulnerability name. Excluded: times, status, notes, ticket URLs, severity.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    as_float,
    band,
    join_nonempty,
    json_raw,
    latest,
    package_asset,
    take_cves,
    text,
    versions_line,
)
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "wiz"
CONTAINERS = ("csv",)

SEVERITY = {"informational": "info", "none": "info"}
RESOLVED = frozenset({"resolved"})
IGNORED = frozenset({"ignored", "rejected"})
_ISSUES = {"issue id", "control id", "title", "severity"}
_FINDINGS = {"wizurl", "detailedname", "findingstatus"}


def _layout(doc: object) -> str | None:
    if not isinstance(doc, CsvTable):
        return None
    headers = {h.lower() for h in doc.headers}
    return "issues" if headers >= _ISSUES else "findings" if headers >= _FINDINGS else None


def sniff(doc: object) -> bool:
    """A CSV with Wiz's Issues columns (``Issue ID``, ``Control ID``, ``Title``, ``Severity``) or its
    vulnerability findings columns (``WizURL``, ``DetailedName``, ``FindingStatus``)."""
    return _layout(doc) is not None


def parse(table: CsvTable, source: str) -> ParseResult:
    """Parse a Wiz export; see the module docstring for the mapping."""
    layout = _layout(table)
    result = ParseResult(format=FORMAT, tool="Wiz")
    if table.empty_rows:
        result.skipped["empty CSV row"] += table.empty_rows
    by_lower = {h.lower(): h for h in table.headers}
    seen: list[str | None] = []
    for row, line in zip(table.rows, table.lines, strict=True):

        def get(column: str, row: dict[str, Any] = row) -> str | None:
            header = by_lower.get(column.lower())
            return text(row.get(header)) if header else None

        fields = _issue(get) if layout == "issues" else _finding(get)
        seen.append(get("LastDetected"))
        result.scope_assets.add(fields["resource"])
        status = (fields["status"] or "").lower()
        if status in RESOLVED:
            result.skipped["resolved in Wiz"] += 1
            continue
        record = _record(fields, status in IGNORED, source, f"line {line}", row, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest(seen)
    return result


def _issue(get: Any) -> dict[str, Any]:
    resource = get("Resource external ID") or get("Resource Name") or UNKNOWN_ASSET
    return {
        "identity": ("issue", get("Issue ID")),
        "resource": resource,
        "asset": resource,
        "title": get("Title"),
        "severity": get("Severity"),
        "status": get("Status"),
        "rule": get("Control ID"),
        "location": " ".join(p for p in (get("Resource Type"), get("Resource Name")) if p) or None,
        "cves": [],
        "score": None,
        "text": [get("Description"), get("Remediation Recommendation")],
        "url": get("Wiz URL"),
    }


def _finding(get: Any) -> dict[str, Any]:
    resource = get("ProviderUniqueId") or get("AssetName") or get("AssetID") or UNKNOWN_ASSET
    package, version, name = get("DetailedName"), get("Version"), get("Name")
    return {
        "identity": ("finding", resource, package, get("LocationPath"), name),
        "resource": resource,
        "asset": package_asset(resource, package, version),
        "title": f"{name} in {package}" if package else name,
        "severity": get("VendorSeverity") or get("CVSSSeverity"),
        "status": get("FindingStatus"),
        "rule": name,
        "location": get("LocationPath"),
        "cves": [name],
        "score": as_float(get("Score")),
        "text": [get("Description"), versions_line(version, get("FixedVersion")), get("Remediation")],
        "url": get("WizURL"),
    }


def _record(
    f: dict[str, Any], ignored: bool, source: str, place: str, row: dict[str, Any], result: ParseResult
) -> NormalisedFinding:
    raw_severity = f["severity"] or ""
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, *f["identity"]),
        title=f["title"] or f["rule"] or "(untitled)",
        asset_ref=f["asset"],
        tool="Wiz",
        severity=band(raw_severity or "info", source, place, SEVERITY),
        raw_severity=raw_severity,
        kind="vulnerability" if f["identity"][0] == "finding" else "misconfiguration",
        rule_ref=f["rule"],
        location=f["location"],
        cves=take_cves(result, [c for c in f["cves"] if c and c.upper().startswith("CVE")]),
        cvss_score=f["score"],
        description=join_nonempty(f["text"]),
        references=(f["url"],) if f["url"] and "://" in f["url"] else (),
        suppressed=ignored,
        raw=json_raw(row),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
