"""Trivy JSON: SchemaVersion 2 (``ArtifactName`` + ``Results[]``), the legacy top-level list of
results, and the Kubernetes cluster report (``ClusterName`` with ``Resources[]`` — or the older
``Vulnerabilities[]`` / ``Misconfigurations[]`` resource lists — each resource holding
``Results``).

One record per ``Vulnerabilities[]`` entry (kind ``vulnerability``), ``Misconfigurations[]``
entry (kind ``misconfiguration``) and ``Secrets[]`` entry (kind ``secret``) of every result;
``parsed_by_kind`` counts them apart. A misconfiguration whose ``Status`` is ``PASS`` (reported
with ``--include-non-failures``) is a passed check, counted in ``skipped``, not a finding.

Severity: CRITICAL, HIGH, MEDIUM, LOW as bands; UNKNOWN → the CVSS v3 score's band when the entry
has one, else info (``raw_severity`` keeps UNKNOWN so a person can calibrate it).

Asset: the artifact — ``ArtifactName`` (image, repository or path), ``Target`` in the legacy
layout, ``cluster/namespace/kind/name`` in a cluster report. Vulnerabilities add the package:
``<artifact> pkg:<name>@<installed version>`` (e.g. ``python:3.9 pkg:openssl@1.1.1``); this is
what a person reads, not the identity (see below). Location: ``Target`` (``:line`` for
misconfigurations and secrets, ``pkg path`` for vulnerabilities in a jar/lockfile).

CVSS: the vendor named by ``SeveritySource`` (else ``nvd``, else the first) — its V3 vector and
score. CWE from ``CweIDs``; CVEs from ``VulnerabilityID`` (GHSA and other ids stay rule refs).

Fingerprint: ``trivy``, artifact, target, then — vulnerability: package name, package path,
vulnerability id; misconfiguration: check id (``ID``, else ``AVDID``) and the cause's resource; secret: rule
id and the (already masked) matched line. Excluded: installed/fixed version (an upgrade that does
not fix the CVE is the same finding), layer digests, line numbers, severity, dates.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    latest,
    take_cves,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "trivy"
CONTAINERS = ("json",)

SECTIONS = (("Vulnerabilities", "vulnerability"), ("Misconfigurations", "misconfiguration"), ("Secrets", "secret"))
"""Result key → record kind."""

_Result = tuple[str, dict[str, Any], str]
"""(artifact, one Results[] entry, its place)."""


def sniff(doc: object) -> bool:
    """SchemaVersion / ArtifactName+Results / ClusterName objects, or a list of ``Target`` results."""
    if isinstance(doc, list):
        return bool(doc) and all(isinstance(r, dict) and "Target" in r for r in doc)
    if not isinstance(doc, dict):
        return False
    return "SchemaVersion" in doc or "ClusterName" in doc or ("ArtifactName" in doc and "Results" in doc)


def parse(doc: dict[str, Any] | list[Any], source: str) -> ParseResult:
    """Parse a Trivy report; see the module docstring for the mapping."""
    version = text((doc.get("Trivy") or {}).get("Version")) if isinstance(doc, dict) else None
    result = ParseResult(format=FORMAT, tool="Trivy", tool_version=version)
    for artifact, res, place in _results(doc, source):
        result.scope_assets.add(artifact)
        target = text(res.get("Target")) or artifact
        for key, kind in SECTIONS:
            for i, item in enumerate(expect_list(res.get(key), source, f"{place}.{key}", key)):
                item_place = f"{place}.{key}[{i}]"
                item = expect_dict(item, source, item_place, f"a {kind}")
                if kind == "misconfiguration" and str(item.get("Status", "FAIL")).upper() == "PASS":
                    result.skipped["passed misconfiguration check"] += 1
                    continue
                record = _record(kind, item, artifact, target, version, source, item_place, result)
                result.records.append(record)
                result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest([doc.get("CreatedAt")]) if isinstance(doc, dict) else None
    return result


def _results(doc: dict[str, Any] | list[Any], source: str) -> Iterator[_Result]:
    if isinstance(doc, list):  # legacy: the target is the only name of the artifact
        for r, res in enumerate(doc):
            res = expect_dict(res, source, f"[{r}]", "a result")
            yield text(res.get("Target")) or "unknown", res, f"[{r}]"
        return
    if "ClusterName" in doc:
        yield from _cluster_results(doc, source)
        return
    for r, res in enumerate(expect_list(doc.get("Results"), source, "Results", "the results")):
        res = expect_dict(res, source, f"Results[{r}]", "a result")
        yield text(doc.get("ArtifactName")) or text(res.get("Target")) or "unknown", res, f"Results[{r}]"


def _cluster_results(doc: dict[str, Any], source: str) -> Iterator[_Result]:
    cluster = text(doc.get("ClusterName")) or "cluster"
    for key in ("Resources", "Vulnerabilities", "Misconfigurations"):
        for n, resource in enumerate(expect_list(doc.get(key), source, key, "resources")):
            resource = expect_dict(resource, source, f"{key}[{n}]", "a resource")
            artifact = "/".join([cluster, *(text(resource.get(k)) or "-" for k in ("Namespace", "Kind", "Name"))])
            results = expect_list(resource.get("Results"), source, f"{key}[{n}].Results", "the results")
            for r, res in enumerate(results):
                place = f"{key}[{n}].Results[{r}]"
                yield artifact, expect_dict(res, source, place, "a result"), place


def _record(
    kind: str,
    item: dict[str, Any],
    artifact: str,
    target: str,
    version: str | None,
    source: str,
    place: str,
    result: ParseResult,
) -> NormalisedFinding:
    if kind == "vulnerability":
        fields = _vulnerability(item, artifact, target, result)
    elif kind == "misconfiguration":
        fields = _misconfiguration(item, artifact, target)
    else:
        fields = _secret(item, artifact, target)
    raw_severity = text(item.get("Severity")) or "UNKNOWN"
    if raw_severity.upper() == "UNKNOWN":
        severity = band_for_score(fields.get("cvss_score")) or "info"
    else:
        severity = band(raw_severity, source, place)
    return NormalisedFinding(
        tool="Trivy",
        tool_version=version,
        kind=kind,
        severity=severity,
        raw_severity=raw_severity,
        raw=json_raw(item),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
        **fields,
    )


def _vulnerability(item: dict[str, Any], artifact: str, target: str, result: ParseResult) -> dict[str, Any]:
    vid, pkg = text(item.get("VulnerabilityID")), text(item.get("PkgName"))
    installed, fixed, pkg_path = (
        text(item.get("InstalledVersion")),
        text(item.get("FixedVersion")),
        text(item.get("PkgPath")),
    )
    cvss = _cvss(item)
    title = text(item.get("Title"))
    return {
        "fingerprint": fingerprint(FORMAT, artifact, target, pkg, pkg_path, vid),
        "title": f"{vid} in {pkg}" + (f": {title}" if title else ""),
        "asset_ref": f"{artifact} pkg:{pkg}@{installed}" if installed else f"{artifact} pkg:{pkg}",
        "rule_ref": vid,
        "location": f"{target} {pkg_path}" if pkg_path else target,
        "cves": take_cves(result, vid) if vid and vid.upper().startswith("CVE") else (),
        "cwes": cwes(item.get("CweIDs")),
        "cvss_vector": text(cvss.get("V3Vector")),
        "cvss_score": as_float(cvss.get("V3Score")),
        "description": join_nonempty(
            [text(item.get("Description")), f"Installed: {installed or '?'}; fixed in: {fixed or 'no fix yet'}"]
        ),
        "references": _references(item),
    }


def _references(item: dict[str, Any]) -> tuple[str, ...]:
    urls = [item.get("PrimaryURL"), *(item.get("References") or [])]
    return tuple(dict.fromkeys(u for u in urls if isinstance(u, str) and u))


def _cvss(item: dict[str, Any]) -> dict[str, Any]:
    vendors = item.get("CVSS") or {}
    if not isinstance(vendors, dict) or not vendors:
        return {}
    chosen = vendors.get(item.get("SeveritySource")) or vendors.get("nvd") or next(iter(vendors.values()))
    return chosen if isinstance(chosen, dict) else {}


def _misconfiguration(item: dict[str, Any], artifact: str, target: str) -> dict[str, Any]:
    check = text(item.get("ID")) or text(item.get("AVDID"))  # ID exists in old and new Trivy alike
    cause = item.get("CauseMetadata") or {}
    line = cause.get("StartLine")
    return {
        "fingerprint": fingerprint(FORMAT, artifact, target, check, text(cause.get("Resource"))),
        "title": text(item.get("Title")) or f"Misconfiguration {check}",
        "asset_ref": artifact,
        "rule_ref": check,
        "location": f"{target}:{line}" if line else target,
        "description": join_nonempty(
            [text(item.get("Message")), text(item.get("Description")), text(item.get("Resolution"))]
        ),
        "references": _references(item),
    }


def _secret(item: dict[str, Any], artifact: str, target: str) -> dict[str, Any]:
    rule, line = text(item.get("RuleID")), item.get("StartLine")
    return {
        "fingerprint": fingerprint(FORMAT, artifact, target, rule, text(item.get("Match"))),
        "title": text(item.get("Title")) or f"Secret {rule}",
        "asset_ref": artifact,
        "rule_ref": rule,
        "location": f"{target}:{line}" if line else target,
        "description": join_nonempty([text(item.get("Category")), text(item.get("Match"))], ": "),
    }
