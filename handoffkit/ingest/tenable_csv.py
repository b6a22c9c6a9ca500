"""Tenable CSV exports: Nessus (``Plugin ID,CVE,CVSS,Risk,Host,…``), Tenable.sc (``Plugin,Plugin
Name,Family,Severity,IP Address,…``), Tenable.io (``Asset UUID``, ``IPv4``, ``Plugin ID``, ``Severity``,
…) and the Tenable Vulnerability Management findings export, whose columns are the dotted keys of
Tenable's export-field mapping (``asset.id``, ``asset.display_fqdn``, ``definition.id``,
``definition.cve``, ``definition.cvss3.base_score``, ``definition.cwe``, ``port``, ``severity``,
``state``, ``last_seen`` …); comma or semicolon delimited.

One record per non-empty data row, except rows whose ``state`` is ``FIXED`` (Tenable VM exports
fixed findings too): those are counted in ``skipped`` and, not being reported, let a rescan mark
the finding absent. Columns are found by name (case-insensitive, first alias present wins; see
``COLUMNS``), so column order and extra columns do not matter.

Nessus writes one row per CVE of a plugin (the same plugin, host and port repeated with a
different ``CVE`` cell). Each row stays a record (``parsed`` counts rows, as the export does), the
rows share one fingerprint, and every one of them carries the union of the group's CVEs — so
whichever the store keeps, no CVE is lost.

Severity: the ``Risk`` / ``Severity`` / ``Risk Factor`` word (Critical, High, Medium, Low,
Info/None) or a 0-4 number (0 info … 4 critical).

Asset: the host (``Host``, else FQDN / DNS name, else IP address, else NetBIOS name, else the
asset name or UUID) plus ``:port`` when the port is not 0. Scan instant: the latest ``last_seen`` /
``Last Seen`` of the rows. CVSS: the v3 vector and score when
present, else v2; vectors are kept exactly as exported (Tenable.sc omits the ``CVSS:3.x/`` prefix).

Fingerprint: ``nessus``, host, port, protocol, plugin id — the Nessus XML recipe, so an XML and a
CSV export of one scan agree when they name the host the same way. Excluded: CVE (per-row in
Nessus CSV), ``Plugin Output`` / ``Plugin Text``, first/last seen dates, scan ids, severity.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    as_float,
    band,
    cwes,
    host_asset,
    host_plugin_fingerprint,
    join_nonempty,
    json_raw,
    latest,
    take_cves,
    text,
    urls_in,
)
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import NormalisedFinding, ParseResult

FORMAT = "tenable-csv"
CONTAINERS = ("csv",)

COLUMNS: dict[str, tuple[str, ...]] = {
    "plugin": ("Plugin ID", "Plugin", "PluginID", "definition.id"),
    "name": ("Name", "Plugin Name", "definition.name"),
    "severity": ("Risk", "Severity", "Risk Factor", "definition.severity"),
    "host": (
        "Host",
        "asset.display_fqdn",
        "asset.host_name",
        "asset.display_ipv4_address",
        "asset.display_ipv6_address",
        "asset.netbios_name",
        "asset.name",
        "asset.id",
        "FQDN",
        "DNS Name",
        "IP Address",
        "IPv4",
        "IPv4 Address",
        "IPv6",
        "IPv6 Address",
        "NetBIOS Name",
        "NetBios",
        "Asset Name",
        "Asset UUID",
    ),
    "port": ("Port",),
    "protocol": ("Protocol",),
    "cve": ("CVE", "definition.cve"),
    "v3_vector": (
        "CVSS3 Vector",
        "CVSS V3 Vector",
        "CVSSv3 Vector",
        "CVSS v3.0 Vector",
        "definition.cvss3.base_vector",
    ),
    "v3_score": (
        "definition.cvss3.base_score",
        "CVSS3 Base Score",
        "CVSS V3 Base Score",
        "CVSSv3 Base Score",
        "CVSS v3.0 Base Score",
        "CVSSv3",
        "CVSS3",
    ),
    "v2_vector": ("CVSS Vector", "CVSS V2 Vector", "CVSSv2 Vector", "CVSS v2.0 Vector", "definition.cvss2.base_vector"),
    "v2_score": (
        "CVSS Base Score",
        "CVSS V2 Base Score",
        "CVSSv2 Base Score",
        "CVSS v2.0 Base Score",
        "CVSS",
        "definition.cvss2.base_score",
    ),
    "synopsis": ("Synopsis", "definition.synopsis"),
    "description": ("Description", "definition.description"),
    "solution": ("Solution", "definition.solution"),
    "see_also": ("See Also", "definition.see_also"),
    "xrefs": ("Cross References", "CWE", "definition.cwe"),
    "state": ("state", "Vulnerability State"),
    "last_seen": ("last_seen", "Last Seen"),
}
"""Logical field → the header names the four Tenable exports use for it, in order of preference.

