"""GitLab security reports (``gl-sast-report.json``, ``gl-dependency-scanning-report.json``, and the
container-scanning, secret-detection and DAST reports of the same schema): ``version`` plus
``vulnerabilities[]``, schema 2.x (no ``scan`` object) to 15.x.

One record per ``vulnerabilities[]`` entry. The kind follows ``scan.type`` (``sast`` → code,
``dependency_scanning`` / ``container_scanning`` → vulnerability, ``secret_detection`` → secret, ``dast``
→ web); without a ``scan`` object (schema 2.x), an entry locating a dependency is a vulnerability and
one locating a file line is code.

Severity: Critical / High / Medium / Low / Info as bands; Unknown → info (``raw_severity`` keeps it).

Asset: code — the file's top-level directory (the report names no repository); dependency — ``<file>
pkg:<name>@<version>`` (the lock file is what is scanned); container — ``<image> pkg:…``; DAST — the URL
origin. Location: ``file:start_line`` (code), the file (dependency), the image, or ``METHOD url``.

CVEs: identifiers of type ``cve`` (a 2.x report's ``cve`` field is GitLab's own fingerprint, not a CVE, and
is used only in the identity); CWEs: identifiers of type ``cwe``. CVSS: ``cvss_vectors[0].vector``
(scored with the ``cvss`` package). Scan instant: ``scan.end_time`` (read as UTC).

Fingerprint: ``gitlab``, report type, location (file, start line for code; package name and version for
dependencies — a lock file such as ``go.sum`` holds several versions of one package and GitLab reports each;
image; URL and parameter for DAST), the primary identifier (``type:value`` of the first identifier) and the
2.x ``cve`` fingerprint. Excluded: ``id`` (new on every run in some analysers), severity, description,
solution.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    band,
    code_asset,
    cvss_base,
    cwes,
    expect_dict,
    expect_list,
    join_nonempty,
    json_raw,
    latest,
    package_asset,
    take_cves,
    text,
    url_origin,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "gitlab"
CONTAINERS = ("json",)

KINDS = {
    "sast": "code",
    "dependency_scanning": "vulnerability",
    "container_scanning": "vulnerability",
    "cluster_image_scanning": "vulnerability",
    "secret_detection": "secret",
    "dast": "web",
    "api_fuzzing": "web",
    "coverage_fuzzing": "code",
}
SEVERITY = {"unknown": "info"}


def sniff(doc: object) -> bool:
    """A JSON object with a string ``version`` and a ``vulnerabilities`` array, and a ``scan`` object,
    ``remediations`` or ``dependency_files`` (the schema's own keys)."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("version"), str)
        and isinstance(doc.get("vulnerabilities"), list)
        and any(k in doc for k in ("scan", "remediations", "dependency_files"))
    )


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse a GitLab security report; see the module docstring for the mapping."""
    scan = doc.get("scan") if isinstance(doc.get("scan"), dict) else {}
    scanner = scan.get("scanner") if isinstance(scan.get("scanner"), dict) else {}
    report_type = text(scan.get("type"))
    tool = f"GitLab {text(scanner.get('name')) or (report_type or 'security report').replace('_', ' ')}"
    result = ParseResult(format=FORMAT, tool=tool, tool_version=text(scanner.get("version")))
    for f in doc.get("dependency_files") or []:
        if isinstance(f, dict) and text(f.get("path")):
            result.scope_assets.add(text(f.get("path")))
    for i, vuln in enumerate(expect_list(doc.get("vulnerabilities"), source, "vulnerabilities", "the vulnerabilities")):
        place = f"vulnerabilities[{i}]"
        record = _record(expect_dict(vuln, source, place, "a vulnerability"), report_type, tool, source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest([scan.get("end_time")]) or latest([scan.get("start_time")])
    return result


def _kind(report_type: str | None, location: dict[str, Any]) -> str:
    if report_type in KINDS:
        return KINDS[report_type]
    if isinstance(location.get("dependency"), dict) and (location["dependency"].get("package") or {}).get("name"):
        return "vulnerability"
    return "code"


def _record(
    vuln: dict[str, Any], report_type: str | None, tool: str, source: str, place: str, result: ParseResult
) -> NormalisedFinding:
    location = vuln.get("location") if isinstance(vuln.get("location"), dict) else {}
    kind = _kind(report_type, location)
    identifiers = [i for i in vuln.get("identifiers") or [] if isinstance(i, dict)]
    primary = f"{text(identifiers[0].get('type'))}:{text(identifiers[0].get('value'))}" if identifiers else None
    file, line = text(location.get("file")), location.get("start_line")
    dependency = location.get("dependency") if isinstance(location.get("dependency"), dict) else {}
    package = (
        text((dependency.get("package") or {}).get("name")) if isinstance(dependency.get("package"), dict) else None
    )
    version = text(dependency.get("version"))
    image = text(location.get("image"))
    if kind == "web":
        url = (
            text(location.get("hostname", "")) and f"{text(location.get('hostname'))}{text(location.get('path')) or ''}"
        )
        asset = url_origin(url) or "unknown"
        where = " ".join(p for p in (text(location.get("method")), url, text(location.get("param"))) if p) or None
        identity: tuple[Any, ...] = (url, text(location.get("method")), text(location.get("param")))
    elif kind == "vulnerability":
        asset = package_asset(image or file, package, version)
        # a lock file (go.sum, yarn.lock) can hold several versions of one package, each reported apart
        where, identity = image or file, (image or file, package, version)
    else:
        asset = code_asset(file)
        where, identity = (f"{file}:{line}" if file and line else file), (file, line)
    vectors = [v for v in vuln.get("cvss_vectors") or [] if isinstance(v, dict)]
    vector = text(vectors[0].get("vector")) if vectors else None
    raw_severity = text(vuln.get("severity")) or "Unknown"
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, report_type or kind, *identity, primary, text(vuln.get("cve"))),
        title=text(vuln.get("name"))
        or text(vuln.get("message"))
        or (identifiers[0].get("name") if identifiers else None)
        or "(untitled)",
        asset_ref=asset,
        tool=tool,
        tool_version=result.tool_version,
        severity=band(raw_severity, source, f"{place}.severity", SEVERITY),
        raw_severity=raw_severity,
        kind=kind,
        rule_ref=primary,
        location=where,
        cves=take_cves(result, [i.get("value") for i in identifiers if str(i.get("type", "")).lower() == "cve"]),
        cwes=cwes([i.get("value") for i in identifiers if str(i.get("type", "")).lower() == "cwe"]),
        cvss_vector=vector,
        cvss_score=cvss_base(vector),
        description=join_nonempty([text(vuln.get("description")), text(vuln.get("solution"))]),
        references=tuple(
            dict.fromkeys(
                u
                for u in [
                    *(lnk.get("url") for lnk in vuln.get("links") or [] if isinstance(lnk, dict)),
                    *(i.get("url") for i in identifiers),
                ]
                if isinstance(u, str) and "://" in u
            )
        ),
        raw=json_raw(vuln),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )


def _title(vuln: dict[str, Any], identifiers: list[dict[str, Any]]) -> str:
    named = text(identifiers[0].get("name")) if identifiers else None
    return text(vuln.get("name")) or text(vuln.get("message")) or named or "(untitled)"


def _references(vuln: dict[str, Any], identifiers: list[dict[str, Any]]) -> tuple[str, ...]:
    links = [lnk.get("url") for lnk in vuln.get("links") or [] if isinstance(lnk, dict)]
    urls = [*links, *(i.get("url") for i in identifiers)]
    return tuple(dict.fromkeys(u for u in urls if isinstance(u, str) and "://" in u))
