"""OSV-Scanner JSON (``osv-scanner --format json``): ``results[].packages[].vulnerabilities[]``.

One record per vulnerability of every package of every scanned source (lock file, SBOM, directory).
OSV-Scanner lists an advisory and its aliases as one group (``groups[]``); the records follow the
``vulnerabilities[]`` entries, as the tool writes them.

Severity: the best CVSS base score among the vulnerability's ``severity[]`` vectors (scored with the
``cvss`` package) through the CVSS bands; else the group's ``max_severity``; else the advisory
database's own word (``database_specific.severity``: CRITICAL / HIGH / MODERATE / LOW); a vulnerability
with none of them is medium (a known advisory on an installed package, waiting for calibration;
``raw_severity`` is empty).

Asset: ``<source path> pkg:<name>@<version>`` (the lock file is what was scanned). CVEs: the id and
``aliases``; CWEs: ``database_specific.cwe_ids``. References: ``references[].url``.

Fingerprint: ``osv-scanner``, source path, ecosystem, package name, vulnerability id. Excluded: version,
modified/published dates, details, severity.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    as_float,
    band,
    cvss_base,
    cwes,
    expect_dict,
    expect_list,
    join_nonempty,
    json_raw,
    package_asset,
    take_cves,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "osv-scanner"
CONTAINERS = ("json",)

NO_SEVERITY = "medium"
"""Band of a vulnerability that carries no score and no severity word (see the module docstring)."""


def sniff(doc: object) -> bool:
    """A JSON object with a ``results`` array whose entries have ``source`` and ``packages``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        return False
    return all(isinstance(r, dict) and "packages" in r and "source" in r for r in doc["results"]) and (
        bool(doc["results"]) or "experimental_config" in doc
    )


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse an OSV-Scanner report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="OSV-Scanner")
    for r, res in enumerate(expect_list(doc.get("results"), source, "results", "the results")):
        res = expect_dict(res, source, f"results[{r}]", "a result")
        src = res.get("source") if isinstance(res.get("source"), dict) else {}
        path = text(src.get("path")) or "unknown"
        result.scope_assets.add(path)
        for p, pkg in enumerate(expect_list(res.get("packages"), source, f"results[{r}].packages", "the packages")):
            pkg = expect_dict(pkg, source, f"results[{r}].packages[{p}]", "a package")
            groups = [g for g in pkg.get("groups") or [] if isinstance(g, dict)]
            vulns = expect_list(
                pkg.get("vulnerabilities"), source, f"results[{r}].packages[{p}].vulnerabilities", "the vulnerabilities"
            )
            for v, vuln in enumerate(vulns):
                place = f"results[{r}].packages[{p}].vulnerabilities[{v}]"
                vuln = expect_dict(vuln, source, place, "a vulnerability")
                record = _record(vuln, pkg, groups, path, source, place, result)
                result.records.append(record)
                result.scope_assets.add(record.asset_ref)
    return result


def _severity(
    vuln: dict[str, Any], groups: list[dict[str, Any]], source: str, place: str
) -> tuple[str, str, str | None, float | None]:
    """(band, raw severity, best vector, its score)."""
    scored = [
        (cvss_base(s.get("score")), text(s.get("score"))) for s in vuln.get("severity") or [] if isinstance(s, dict)
    ]
    scored = [(score, vector) for score, vector in scored if score is not None]
    if scored:
        score, vector = max(scored, key=lambda sv: sv[0])
        return band_for_score(score) or "info", f"CVSS {score:g}", vector, score
    vid = vuln.get("id")
    group_score = next((as_float(g.get("max_severity")) for g in groups if vid in (g.get("ids") or [])), None)
    if group_score is not None:
        return band_for_score(group_score) or "info", f"max_severity {group_score:g}", None, group_score
    word = (
        text((vuln.get("database_specific") or {}).get("severity"))
        if isinstance(vuln.get("database_specific"), dict)
        else None
    )
    if word:
        return band(word, source, place), word, None, None
    return NO_SEVERITY, "", None, None


def _record(
    vuln: dict[str, Any],
    pkg: dict[str, Any],
    groups: list[dict[str, Any]],
    path: str,
    source: str,
    place: str,
    result: ParseResult,
) -> NormalisedFinding:
    package = pkg.get("package") if isinstance(pkg.get("package"), dict) else {}
    name, version, ecosystem = text(package.get("name")), text(package.get("version")), text(package.get("ecosystem"))
    vid = text(vuln.get("id"))
    severity, raw_severity, vector, score = _severity(vuln, groups, source, place)
    specific = vuln.get("database_specific") if isinstance(vuln.get("database_specific"), dict) else {}
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, path, ecosystem, name, vid),
        title=text(vuln.get("summary")) or f"{vid} in {name}",
        asset_ref=package_asset(path, name, version),
        tool="OSV-Scanner",
        severity=severity,
        raw_severity=raw_severity,
        kind="vulnerability",
        rule_ref=vid,
        location=path,
        cves=take_cves(
            result,
            [a for a in [vid, *(vuln.get("aliases") or [])] if isinstance(a, str) and a.upper().startswith("CVE")],
        ),
        cwes=cwes(specific.get("cwe_ids")),
        cvss_vector=vector,
        cvss_score=score,
        description=join_nonempty([text(vuln.get("details")), f"Installed: {version or '?'} ({ecosystem or '?'})"]),
        references=tuple(
            dict.fromkeys(
                u
                for r in vuln.get("references") or []
                if isinstance(r, dict) and isinstance(u := r.get("url"), str) and "://" in u
            )
        ),
        raw=json_raw(vuln),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
