"""Checkmarx One JSON: the API results export (``{"results": [...], "totalCount", "scanID"}``, SAST, KICS
(IaC) and SCA results) and the scan report JSON (``reportHeader``, ``scanResults``, ``iacScanResults``,
``scaScanResults``).

One record per result: API ``results[]``; report SAST ``scanResults.resultsList[].vulnerabilities[]``, IaC
``iacScanResults.technology[].queries[].resultsList[]``, SCA ``scaScanResults.packages[].vulnerabilities[]``.
A result whose status is ``FIXED`` is counted in ``skipped``; one whose state is ``NOT_EXPLOITABLE`` is kept
with ``suppressed=True``.

Severity: Critical / High / Medium / Low / Info (Information → info).

Asset: the report's project (``reportHeader.projectName``); the API export names none, so a SAST / IaC
result belongs to the top-level directory of its file (Checkmarx writes repository paths with a leading
``/``) and an SCA result to ``unknown pkg:<package>``. Location: ``file:line`` (SAST: the first node; the
report: the source file and line), the package. Scan instant: the report's ``scanDate``; API results: the
latest ``foundAt``.

CWE: ``vulnerabilityDetails.cweId`` / the query's ``cweId``; CVE and CVSS from SCA results (``cveName``,
``cvssScore``, ``cvss.vector``).

Fingerprint: ``checkmarx-one``, type, Checkmarx's ``similarityId`` (its own identity of a result across
scans), the file (SAST / IaC) or package (SCA); for SAST results of the report also the destination file
and code (one similarity id covers the same source reaching two sinks); for IaC results of the report,
which carry no similarity id, the query name and actual value. Excluded: ids and links of one scan, dates, state,
severity, descriptions.
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
    join_nonempty,
    json_raw,
    latest,
    package_asset,
    take_cves,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "checkmarx-one"
CONTAINERS = ("json",)

SEVERITY = {"information": "info"}
KINDS = {"sast": "code", "kics": "misconfiguration", "iac": "misconfiguration", "sca": "vulnerability"}


def sniff(doc: object) -> bool:
    """API results (``results`` of objects with ``type`` and ``similarityId`` / ``data``, beside
    ``totalCount`` or ``scanID``) or the scan report (``reportHeader`` and ``scanResults``)."""
    if not isinstance(doc, dict):
        return False
    if isinstance(doc.get("reportHeader"), dict) and isinstance(doc.get("scanResults"), dict):
        return True
    results = doc.get("results")
    return (
        isinstance(results, list)
        and ("totalCount" in doc or "scanID" in doc)
        and all(isinstance(r, dict) and "type" in r and ("similarityId" in r or "data" in r) for r in results)
    )


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse a Checkmarx One export; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Checkmarx One")
    report = isinstance(doc.get("reportHeader"), dict)
    project = text(doc["reportHeader"].get("projectName")) if report else None
    if project:
        result.scope_assets.add(project)
    items = _report_items(doc, project, source) if report else _api_items(doc, source)
    seen: list[Any] = []
    for fields, raw, place in items:
        seen.append(fields.pop("found"))
        if (fields["status"] or "").lower() == "fixed":
            result.skipped["fixed in Checkmarx One"] += 1
            continue
        record = _record(fields, raw, source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest([doc["reportHeader"].get("scanDate")]) if report else latest(seen)
    return result


def _file_asset(path: str | None) -> str:
    return code_asset(path.lstrip("/")) if path else UNKNOWN_ASSET


_Item = tuple[dict[str, Any], dict[str, Any], str]


def _api_items(doc: dict[str, Any], source: str) -> Iterator[_Item]:
    for i, res in enumerate(expect_list(doc.get("results"), source, "results", "the results")):
        place = f"results[{i}]"
        res = expect_dict(res, source, place, "a result")
        data = res.get("data") if isinstance(res.get("data"), dict) else {}
        details = res.get("vulnerabilityDetails") if isinstance(res.get("vulnerabilityDetails"), dict) else {}
        kind = str(res.get("type", "")).lower()
        nodes = [n for n in data.get("nodes") or [] if isinstance(n, dict)]
        file = text(data.get("filename")) or (text(nodes[0].get("fileName")) if nodes else None)
        line = data.get("line") or (nodes[0].get("line") if nodes else None)
        package = text(data.get("packageIdentifier"))
        cvss = details.get("cvss") if isinstance(details.get("cvss"), dict) else {}
        yield (
            {
                "type": kind,
                "identity": (text(res.get("similarityId")), package if kind == "sca" else file),
                "asset": package_asset(UNKNOWN_ASSET, package) if kind == "sca" else _file_asset(file),
                "title": text(data.get("queryName")) or text(details.get("cveName")) or text(res.get("id")),
                "rule": text(data.get("queryName")) or text(details.get("cveName")),
                "location": (f"{file}:{line}" if file and line else file) if kind != "sca" else package,
                "severity": text(res.get("severity")),
                "status": text(res.get("status")),
                "state": text(res.get("state")),
                "cwes": [details.get("cweId")],
                "cves": [details.get("cveName"), res.get("id") if kind == "sca" else None],
                "vector": text(cvss.get("vector")) if isinstance(cvss, dict) else None,
                "score": as_float(details.get("cvssScore")),
                "text": [text(res.get("description")), text(data.get("expectedValue")), text(data.get("value"))],
                "found": res.get("foundAt"),
            },
            res,
            place,
        )


def _report_items(doc: dict[str, Any], project: str | None, source: str) -> Iterator[_Item]:
    asset = project or UNKNOWN_ASSET
    yield from _report_sast(_section(doc, "scanResults"), asset, source)
    yield from _report_iac(_section(doc, "iacScanResults"), asset, source)
    yield from _report_sca(_section(doc, "scaScanResults"), asset, source)


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return doc[key] if isinstance(doc.get(key), dict) else {}


def _entries(
    parent: dict[str, Any], key: str, source: str, place: str, what: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(place, object) of each entry of ``parent[key]``, each checked to be an object."""
    for n, entry in enumerate(expect_list(parent.get(key), source, f"{place}.{key}".lstrip("."), what)):
        where = f"{place}.{key}[{n}]".lstrip(".")
        yield where, expect_dict(entry, source, where, what)


