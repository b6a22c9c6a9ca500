"""Snyk Open Source JSON (``snyk test --json``): one project object, or a list of them
(``--all-projects``).

One record per ``vulnerabilities[]`` entry of every project: Snyk writes one entry per vulnerable
dependency path, so one advisory reached through two paths is two records (and two findings: each path
is upgraded on its own). License issues (``type: license``) are records too, kind ``finding``.

Severity: ``severityWithCritical`` else ``severity``: critical / high / medium / low as bands.

Asset: ``<project> pkg:<packageName>@<version>``, the project being ``projectName`` (else the target
file). Location: ``displayTargetFile`` and the dependency path (``from``, ``a@1 > b@2 > c@3``).

CVSS: ``CVSSv3`` / ``cvssScore``. CVEs and CWEs from ``identifiers.CVE`` / ``identifiers.CWE``.
References: ``references[].url``.

Fingerprint: ``snyk``, project, target file, vulnerability id, package name, and the dependency path's
package names without versions. Excluded: versions (an upgrade that keeps the path and the advisory is the
same finding), upgrade/patch advice, times, severity, CVSS.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    as_float,
    band,
    cwes,
    expect_dict,
    expect_list,
    join_nonempty,
    json_raw,
    package_asset,
    take_cves,
    text,
    versions_line,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "snyk"
CONTAINERS = ("json",)


def _is_project(doc: object) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("vulnerabilities"), list)
        and ("packageManager" in doc or "dependencyCount" in doc or "projectName" in doc)
    )


def sniff(doc: object) -> bool:
    """A project object (``vulnerabilities`` with ``packageManager`` / ``dependencyCount`` / ``projectName``)
    or a non-empty list of them."""
    if isinstance(doc, list):
        return bool(doc) and all(_is_project(p) for p in doc)
    return _is_project(doc)


def parse(doc: dict[str, Any] | list[Any], source: str) -> ParseResult:
    """Parse a Snyk test report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Snyk Open Source")
    projects = [(p, f"[{n}]") for n, p in enumerate(doc)] if isinstance(doc, list) else [(doc, "")]
    for project, prefix in projects:
        project = expect_dict(project, source, prefix or "$", "a project")
        name = text(project.get("projectName")) or text(project.get("displayTargetFile")) or "unknown"
        target = text(project.get("displayTargetFile")) or text(project.get("targetFile"))
        result.scope_assets.add(name)
        vulns = expect_list(
            project.get("vulnerabilities"), source, f"{prefix}.vulnerabilities".lstrip("."), "the vulnerabilities"
        )
        for i, vuln in enumerate(vulns):
            place = f"{prefix}.vulnerabilities[{i}]".lstrip(".")
            record = _record(expect_dict(vuln, source, place, "a vulnerability"), name, target, source, place, result)
            result.records.append(record)
            result.scope_assets.add(record.asset_ref)
    return result


def _record(
    vuln: dict[str, Any], project: str, target: str | None, source: str, place: str, result: ParseResult
) -> NormalisedFinding:
    vid, package, version = text(vuln.get("id")), text(vuln.get("packageName")), text(vuln.get("version"))
    path = [str(step) for step in vuln.get("from") or [] if step]
    names = [step.rsplit("@", 1)[0] if "@" in step[1:] else step for step in path]
    identifiers = vuln.get("identifiers") if isinstance(vuln.get("identifiers"), dict) else {}
    raw_severity = text(vuln.get("severityWithCritical")) or text(vuln.get("severity")) or ""
    references = [r.get("url") for r in vuln.get("references") or [] if isinstance(r, dict)]
    location = " ".join(p for p in (target, " > ".join(path) if path else None) if p)
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, project, target, vid, package, *names),
        title=text(vuln.get("title")) or vid or "(untitled)",
        asset_ref=package_asset(project, package, version),
        tool="Snyk Open Source",
        severity=band(raw_severity, source, place),
        raw_severity=raw_severity,
        kind="finding" if vuln.get("type") == "license" else "vulnerability",
        rule_ref=vid,
        location=location or None,
        cves=take_cves(result, identifiers.get("CVE")),
        cwes=cwes(identifiers.get("CWE")),
        cvss_vector=text(vuln.get("CVSSv3")),
        cvss_score=as_float(vuln.get("cvssScore")),
        description=join_nonempty(
            [
                text(vuln.get("description")),
                versions_line(version, vuln.get("fixedIn")),
            ]
        ),
        references=tuple(dict.fromkeys(u for u in references if isinstance(u, str) and "://" in u)),
        raw=json_raw(vuln),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
