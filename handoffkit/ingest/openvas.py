"""OpenVAS / Greenbone (GVM): the XML report (``<report>``, or the GMP ``get_reports_response``, holding
``report/results/result``) and the CSV results export (``IP,Hostname,Port,Port Protocol,CVSS,Severity,
…,NVT OID,CVEs,…``).

One record per ``results/result`` element of the report, per non-empty CSV row. A result whose threat
is ``False Positive`` (an override) is kept with ``suppressed=True``.

Severity: the threat word Greenbone shows (XML ``threat``, CSV ``Severity``): Critical / High / Medium /
Low as bands, Log and Debug → info; when the word is absent (a result without a threat), the numeric
``severity`` / ``CVSS`` score through the CVSS bands.

Asset: the host name (XML ``host/hostname``, CSV ``Hostname``), else the IP, plus ``:port`` when the
port is a number (``general/tcp`` and ``general/icmp`` results are the host's). Every ``host`` of the
report is in scope. Scan instant: ``scan_end`` (else ``scan_start``) of the report; CSV: the latest
``Timestamp``.

CVSS: the score from ``severity`` / ``CVSS``; the vector from ``nvt/severities/severity/value`` when
the report has it (GVM 21.04+). CVEs from ``nvt/refs/ref[@type=cve]`` (older reports: ``nvt/cve``) or
the CSV ``CVEs``; CWEs from ``ref[@type=cwe]``; URLs from ``ref[@type=url]`` / ``Other References``.

Fingerprint: ``openvas``, host (lower-case), port (``512/tcp``, ``general/tcp``), NVT OID. Excluded:
result id, name and times (new every scan), the result ``description`` (scan output), severity, QoD.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    as_float,
    band,
    cwes,
    host_asset,
    join_nonempty,
    json_raw,
    latest,
    take_cves,
    text,
    urls_in,
    xml_raw,
)
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "openvas"
CONTAINERS = ("xml", "csv")

THREATS = {"log": "info", "debug": "info", "false positive": "info", "alarm": "high"}
"""Greenbone's own threat words beyond the band names."""
FALSE_POSITIVE = "false positive"
_CSV_REQUIRED = {"ip", "nvt oid", "nvt name"}


def sniff(doc: object) -> bool:
    """XML ``report`` / ``get_reports_response`` holding ``results/result`` with an ``nvt``; CSV with ``IP``,
    ``NVT OID`` and ``NVT Name`` columns."""
    if isinstance(doc, Element):
        report = _report(doc)
        return report is not None and report.find("results/result/nvt") is not None
    return isinstance(doc, CsvTable) and {h.lower() for h in doc.headers} >= _CSV_REQUIRED


def _report(root: Element) -> Element | None:
    """The element holding ``results`` (GVM nests a ``report`` in the exported ``report``)."""
    if root.tag not in ("report", "get_reports_response"):
        return None
    for candidate in (root, root.find("report"), root.find("report/report")):
        if candidate is not None and candidate.find("results") is not None:
            return candidate
    return None