def _report_sast(sast: dict[str, Any], asset: str, source: str) -> Iterator[_Item]:
    for query_place, query in _entries(sast, "resultsList", source, "scanResults", "a SAST query"):
        for place, vuln in _entries(query, "vulnerabilities", source, query_place, "a SAST result"):
            file, line = text(vuln.get("sourceFileName")), vuln.get("sourceLine")
            # one similarity id covers the same source reaching two sinks: the destination tells them apart
            identity = (
                text(vuln.get("similarityId")),
                file,
                text(vuln.get("destinationFileName")),
                text(vuln.get("destinationCode")),
            )
            where = f"{file}:{line}" if file and line else file
            texts = [query.get("description")]
            fields = _report_fields(
                "sast", asset, query.get("queryName"), vuln, identity, where, [query.get("cweId")], texts
            )
            yield fields, vuln, place


def _report_iac(iac: dict[str, Any], asset: str, source: str) -> Iterator[_Item]:
    for tech_place, tech in _entries(iac, "technology", source, "iacScanResults", "an IaC technology"):
        for query_place, query in _entries(tech, "queries", source, tech_place, "an IaC query"):
            for place, res in _entries(query, "resultsList", source, query_place, "an IaC result"):
                file = text(res.get("fileName"))
                identity = (file, text(query.get("queryName")), text(res.get("actualValue")))
                texts = [query.get("description"), res.get("expectedValue"), res.get("actualValue")]
                yield _report_fields("kics", asset, query.get("queryName"), res, identity, file, [], texts), res, place


def _report_sca(sca: dict[str, Any], asset: str, source: str) -> Iterator[_Item]:
    for package_place, package in _entries(sca, "packages", source, "scaScanResults", "an SCA package"):
        name = text(package.get("packageName")) or text(package.get("name")) or text(package.get("packageId"))
        version = text(package.get("packageVersion")) or text(package.get("version"))
        for place, vuln in _entries(package, "vulnerabilities", source, package_place, "an SCA vulnerability"):
            cve = text(vuln.get("cveName")) or text(vuln.get("cve")) or text(vuln.get("id"))
            owner = package_asset(asset, name, version)
            fields = _report_fields(
                "sca", owner, cve, vuln, (name, cve), name, [vuln.get("cweId")], [vuln.get("description")]
            )
            fields["cves"], fields["score"] = [cve], as_float(vuln.get("cvssScore"))
            yield fields, vuln, place


def _report_fields(
    kind: str,
    asset: str,
    query: Any,
    item: dict[str, Any],
    identity: tuple[Any, ...],
    location: str | None,
    cwe: list[Any],
    texts: list[Any],
) -> dict[str, Any]:
    return {
        "type": kind,
        "identity": identity,
        "asset": asset,
        "title": text(query),
        "rule": text(query),
        "location": location,
        "severity": text(item.get("severity")),
        "status": text(item.get("status")),
        "state": text(item.get("state")),
        "cwes": cwe,
        "cves": [],
        "vector": None,
        "score": None,
        "text": [text(t) for t in texts],
        "found": item.get("foundDate") or item.get("lastDetectionDate"),
    }


def _record(f: dict[str, Any], raw: dict[str, Any], source: str, place: str, result: ParseResult) -> NormalisedFinding:
    raw_severity = f["severity"] or "Info"
    state = (f["state"] or "").lower().replace(" ", "_")
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, f["type"], *f["identity"]),
        title=f["title"] or "(untitled)",
        asset_ref=f["asset"],
        tool="Checkmarx One",
        severity=band(raw_severity, source, f"{place}.severity", SEVERITY),
        raw_severity=raw_severity,
        kind=KINDS.get(f["type"], "finding"),
        rule_ref=f["rule"],
        location=f["location"],
        cves=take_cves(result, [c for c in f["cves"] if isinstance(c, str) and c.upper().startswith("CVE")]),
        cwes=cwes([c for c in f["cwes"] if c]),
        cvss_vector=f["vector"],
        cvss_score=f["score"],
        description=join_nonempty(f["text"]),
        suppressed=state == "not_exploitable",
        raw=json_raw(raw),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
