"""pip-audit JSON (``pip-audit -f json``): the current layout ``{"dependencies": [...], "fixes": [...]}``
and the older top-level list of dependencies.

One record per ``vulns[]`` entry of every dependency. A dependency pip-audit could not audit
(``skip_reason``) is counted in ``skipped``.

Severity: pip-audit reports none, so every record is medium (a known advisory on an installed package,
for calibration; ``raw_severity`` is empty).

Asset: pip-audit names no project: ``unknown pkg:<name>@<version>`` (the owners map matches it by glob,
``--scope`` limits a rescan). CVEs: the id and ``aliases`` (PYSEC and GHSA ids stay rule refs). Scan
instant: none (use ``--scanned-at``).

Fingerprint: ``pip-audit``, package name (lower-case), vulnerability id. Excluded: version, fix versions,
description.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
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

FORMAT = "pip-audit"
CONTAINERS = ("json",)

NO_SEVERITY = "medium"
"""pip-audit carries no severity (see the module docstring)."""


def _is_dependency(item: object) -> bool:
    return isinstance(item, dict) and "name" in item and ("vulns" in item or "skip_reason" in item)


def sniff(doc: object) -> bool:
    """``{"dependencies": [...]}`` or a non-empty list of ``{"name", "version", "vulns"}`` objects."""
    if isinstance(doc, dict):
        deps = doc.get("dependencies")
        return isinstance(deps, list) and set(doc) <= {"dependencies", "fixes"} and all(map(_is_dependency, deps))
    return isinstance(doc, list) and bool(doc) and all(map(_is_dependency, doc))


def parse(doc: dict[str, Any] | list[Any], source: str) -> ParseResult:
    """Parse a pip-audit report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="pip-audit")
    result.scope_assets.add(UNKNOWN_ASSET)
    deps, prefix = (doc["dependencies"], "dependencies") if isinstance(doc, dict) else (doc, "")
    for d, dep in enumerate(deps):
        dep = expect_dict(dep, source, f"{prefix}[{d}]", "a dependency")
        if text(dep.get("skip_reason")):
            result.skipped["dependency not audited (skip_reason)"] += 1
            continue
        name, version = text(dep.get("name")), text(dep.get("version"))
        for v, vuln in enumerate(expect_list(dep.get("vulns"), source, f"{prefix}[{d}].vulns", "the vulnerabilities")):
            place = f"{prefix}[{d}].vulns[{v}]"
            vuln = expect_dict(vuln, source, place, "a vulnerability")
            vid = text(vuln.get("id"))
            aliases = [a for a in vuln.get("aliases") or [] if isinstance(a, str)]
            record = NormalisedFinding(
                fingerprint=fingerprint(FORMAT, (name or "").lower(), vid),
                title=f"{vid} in {name}",
                asset_ref=package_asset(UNKNOWN_ASSET, name, version),
                tool="pip-audit",
                severity=NO_SEVERITY,
                raw_severity="",
                kind="vulnerability",
                rule_ref=vid,
                cves=take_cves(result, [a for a in [vid, *aliases] if a and a.upper().startswith("CVE")]),
                description=join_nonempty(
                    [text(vuln.get("description")), versions_line(version, vuln.get("fix_versions"))]
                ),
                raw=json_raw({"name": name, "version": version, "vuln": vuln}),
                raw_media_type=JSON_MEDIA_TYPE,
                source_ref=place,
            )
            result.records.append(record)
            result.scope_assets.add(record.asset_ref)
    return result