def parse(doc: Element | CsvTable, source: str) -> ParseResult:
    """Parse a Greenbone report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Greenbone OpenVAS")
    if isinstance(doc, Element):
        report = _report(doc)
        if report is None:  # sniff said yes, so never; kept for a direct call
            return result
        for h in report.iterfind("host"):
            named = [d.findtext("value") for d in h.iterfind("detail") if d.findtext("name") == "hostname"]
            result.scope_assets.add(host_asset(text(named[0] if named else None) or text(h.findtext("ip"))))
        items = _xml_items(report)
        result.scanned_at = latest([report.findtext("scan_end")]) or latest([report.findtext("scan_start")])
    else:
        if doc.empty_rows:
            result.skipped["empty CSV row"] += doc.empty_rows
        items = _csv_items(doc)
    stamps: list[str | None] = []
    for item in items:
        stamps.append(item.pop("timestamp", None))
        record = _record(item, source, result)
        result.records.append(record)
        result.scope_assets.update((record.asset_ref, host_asset(item["host"])))
    if not isinstance(doc, Element):
        result.scanned_at = latest(stamps)
    return result


def _xml_items(report: Element) -> Iterator[dict[str, Any]]:
    for i, res in enumerate(report.iterfind("results/result"), 1):
        nvt = res.find("nvt")
        nvt = nvt if nvt is not None else Element("nvt")
        host = res.find("host")
        refs = nvt.findall("refs/ref")
        tags = _tags(nvt.findtext("tags"))
        yield {
            "host": (text(host.findtext("hostname")) or text(host.text)) if host is not None else None,
            "port": text(res.findtext("port")),
            "oid": text(nvt.get("oid")),
            "name": " ".join((nvt.findtext("name") or "").split()) or text(res.findtext("name")),
            "threat": text(res.findtext("threat")),
            "score": _first_score(res.findtext("severity"), nvt.findtext("cvss_base")),
            "vector": text(nvt.findtext("severities/severity/value")),
            "cves": [r.get("id") for r in refs if r.get("type") == "cve"] + [nvt.findtext("cve")],
            "cwes": [r.get("id") for r in refs if r.get("type") == "cwe"],
            "urls": [r.get("id") for r in refs if r.get("type") == "url"],
            "text": [tags.get("summary"), tags.get("insight"), tags.get("solution"), text(res.findtext("description"))],
            "raw": xml_raw(res),
            "media": XML_MEDIA_TYPE,
            "place": f"results/result[{i}]",
        }


def _first_score(*values: str | None) -> float | None:
    return next((score for score in map(as_float, values) if score is not None), None)


def _tags(value: str | None) -> dict[str, str]:
    """Greenbone's ``key=value|key=value`` NVT tags, each value's whitespace collapsed."""
    out: dict[str, str] = {}
    for part in (value or "").split("|"):
        key, _, val = part.partition("=")
        if key.strip() and val.strip():
            out[key.strip()] = " ".join(val.split())
    return out


def _csv_items(table: CsvTable) -> Iterator[dict[str, Any]]:
    by_lower = {h.lower(): h for h in table.headers}
    for row, line in zip(table.rows, table.lines, strict=True):

        def get(column: str, row: dict[str, Any] = row) -> str | None:
            header = by_lower.get(column.lower())
            return text(row.get(header)) if header else None

        port, protocol = get("Port"), get("Port Protocol")
        yield {
            "host": get("Hostname") or get("IP"),
            "port": f"{port}/{protocol or 'tcp'}" if port else (f"general/{protocol}" if protocol else None),
            "oid": get("NVT OID"),
            "name": get("NVT Name"),
            "threat": get("Severity"),
            "score": as_float(get("CVSS")),
            "vector": None,
            "cves": [get("CVEs")],
            "cwes": [],
            "urls": list(urls_in(get("Other References"))),
            "text": [get("Summary"), get("Vulnerability Insight"), get("Solution"), get("Specific Result")],
            "timestamp": get("Timestamp"),
            "raw": json_raw(row),
            "media": JSON_MEDIA_TYPE,
            "place": f"line {line}",
        }


def _record(item: dict[str, Any], source: str, result: ParseResult) -> NormalisedFinding:
    host, port, threat = item["host"] or UNKNOWN_ASSET, item["port"], item["threat"]
    number = port.split("/", 1)[0] if port else None
    if threat:
        severity = band(threat, source, item["place"], THREATS)
    else:
        severity = band_for_score(item["score"]) or "info"
    score = item["score"]
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, host.lower(), port, item["oid"]),
        title=item["name"] or f"Greenbone NVT {item['oid']}",
        asset_ref=host_asset(host, number if number and number.isdigit() else None),
        tool="Greenbone OpenVAS",
        severity=severity,
        raw_severity=f"{threat or '-'} ({score:g})" if score is not None else threat or "",
        kind="host",
        rule_ref=item["oid"],
        location=port,
        cves=take_cves(result, [c for c in item["cves"] if c]),
        cwes=cwes(item["cwes"]),
        cvss_vector=item["vector"],
        cvss_score=score,
        description=join_nonempty(item["text"]),
        references=tuple(dict.fromkeys(u for u in item["urls"] if u and "://" in u)),
        suppressed=(threat or "").lower() == FALSE_POSITIVE,
        raw=item["raw"],
        raw_media_type=item["media"],
        source_ref=item["place"],
    )