The Tenable VM finding's own ``severity`` column (after recast rules) is preferred to
``definition.severity`` (the plugin's) by coming first under ``Severity``; header names are matched
case-insensitively."""

FIXED_STATES = frozenset({"fixed"})
"""``state`` values of findings Tenable no longer observes (not records; see the module docstring)."""

SEVERITY = {"none": "info", "0": "info", "1": "low", "2": "medium", "3": "high", "4": "critical"}


def sniff(doc: object) -> bool:
    """A CSV table with a plugin-id column and a host column."""
    if not isinstance(doc, CsvTable):
        return False
    columns = _columns(doc.headers)
    return "plugin" in columns and "host" in columns


def _columns(headers: list[str]) -> dict[str, list[str]]:
    """Logical field → the present headers for it, most preferred first."""
    by_lower = {h.lower(): h for h in headers}
    found: dict[str, list[str]] = {}
    for field, aliases in COLUMNS.items():
        present = [by_lower[a.lower()] for a in aliases if a.lower() in by_lower]
        if present:
            found[field] = present
    return found


def _tool(headers: list[str]) -> str:
    lower = {h.lower() for h in headers}
    if "asset.id" in lower or "definition.id" in lower:
        return "Tenable VM"
    if "asset uuid" in lower:
        return "Tenable.io"
    if "plugin" in lower and "plugin id" not in lower:
        return "Tenable.sc"
    return "Nessus"


def parse(table: CsvTable, source: str) -> ParseResult:
    """Parse a Tenable CSV export; see the module docstring for the mapping."""
    columns = _columns(table.headers)
    tool = _tool(table.headers)
    result = ParseResult(format=FORMAT, tool=tool)
    if table.empty_rows:
        result.skipped["empty CSV row"] += table.empty_rows
    seen: list[str | None] = []
    for row, line in zip(table.rows, table.lines, strict=True):
        host = _get(row, columns, "host")
        result.scope_assets.add(host_asset(host))  # a fixed finding's host was scanned too
        seen.append(_get(row, columns, "last_seen"))
        if (_get(row, columns, "state") or "").lower() in FIXED_STATES:
            result.skipped["fixed finding (state FIXED)"] += 1
            continue
        record = _record(row, columns, tool, source, f"line {line}", result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    _share_cves(result.records)
    result.scanned_at = latest(seen)
    return result


def _get(row: dict[str, Any], columns: dict[str, list[str]], field: str) -> str | None:
    for header in columns.get(field, ()):
        cell = row.get(header)
        value = text(", ".join(cell) if isinstance(cell, list) else cell)
        if value:
            return value
    return None


def _record(
    row: dict[str, Any], columns: dict[str, list[str]], tool: str, source: str, place: str, result: ParseResult
) -> NormalisedFinding:
    def get(field: str) -> str | None:
        return _get(row, columns, field)

    host, port, protocol, plugin = get("host") or "", get("port"), get("protocol"), get("plugin")
    raw_severity = get("severity") or ""
    v3_vector, v3_score = get("v3_vector"), as_float(get("v3_score"))
    has_v3 = v3_vector is not None or v3_score is not None
    return NormalisedFinding(
        fingerprint=host_plugin_fingerprint(host, port, protocol, plugin),
        title=get("name") or f"Nessus plugin {plugin}",
        asset_ref=host_asset(host, port),
        tool=tool,
        severity=band(raw_severity or "info", source, place, SEVERITY),
        raw_severity=raw_severity,
        kind="host",
        rule_ref=plugin,
        location=f"{port or '0'}/{(protocol or '').lower()}",
        cves=take_cves(result, get("cve")),
        cwes=cwes(get("xrefs")),
        cvss_vector=v3_vector if has_v3 else get("v2_vector"),
        cvss_score=v3_score if has_v3 else as_float(get("v2_score")),
        description=join_nonempty([get("synopsis"), get("description"), get("solution")]),
        references=urls_in(get("see_also")),
        raw=json_raw(row),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )


def _share_cves(records: list[NormalisedFinding]) -> None:
    """Give every row of one plugin/host/port the CVEs of all its rows (see the module docstring)."""
    groups: dict[str, list[NormalisedFinding]] = defaultdict(list)
    for record in records:
        groups[record.fingerprint].append(record)
    for group in groups.values():
        if len(group) > 1:
            union = tuple(dict.fromkeys(cve for record in group for cve in record.cves))
            for record in group:
                record.cves = union
