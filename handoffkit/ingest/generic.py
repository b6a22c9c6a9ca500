"""DefectDojo "Generic Findings Import": JSON (``{"findings": [...]}``) and CSV (``Date, Title,
CweId, Url, Severity, Description, Mitigation, Impact, References, Active, Verified,
FalsePositive, Duplicate``, plus optional ``CVE`` / ``CVSSV3`` columns).

One record per ``findings[]`` entry — an empty object ``{}`` included, with defaults: title
``(untitled)``, asset ``unknown``, severity info with an empty ``raw_severity`` — and one per
non-empty CSV row. CSV columns are renamed to the JSON field names and then share one mapping,
which :mod:`handoffkit.ingest.defectdojo` reuses (a DefectDojo export is the same vocabulary).

Severity: Critical, High, Medium, Low, Info (Informational) as bands; absent → info. A finding
marked false positive, risk accepted or out of scope is kept with ``suppressed=True``.

Asset: the first endpoint's origin (an endpoint object's protocol/host/port, or a URL string; the
CSV ``Url``); else ``component_name``; else :func:`~handoffkit.ingest.common.code_asset` of
``file_path``; else ``unknown``. Location: the endpoint URL, else ``file_path:line``, else the
component and version.

Fingerprint: ``generic``, tool, and ``unique_id_from_tool`` when the finding has one; otherwise
asset, ``vuln_id_from_tool`` (else title), CWE, endpoint URL or file path, component name.
Excluded: date, description, severity, line number, the active/verified flags, files.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    as_float,
    band,
    code_asset,
    cwes,
    expect_dict,
    expect_list,
    host_asset,
    join_nonempty,
    json_raw,
    take_cves,
    text,
    url_origin,
    urls_in,
)
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "generic"
CONTAINERS = ("json", "csv")
DEFAULT_TOOL = "Generic Findings Import"

CSV_FIELDS = {
    "date": "date",
    "title": "title",
    "cweid": "cwe",
    "url": "url",
    "severity": "severity",
    "description": "description",
    "mitigation": "mitigation",
    "impact": "impact",
    "references": "references",
    "active": "active",
    "verified": "verified",
    "falsepositive": "false_p",
    "duplicate": "duplicate",
    "cve": "cve",
    "cvssv3": "cvssv3",
    "cvssv3_score": "cvssv3_score",
    "vulnerabilityid": "cve",
}
"""Generic CSV header (lower case) → the JSON field it fills."""

SUPPRESSING_FLAGS = ("false_p", "risk_accepted", "out_of_scope")


def sniff(doc: object) -> bool:
    """A JSON object with a ``findings`` array, or a CSV table with Title and Severity columns."""
    if isinstance(doc, CsvTable):
        lower = {h.lower() for h in doc.headers}
        return {"title", "severity"} <= lower and bool(lower & {"date", "cweid", "url", "description"})
    return isinstance(doc, dict) and isinstance(doc.get("findings"), list)


def parse(doc: dict[str, Any] | CsvTable, source: str) -> ParseResult:
    """Parse a Generic Findings Import file; see the module docstring for the mapping."""
    if isinstance(doc, CsvTable):
        result = ParseResult(format=FORMAT, tool=DEFAULT_TOOL)
        if doc.empty_rows:
            result.skipped["empty CSV row"] += doc.empty_rows
        items = _csv_findings(doc)
    else:
        tool = text(doc.get("type")) or text(doc.get("name")) or DEFAULT_TOOL
        result = ParseResult(format=FORMAT, tool=tool, tool_version=text(doc.get("version")))
        items = _json_findings(doc, source)
    for finding, place, raw in items:
        record = finding_record(
            finding, tool=result.tool, version=result.tool_version, source=source, place=place, result=result, raw=raw
        )
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    return result


def _json_findings(doc: dict[str, Any], source: str) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    for i, finding in enumerate(expect_list(doc.get("findings"), source, "findings", "the findings")):
        finding = expect_dict(finding, source, f"findings[{i}]", "a finding")
        yield finding, f"findings[{i}]", json_raw(finding)


def _csv_findings(table: CsvTable) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    """Rows with their headers renamed to the JSON field names (raw keeps the exported headers)."""
    renamed = {h: CSV_FIELDS.get(h.lower().replace(" ", ""), h) for h in table.headers}
    for row, line in zip(table.rows, table.lines, strict=True):
        yield {renamed[h]: v for h, v in row.items()}, f"line {line}", json_raw(row)


def finding_record(
    finding: dict[str, Any],
    *,
    tool: str,
    version: str | None,
    source: str,
    place: str,
    result: ParseResult,
    raw: bytes,
    fmt: str = FORMAT,
    identity: str | None = None,
    external_id: str | None = None,
) -> NormalisedFinding:
    """One record from a DefectDojo-shaped finding (generic import or API export).

    ``identity`` is a tool-given id that replaces the field-based fingerprint parts (the export
    passes ``unique_id_from_tool`` or ``hash_code``); by default ``unique_id_from_tool``.
    """
    endpoint = _endpoint(finding)
    file_path, component = text(finding.get("file_path")), text(finding.get("component_name"))
    line, component_version = text(finding.get("line")), text(finding.get("component_version"))
    asset = _asset(endpoint, component, file_path)
    title = text(finding.get("title")) or "(untitled)"
    found_cwes = cwes(finding.get("cwe"))
    identity = identity or text(finding.get("unique_id_from_tool"))
    if identity:
        parts: tuple[Any, ...] = (identity,)
    else:
        parts = (
            asset,
            text(finding.get("vuln_id_from_tool")) or title,
            ",".join(found_cwes),
            endpoint or file_path,
            component,
        )
    raw_severity = text(finding.get("severity")) or ""
    if file_path:
        location = f"{file_path}:{line}" if line else file_path
    elif component:
        location = f"{component} {component_version}" if component_version else component
    else:
        location = None
    return NormalisedFinding(
        fingerprint=fingerprint(fmt, tool, *parts),
        title=title,
        asset_ref=asset,
        tool=tool,
        tool_version=version,
        severity=band(raw_severity or "info", source, place),
        raw_severity=raw_severity,
        kind="finding",
        rule_ref=text(finding.get("vuln_id_from_tool")),
        location=endpoint or location,
        cves=take_cves(result, finding.get("cve"), _vulnerability_ids(finding.get("vulnerability_ids"))),
        cwes=found_cwes,
        cvss_vector=text(finding.get("cvssv3")),
        cvss_score=as_float(finding.get("cvssv3_score")),
        description=join_nonempty([text(finding.get(k)) for k in ("description", "mitigation", "impact")]),
        references=urls_in(text(finding.get("references"))),
        suppressed=any(_flag(finding.get(k)) for k in SUPPRESSING_FLAGS),
        raw=raw,
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
        external_id=external_id,
    )


def _endpoint(finding: dict[str, Any]) -> str | None:
    """The first endpoint as a URL (or bare host); DefectDojo API exports list ids, which name nothing."""
    candidates = [finding.get("url"), *(finding.get("endpoints") or [])]
    for endpoint in candidates:
        if isinstance(endpoint, str) and text(endpoint):
            return text(endpoint)
        if isinstance(endpoint, dict) and text(endpoint.get("host")):
            protocol, host, port = (
                text(endpoint.get("protocol")),
                text(endpoint.get("host")),
                text(endpoint.get("port")),
            )
            path = (text(endpoint.get("path")) or "").lstrip("/")
            netloc = f"{host}:{port}" if port else host
            return f"{protocol}://{netloc}/{path}" if protocol else f"{netloc}/{path}".rstrip("/")
    return None


def _asset(endpoint: str | None, component: str | None, file_path: str | None) -> str:
    if endpoint:
        return url_origin(endpoint) or host_asset(endpoint.split("/", 1)[0])
    if component:
        return component
    return code_asset(file_path) if file_path else UNKNOWN_ASSET


def _vulnerability_ids(value: Any) -> list[Any]:
    """Plain strings (generic import) or ``{"vulnerability_id": …}`` objects (API export)."""
    return (
        [v.get("vulnerability_id") if isinstance(v, dict) else v for v in value or []]
        if isinstance(value, list)
        else []
    )


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "1"))
