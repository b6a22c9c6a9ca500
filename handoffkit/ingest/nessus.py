"""Nessus v2 XML (``NessusClientData_v2``), including Nessus WAS exports.

One record per ``ReportHost/ReportItem``, all severities (severity 0 items become ``info``
records). Every ``ReportHost`` goes into ``scope_assets``, even one without items.

Severity: the item's ``severity`` attribute: 0 → info, 1 → low, 2 → medium, 3 → high,
4 → critical (``raw_severity`` keeps the number and the ``risk_factor`` word).

Asset: the host (``host-fqdn``, else ``host-ip``, else ``ReportHost@name``; a WAS host written as
a URL becomes its origin) plus ``:port`` when the port is not 0. Rule: the plugin id. Location:
``port/protocol (service)``.

CVSS: v3 (``cvss3_vector`` / ``cvss3_base_score``, WAS ``cvssv3``) goes into ``cvss_vector`` /
``cvss_score``; with no v3, the v2 values (``cvss_vector`` as Nessus writes it, ``CVSS2#…``,
``cvss_base_score`` / WAS ``cvss``) take their place. When both exist, the v2 vector and score
are appended to the description as a ``CVSS v2:`` line so they are not lost.

Fingerprint: ``nessus``, host, port, protocol, plugin id — the recipe the Tenable CSV parser uses
too. Excluded: ``plugin_output`` (changes every scan), HOST_START/HOST_END and any scan id or
time, severity, plugin version.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    as_float,
    band,
    children_text,
    cwes,
    first,
    host_asset,
    host_plugin_fingerprint,
    join_nonempty,
    latest,
    take_cves,
    text,
    urls_in,
    xml_raw,
)
from handoffkit.record.model import NormalisedFinding, ParseResult

FORMAT = "nessus"
CONTAINERS = ("xml",)

SEVERITY = {"0": "info", "1": "low", "2": "medium", "3": "high", "4": "critical"}
SCAN_INFO_PLUGIN = "19506"
"""The "Nessus Scan Information" plugin, whose output names the scanner version."""

_VERSION = re.compile(r"Nessus version\s*:\s*(\S+)")


def sniff(doc: object) -> bool:
    """The XML root is ``NessusClientData_v2``."""
    return isinstance(doc, Element) and doc.tag == "NessusClientData_v2"


def parse(root: Element, source: str) -> ParseResult:
    """Parse a Nessus v2 export; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Nessus", tool_version=_scanner_version(root))
    for report in root.iter("Report"):
        kind = "web" if report.get("type") == "was" else "host"
        for h, host in enumerate(report.findall("ReportHost"), 1):
            name = _host_name(host)
            result.scope_assets.add(host_asset(name))
            for i, item in enumerate(host.findall("ReportItem"), 1):
                record = _record(item, name, kind, source, f"ReportHost[{h}]/ReportItem[{i}]", result)
                result.records.append(record)
                result.scope_assets.add(record.asset_ref)
    tags = {name: [t.text for t in root.iter("tag") if t.get("name") == name] for name in ("HOST_END", "HOST_START")}
    result.scanned_at = latest(tags["HOST_END"]) or latest(tags["HOST_START"])
    return result


def _scanner_version(root: Element) -> str | None:
    output = root.findtext(f".//ReportItem[@pluginID='{SCAN_INFO_PLUGIN}']/plugin_output")
    match = _VERSION.search(output or "")
    return match.group(1) if match else None


def _host_name(host: Element) -> str:
    props = {tag.get("name"): text(tag.text) for tag in host.iterfind("HostProperties/tag")}
    return props.get("host-fqdn") or props.get("host-ip") or text(host.get("name")) or UNKNOWN_ASSET


def _record(item: Element, host: str, kind: str, source: str, place: str, result: ParseResult) -> NormalisedFinding:
    fields = children_text(item)
    port, protocol, plugin = item.get("port"), item.get("protocol"), text(item.get("pluginID"))
    severity = text(item.get("severity")) or ""
    risk = first(fields, "risk_factor")
    v3_vector, v3_score = first(fields, "cvss3_vector"), as_float(first(fields, "cvss3_base_score", "cvssv3"))
    v2_vector, v2_score = first(fields, "cvss_vector"), as_float(first(fields, "cvss_base_score", "cvss"))
    has_v3 = v3_vector is not None or v3_score is not None
    v2_line = f"CVSS v2: {v2_vector or '-'} (base {v2_score if v2_score is not None else '-'})"
    service = text(item.get("svc_name"))
    return NormalisedFinding(
        fingerprint=host_plugin_fingerprint(host, port, protocol, plugin),
        title=text(item.get("pluginName")) or first(fields, "plugin_name") or f"Nessus plugin {plugin}",
        asset_ref=host_asset(host, port),
        tool="Nessus",
        tool_version=result.tool_version,
        severity=band(severity, source, place, SEVERITY),
        raw_severity=f"{severity} ({risk})" if risk else severity,
        kind=kind,
        rule_ref=plugin,
        location=f"{text(port) or '0'}/{(protocol or '').lower()}" + (f" ({service})" if service else ""),
        cves=take_cves(result, fields.get("cve")),
        cwes=cwes([x for x in fields.get("xref", []) if x.upper().startswith("CWE")], fields.get("cwe")),
        cvss_vector=v3_vector if has_v3 else v2_vector,
        cvss_score=v3_score if has_v3 else v2_score,
        description=join_nonempty(
            [
                first(fields, "synopsis"),
                first(fields, "description"),
                v2_line if has_v3 and (v2_vector or v2_score is not None) else None,
            ]
        ),
        references=urls_in(*fields.get("see_also", [])),
        raw=xml_raw(item),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )
