"""Anchore Grype JSON (``grype -o json``): ``matches[]`` with ``source``, ``distro`` and ``descriptor``.

One record per ``matches[]`` entry (a vulnerability matched to one package).

Severity: Critical / High / Medium / Low as bands, Negligible → info; Unknown → the band of the best CVSS
base score the match carries, else info (``raw_severity`` keeps Grype's word).

Asset: ``<source> pkg:<name>@<version>`` — the source is the image (``source.target.userInput``), the
directory or file Grype scanned. Location: the package's first ``locations[].path``. Scan instant:
``descriptor.timestamp`` (Grype 0.40+).

CVSS: the first v3 entry of ``vulnerability.cvss[]`` (``vector``, ``metrics.baseScore``) — Grype 0.7's
``cvssV3`` object — else v2 alike. CVEs: the vulnerability id and ``relatedVulnerabilities[].id`` (a GHSA
match names its CVE there). References: ``dataSource``, ``urls`` / ``links``.

Fingerprint: ``grype``, source, package name, package type, first location path, vulnerability id.
Excluded: installed/fixed version (an upgrade that does not fix the vulnerability is the same finding),
layer ids, match details, severity, descriptor.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    as_float,
    band,
    cvss_base,
    expect_dict,
    expect_list,
    join_nonempty,
    json_raw,
    latest,
    package_asset,
    take_cves,
    text,
    versions_line,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "grype"
CONTAINERS = ("json",)

SEVERITY = {"negligible": "info"}


def sniff(doc: object) -> bool:
    """A JSON object with a ``matches`` array and a ``descriptor`` naming grype (or a ``source``)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("matches"), list):
        return False
    descriptor = doc.get("descriptor")
    return (isinstance(descriptor, dict) and descriptor.get("name") == "grype") or isinstance(doc.get("source"), dict)


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse a Grype report; see the module docstring for the mapping."""
    descriptor = doc.get("descriptor") if isinstance(doc.get("descriptor"), dict) else {}
    result = ParseResult(format=FORMAT, tool="Anchore Grype", tool_version=text(descriptor.get("version")))
    scanned = _source_name(doc.get("source"))
    result.scope_assets.add(scanned)
    for i, match in enumerate(expect_list(doc.get("matches"), source, "matches", "the matches")):
        place = f"matches[{i}]"
        record = _record(expect_dict(match, source, place, "a match"), scanned, source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest([descriptor.get("timestamp")])
    return result


def _source_name(src: Any) -> str:
    if not isinstance(src, dict):
        return "unknown"
    target = src.get("target")
    if isinstance(target, dict):
        return text(target.get("userInput")) or text(target.get("name")) or text(target.get("imageID")) or "unknown"
    return text(target) or "unknown"


def _cvss(vuln: dict[str, Any]) -> tuple[str | None, float | None]:
    """The first v3 (else v2) vector and base score."""
    entries = [c for c in vuln.get("cvss") or [] if isinstance(c, dict)]
    for legacy in ("cvssV3", "cvssV2"):  # Grype 0.7: {"baseScore": …, "vector": …}
        if isinstance(vuln.get(legacy), dict):
            entries.append({"version": legacy[-2:], **vuln[legacy]})
    entries.sort(key=lambda c: not str(c.get("version", "")).lstrip("Vv").startswith("3"))
    for entry in entries:
        vector = text(entry.get("vector"))
        metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {}
        score = as_float(metrics.get("baseScore", entry.get("baseScore")))
        if vector or score is not None:
            return vector, score if score is not None else cvss_base(vector)
    return None, None


def _record(match: dict[str, Any], scanned: str, source: str, place: str, result: ParseResult) -> NormalisedFinding:
    vuln = expect_dict(match.get("vulnerability"), source, f"{place}.vulnerability", "the vulnerability")
    artifact = expect_dict(match.get("artifact"), source, f"{place}.artifact", "the artifact")
    vid, name, version = text(vuln.get("id")), text(artifact.get("name")), text(artifact.get("version"))
    locations = [loc for loc in artifact.get("locations") or [] if isinstance(loc, dict)]
    path = text(locations[0].get("path")) if locations else None
    vector, score = _cvss(vuln)
    raw_severity = text(vuln.get("severity")) or "Unknown"
    if raw_severity.lower() == "unknown":
        severity = band_for_score(score) or "info"
    else:
        severity = band(raw_severity, source, f"{place}.vulnerability.severity", SEVERITY)
    related = [r.get("id") for r in match.get("relatedVulnerabilities") or [] if isinstance(r, dict)]
    fixed = (vuln.get("fix") or {}).get("versions") if isinstance(vuln.get("fix"), dict) else None
    urls = [vuln.get("dataSource"), *(vuln.get("urls") or vuln.get("links") or [])]
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, scanned, name, text(artifact.get("type")), path, vid),
        title=f"{vid} in {name}",
        asset_ref=package_asset(scanned, name, version),
        tool="Anchore Grype",
        tool_version=result.tool_version,
        severity=severity,
        raw_severity=raw_severity,
        kind="vulnerability",
        rule_ref=vid,
        location=path,
        cves=take_cves(result, [v for v in (vid, *related) if isinstance(v, str) and v.upper().startswith("CVE")]),
        cvss_vector=vector,
        cvss_score=score,
        description=join_nonempty(
            [
                text(vuln.get("description")),
                versions_line(version, fixed),
            ]
        ),
        references=tuple(dict.fromkeys(u for u in urls if isinstance(u, str) and "://" in u)),
        raw=json_raw(match),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
