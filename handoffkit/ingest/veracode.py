"""Veracode detailed report XML (``detailedreport``, namespace ``https://www.veracode.com/schema/reports/
export/1.0``, report format 1.5): static and dynamic flaws and software composition analysis.

One record per ``<flaw>`` (static ``staticflaws``, dynamic ``dynamicflaws``, under every category) and per
``<vulnerability>`` of a ``software_composition_analysis`` ``<component>``. A flaw whose
``remediation_status`` is ``Fixed`` is counted in ``skipped``; a flaw whose mitigation was accepted
(``mitigation_status`` ``accepted``) and an SCA vulnerability marked ``mitigation="true"`` are kept with
``suppressed=True``.

Severity: Veracode's 0-5: 5 (Very High) → critical, 4 (High) → high, 3 (Medium) → medium, 2 (Low) → low,
1 (Very Low) → low, 0 (Informational) → info.

Asset: a static flaw and an SCA vulnerability belong to the application (``app_name``; an SCA one as
``<app> pkg:<library>@<version>``); a dynamic flaw to the origin of its ``url``. Location: static —
``sourcefilepath`` + ``sourcefile:line`` (and the module); dynamic — the URL; SCA — the component's first
``file_path``. Scan instant: the latest ``published_date`` of the static / dynamic analysis, else
``last_update_time``.

CWE from ``cweid`` / ``cwe_id``; CVE and CVSS score from the SCA vulnerability (``cve_id``, ``cvss_score``).

Fingerprint: flaw — ``veracode``, application, ``issueid`` (Veracode keeps a flaw's id across the
application's scans); SCA — ``veracode``, application, library (else file name), CVE. Excluded: counts,
dates, severity, descriptions, version (an upgrade that keeps the CVE is the same finding).
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    as_float,
    band,
    cwes,
    join_nonempty,
    latest,
    package_asset,
    take_cves,
    text,
    url_origin,
    xml_raw,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "veracode"
CONTAINERS = ("xml",)

LEVELS = {"5": "critical", "4": "high", "3": "medium", "2": "low", "1": "low", "0": "info"}
WORDS = {"5": "Very High", "4": "High", "3": "Medium", "2": "Low", "1": "Very Low", "0": "Informational"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _all(root: Element, name: str) -> Iterator[Element]:
    return (e for e in root.iter() if _local(e.tag) == name)


def sniff(doc: object) -> bool:
    """XML root ``detailedreport`` (any namespace)."""
    return isinstance(doc, Element) and _local(doc.tag) == "detailedreport"


def parse(root: Element, source: str) -> ParseResult:
    """Parse a Veracode detailed report; see the module docstring for the mapping."""
    app = text(root.get("app_name")) or UNKNOWN_ASSET
    result = ParseResult(format=FORMAT, tool="Veracode", tool_version=text(root.get("report_format_version")))
    result.scope_assets.add(app)
    for n, flaw in enumerate(_all(root, "flaw"), 1):
        place = f"flaw[{n}] (issueid {flaw.get('issueid')})"
        if (text(flaw.get("remediation_status")) or "").lower() == "fixed":
            result.skipped["fixed flaw (remediation_status Fixed)"] += 1
            continue
        record = _flaw(flaw, app, source, place)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    for c, component in enumerate(_all(root, "component"), 1):
        for v, vuln in enumerate((e for e in component.iter() if _local(e.tag) == "vulnerability"), 1):
            record = _sca(component, vuln, app, source, f"component[{c}]/vulnerability[{v}]", result)
            result.records.append(record)
            result.scope_assets.add(record.asset_ref)
    published = [a.get("published_date") for name in ("static-analysis", "dynamic-analysis") for a in _all(root, name)]
    result.scanned_at = latest(published) or latest([root.get("last_update_time")])
    return result


def _severity(value: str | None, source: str, place: str) -> tuple[str, str]:
    number = text(value) or ""
    return band(number, source, place, LEVELS), f"{number} ({WORDS[number]})" if number in WORDS else number


def _flaw(flaw: Element, app: str, source: str, place: str) -> NormalisedFinding:
    url = text(flaw.get("url"))
    severity, raw_severity = _severity(flaw.get("severity"), source, place)
    file, line = text(flaw.get("sourcefile")), text(flaw.get("line"))
    path = f"{text(flaw.get('sourcefilepath')) or ''}{file}" if file else None
    module = text(flaw.get("module"))
    if url:
        location, asset, kind = url, url_origin(url) or app, "web"
    else:
        where = f"{path}:{line}" if path and line else path
        location, asset, kind = " ".join(p for p in (module, where) if p) or None, app, "code"
    mitigation = (text(flaw.get("mitigation_status")) or "").lower()
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, app, "flaw", text(flaw.get("issueid"))),
        title=text(flaw.get("categoryname")) or text(flaw.get("type")) or "(untitled)",
        asset_ref=asset,
        tool="Veracode",
        severity=severity,
        raw_severity=raw_severity,
        kind=kind,
        rule_ref=text(flaw.get("categoryid")) and f"category {flaw.get('categoryid')}",
        location=location,
        cwes=cwes(text(flaw.get("cweid"))),
        description=join_nonempty([text(flaw.get("description")), text(flaw.get("type"))]),
        suppressed=mitigation == "accepted",
        raw=xml_raw(flaw),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )


def _sca(
    component: Element, vuln: Element, app: str, source: str, place: str, result: ParseResult
) -> NormalisedFinding:
    library, version = (
        text(component.get("library")) or text(component.get("file_name")),
        text(component.get("version")),
    )
    cve = text(vuln.get("cve_id"))
    severity, raw_severity = _severity(vuln.get("severity"), source, place)
    paths = [text(p.get("value")) for p in component.iter() if _local(p.tag) == "file_path"]
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, app, "sca", library, cve),
        title=f"{cve} in {library}",
        asset_ref=package_asset(app, library, version),
        tool="Veracode",
        severity=severity,
        raw_severity=raw_severity,
        kind="vulnerability",
        rule_ref=cve,
        location=next((p for p in paths if p), None) or text(component.get("file_name")),
        cves=take_cves(result, cve),
        cwes=cwes(text(vuln.get("cwe_id"))),
        cvss_score=as_float(vuln.get("cvss_score")),
        description=text(vuln.get("cve_summary")),
        suppressed=(text(vuln.get("mitigation")) or "").lower() == "true",
        raw=xml_raw(vuln),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )
