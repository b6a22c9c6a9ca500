"""Qualys VM (VMDR): the ``ASSET_DATA_REPORT`` XML (host-based scan report) and the detection CSV export
(``"IP","Network","DNS","NetBIOS",…,"QID","Title","Vuln Status","Type","Severity",…``).

One record per detection: an XML ``HOST_LIST/HOST/VULN_INFO_LIST/VULN_INFO`` (a QID found on a host,
every ``TYPE`` — ``Vuln`` confirmed, ``Practice`` potential, ``Ig`` information gathered), a CSV data
row. A detection whose status is ``Fixed`` is counted in ``skipped``, not a record (the rescan marks the
finding absent). The XML's QID details (title, severity, CVEs, CVSS, threat, solution) come from its
``GLOSSARY/VULN_DETAILS_LIST/VULN_DETAILS``; the CSV carries them on the row.

Severity: ``Ig`` items are info whatever their level (they describe the host); ``Vuln`` / ``Practice``
levels 5 → critical (urgent), 4 → high (critical), 3 → medium (serious), 2 → low (medium), 1 → low
(minimal). ``raw_severity`` keeps the level and the type (``"5 (Vuln)"``).

Asset: the host — ``DNS``, else ``NETBIOS``, else ``IP`` — plus ``:port`` when the detection names a
port; ``FQDN`` (a virtual host on that port) goes into the location. Every host of the report is in
scope, even without detections. Scan instant: the latest ``LAST_FOUND`` / ``Last Detected``.

CVSS: v3 (``CVSS3_BASE`` / ``CVSS3 Base``, ``"score (vector)"``; the final ``CVSS3_FINAL`` / ``CVSS3``
score only when no base is given) else v2 alike; the vector as Qualys writes it (no ``CVSS:3.x/``
prefix). CVEs from ``CVE_ID_LIST`` / ``CVE ID``.

Fingerprint: ``qualys``, host (lower-case), port, protocol, QID, FQDN. Excluded: ``RESULT`` (scan
output), first/last found, times found, status, severity.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    band,
    host_asset,
    join_nonempty,
    json_raw,
    latest,
    score_and_vector,
    take_cves,
    text,
    urls_in,
    xml_raw,
)
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "qualys"
CONTAINERS = ("xml", "csv")
DOCTYPE = "ASSET_DATA_REPORT"
DTD_SYSTEM_ID = re.compile(r"https://[\w.-]+\.qualys\.(?:com|eu|in|ca|ae|co\.uk)/[\w/.-]*\.dtd")
"""The DTD every Qualys report names (never fetched; see :mod:`handoffkit.ingest.detect`)."""

LEVELS = {"5": "critical", "4": "high", "3": "medium", "2": "low", "1": "low"}
FIXED = "fixed"
_CSV_REQUIRED = {"ip", "qid", "title", "severity"}
_Detection = dict[str, Any]


def sniff(doc: object) -> bool:
    """XML root ``ASSET_DATA_REPORT`` with a ``HOST_LIST``, or a CSV with ``IP``, ``QID``, ``Title`` and
    ``Severity`` columns."""
    if isinstance(doc, Element):
        return doc.tag == DOCTYPE and doc.find("HOST_LIST") is not None
    return isinstance(doc, CsvTable) and {h.lower() for h in doc.headers} >= _CSV_REQUIRED


def parse(doc: Element | CsvTable, source: str) -> ParseResult:
    """Parse a Qualys VM report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Qualys VM")
    if isinstance(doc, Element):
        detections = _xml_detections(doc, result)
    else:
        if doc.empty_rows:
            result.skipped["empty CSV row"] += doc.empty_rows
        detections = _csv_detections(doc)
    found: list[str | None] = []
    for d in detections:
        found.append(d["last_found"])
        result.scope_assets.add(host_asset(d["host"]))  # a fixed detection's host was scanned too
        if (d["status"] or "").lower() == FIXED:
            result.skipped["fixed detection (status Fixed)"] += 1
            continue
        record = _record(d, source, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest(found) or (
        latest([doc.findtext("HEADER/GENERATION_DATETIME")]) if isinstance(doc, Element) else None
    )
    return result


# ------------------------------------------------------------------------------------------- XML


def _xml_detections(root: Element, result: ParseResult) -> list[_Detection]:
    glossary = {d.get("id"): d for d in root.iterfind("GLOSSARY/VULN_DETAILS_LIST/VULN_DETAILS")}
    out: list[_Detection] = []
    for h, host in enumerate(root.iterfind("HOST_LIST/HOST"), 1):
        name = text(host.findtext("DNS")) or text(host.findtext("NETBIOS")) or text(host.findtext("IP"))
        result.scope_assets.add(host_asset(name))
        for i, info in enumerate(host.iterfind("VULN_INFO_LIST/VULN_INFO"), 1):
            qid_elem = info.find("QID")
            details = glossary.get(qid_elem.get("id") if qid_elem is not None else None)
            out.append(_xml_detection(info, details, name, f"HOST_LIST/HOST[{h}]/VULN_INFO_LIST/VULN_INFO[{i}]"))
    return out


def _xml_detection(info: Element, details: Element | None, host: str | None, place: str) -> _Detection:
    def detail(path: str) -> str | None:
        return text(details.findtext(path)) if details is not None else None

    v3_score, v3_vector = score_and_vector(detail("CVSS3_SCORE/CVSS3_BASE"))
    v2_score, v2_vector = score_and_vector(detail("CVSS_SCORE/CVSS_BASE"))
    found = details if details is not None else Element("VULN_DETAILS")
    cves = [text(c.text) for c in found.iterfind("CVE_ID_LIST/CVE_ID/ID")]
    vendor = [text(u.text) for u in found.iterfind("VENDOR_REFERENCE_LIST/VENDOR_REFERENCE/URL")]
    return {
        "host": host,
        "qid": text(info.findtext("QID")),
        "type": text(info.findtext("TYPE")),
        "status": text(info.findtext("VULN_STATUS")),
        "port": text(info.findtext("PORT")),
        "protocol": text(info.findtext("PROTOCOL")),
        "service": text(info.findtext("SERVICE")),
        "fqdn": text(info.findtext("FQDN")),
        "last_found": text(info.findtext("LAST_FOUND")),
        "title": detail("TITLE"),
        "level": detail("SEVERITY"),
        "category": detail("CATEGORY"),
        "cves": cves,
        "v3": (_first_score(v3_score, info.findtext("CVSS3_FINAL")), v3_vector),
        "v2": (_first_score(v2_score, info.findtext("CVSS_FINAL")), v2_vector),
        "text": [detail("THREAT"), detail("IMPACT"), detail("SOLUTION")],
        "references": vendor,
        "raw": xml_raw(info),
        "media": XML_MEDIA_TYPE,
        "place": place,
    }


def _first_score(base: float | None, final: str | None) -> float | None:
    """The base score; Qualys's own final (temporal) score only when the base is absent."""
    return base if base is not None else score_and_vector(final)[0]


# ------------------------------------------------------------------------------------------- CSV


def _csv_detections(table: CsvTable) -> list[_Detection]:
    by_lower = {h.lower(): h for h in table.headers}
    out: list[_Detection] = []
    for row, line in zip(table.rows, table.lines, strict=True):

        def get(column: str, row: dict[str, Any] = row) -> str | None:
            header = by_lower.get(column.lower())
            return text(row.get(header)) if header else None

        v3_score, v3_vector = score_and_vector(get("CVSS3 Base"))
        v2_score, v2_vector = score_and_vector(get("CVSS Base"))
        out.append(
            {
                "host": get("DNS") or get("NetBIOS") or get("IP"),
                "qid": get("QID"),
                "type": get("Type"),
                "status": get("Vuln Status"),
                "port": get("Port"),
                "protocol": get("Protocol"),
                "service": None,
                "fqdn": get("FQDN"),
                "last_found": get("Last Detected"),
                "title": get("Title"),
                "level": get("Severity"),
                "category": get("Category"),
                "cves": [get("CVE ID")],
                "v3": (_first_score(v3_score, get("CVSS3")), v3_vector),
                "v2": (_first_score(v2_score, get("CVSS")), v2_vector),
                "text": [get("Threat"), get("Impact"), get("Solution")],
                "references": urls_in(get("Solution")),
                "raw": json_raw(row),
                "media": JSON_MEDIA_TYPE,
                "place": f"line {line}",
            }
        )
    return out


# ---------------------------------------------------------------------------------------- record


def _record(d: _Detection, source: str, result: ParseResult) -> NormalisedFinding:
    host, port, protocol, qid, kind_of = d["host"] or UNKNOWN_ASSET, d["port"], d["protocol"], d["qid"], d["type"]
    level = d["level"] or ""
    informational = (kind_of or "").lower() in ("ig", "info", "information gathered")
    severity = "info" if informational else band(level, source, d["place"], LEVELS)
    (v3_score, v3_vector), (v2_score, v2_vector) = d["v3"], d["v2"]
    has_v3 = v3_score is not None or v3_vector is not None
    where = f"{port}/{(protocol or '').lower()}" if port else None
    location = " ".join(p for p in (where, f"({d['service']})" if d["service"] else None, d["fqdn"]) if p)
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, host.lower(), port or "0", (protocol or "").lower(), qid, d["fqdn"]),
        title=d["title"] or f"Qualys QID {qid}",
        asset_ref=host_asset(host, port),
        tool="Qualys VM",
        severity=severity,
        raw_severity=f"{level} ({kind_of})" if kind_of else level,
        kind="host",
        rule_ref=qid,
        location=location or None,
        cves=take_cves(result, d["cves"]),
        cvss_vector=v3_vector if has_v3 else v2_vector,
        cvss_score=v3_score if has_v3 else v2_score,
        description=join_nonempty([d["category"], *d["text"]]),
        references=tuple(dict.fromkeys(r for r in d["references"] if r and "://" in r)),
        raw=d["raw"],
        raw_media_type=d["media"],
        source_ref=d["place"],
    )
