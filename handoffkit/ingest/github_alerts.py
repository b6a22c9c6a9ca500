"""GitHub Dependabot alerts: the GraphQL response (``data.repository.vulnerabilityAlerts.nodes[]``, or
``data.search.nodes[]`` of repositories each with ``vulnerabilityAlerts``) and the REST list
(``GET /repos/{owner}/{repo}/dependabot/alerts``: objects with ``number``, ``state``, ``dependency``,
``security_advisory``).

One record per alert node / REST alert. An alert whose state is ``FIXED`` / ``fixed`` or
``AUTO_DISMISSED`` is not a record (counted in ``skipped``; a rescan marks the finding absent); a
``DISMISSED`` alert is kept with ``suppressed=True``.

Severity: ``securityVulnerability.severity`` / ``security_advisory.severity``: CRITICAL / HIGH /
MODERATE (→ medium) / LOW.

Asset: ``<repository> pkg:<package>`` — the repository's ``nameWithOwner`` (else ``name``; REST: the
owner/repo of the alert's ``html_url``). Location: the manifest (``vulnerableManifestPath`` /
``dependency.manifest_path``). Scan instant: none (alerts are a state, not a scan; use
``--scanned-at``).

CVEs: advisory identifiers of type CVE (REST ``cve_id``); CWEs: ``cwes``; CVSS: the advisory's
``cvss.vectorString`` / ``vector_string`` and ``score``.

Fingerprint: ``github``, repository, manifest path, package name, the advisory's GHSA id (else its first
identifier), and the alert's own id (GraphQL node ``id`` / REST ``number``: one alert per manifest and
package stays one finding however the advisory changes). Excluded: descriptions, severity, dates, state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
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
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "github-dependabot"
CONTAINERS = ("json",)

GONE = frozenset({"fixed", "auto_dismissed"})
DISMISSED = "dismissed"

_Alert = tuple[dict[str, Any], str, str]
"""(alert, repository, place)."""


def _graphql_data(doc: object) -> dict[str, Any] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        return None
    data = doc["data"]
    repo, search = data.get("repository"), data.get("search")
    if isinstance(repo, dict) and "vulnerabilityAlerts" in repo:
        return data
    if isinstance(search, dict) and isinstance(search.get("nodes"), list):
        return data if all(isinstance(n, dict) and "vulnerabilityAlerts" in n for n in search["nodes"]) else None
    return None


def _is_rest_alert(item: object) -> bool:
    return isinstance(item, dict) and "security_advisory" in item and "dependency" in item and "number" in item


def sniff(doc: object) -> bool:
    """A GraphQL ``data`` with repositories' ``vulnerabilityAlerts``, or a non-empty list of REST alerts."""
    if isinstance(doc, list):
        return bool(doc) and all(_is_rest_alert(a) for a in doc)
    return _graphql_data(doc) is not None


def parse(doc: dict[str, Any] | list[Any], source: str) -> ParseResult:
    """Parse Dependabot alerts; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="GitHub Dependabot")
    alerts = _rest_alerts(doc) if isinstance(doc, list) else _graphql_alerts(doc, source, result)
    for alert, repository, place in alerts:
        alert = expect_dict(alert, source, place, "an alert")
        result.scope_assets.add(repository)
        state = (text(alert.get("state")) or "").lower()
        if state in GONE:
            result.skipped[f"alert no longer open ({state})"] += 1
            continue
        fields = _rest_fields(alert) if isinstance(doc, list) else _graphql_fields(alert)
        record = _record(fields, alert, repository, state == DISMISSED, source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    return result


def _repository_name(repo: dict[str, Any]) -> str:
    return text(repo.get("nameWithOwner")) or text(repo.get("name")) or text(repo.get("url")) or UNKNOWN_ASSET


def _graphql_alerts(doc: dict[str, Any], source: str, result: ParseResult) -> Iterator[_Alert]:
    data = _graphql_data(doc) or {}
    if isinstance(data.get("repository"), dict):
        repos = [(data["repository"], "data.repository")]
    else:
        nodes = data["search"]["nodes"]
        repos = [
            (expect_dict(r, source, f"data.search.nodes[{n}]", "a repository"), f"data.search.nodes[{n}]")
            for n, r in enumerate(nodes)
        ]
    for repo, prefix in repos:
        name = _repository_name(repo)
        result.scope_assets.add(name)
        connection = expect_dict(
            repo.get("vulnerabilityAlerts") or {}, source, f"{prefix}.vulnerabilityAlerts", "the alerts"
        )
        for i, alert in enumerate(
            expect_list(connection.get("nodes"), source, f"{prefix}.vulnerabilityAlerts.nodes", "the alerts")
        ):
            yield alert, name, f"{prefix}.vulnerabilityAlerts.nodes[{i}]"


def _rest_alerts(doc: list[Any]) -> Iterator[_Alert]:
    for i, alert in enumerate(doc):
        parts = [p for p in urlsplit(text(alert.get("html_url")) or "").path.split("/") if p]
        yield alert, "/".join(parts[:2]) if len(parts) >= 2 else UNKNOWN_ASSET, f"[{i}]"


def _graphql_fields(alert: dict[str, Any]) -> dict[str, Any]:
    vuln = alert.get("securityVulnerability") if isinstance(alert.get("securityVulnerability"), dict) else {}
    advisory = vuln.get("advisory") if isinstance(vuln.get("advisory"), dict) else {}
    identifiers = [i for i in advisory.get("identifiers") or [] if isinstance(i, dict)]
    cvss = advisory.get("cvss") if isinstance(advisory.get("cvss"), dict) else {}
    cwe_nodes = (advisory.get("cwes") or {}).get("nodes") if isinstance(advisory.get("cwes"), dict) else None
    return {
        "id": text(alert.get("id")) or text(alert.get("number")),
        "severity": text(vuln.get("severity")) or text(advisory.get("severity")),
        "package": text((vuln.get("package") or {}).get("name")) if isinstance(vuln.get("package"), dict) else None,
        "version": text(alert.get("vulnerableRequirements")),
        "manifest": text(alert.get("vulnerableManifestPath")),
        "ghsa": text(advisory.get("ghsaId"))
        or next((text(i.get("value")) for i in identifiers if str(i.get("type")).upper() == "GHSA"), None)
        or (text(identifiers[0].get("value")) if identifiers else None),
        "cves": [i.get("value") for i in identifiers if str(i.get("type")).upper() == "CVE"],
        "cwes": [c.get("cweId") for c in cwe_nodes or [] if isinstance(c, dict)],
        "vector": text(cvss.get("vectorString")),
        "score": as_float(cvss.get("score")),
        "title": text(advisory.get("summary")),
        "description": text(advisory.get("description")),
        "references": [r.get("url") for r in advisory.get("references") or [] if isinstance(r, dict)],
    }


def _rest_fields(alert: dict[str, Any]) -> dict[str, Any]:
    advisory = alert.get("security_advisory") if isinstance(alert.get("security_advisory"), dict) else {}
    dependency = alert.get("dependency") if isinstance(alert.get("dependency"), dict) else {}
    package = dependency.get("package") if isinstance(dependency.get("package"), dict) else {}
    cvss = advisory.get("cvss") if isinstance(advisory.get("cvss"), dict) else {}
    identifiers = [i for i in advisory.get("identifiers") or [] if isinstance(i, dict)]
    return {
        "id": text(alert.get("number")),
        "severity": text(advisory.get("severity")),
        "package": text(package.get("name")),
        "version": None,
        "manifest": text(dependency.get("manifest_path")),
        "ghsa": text(advisory.get("ghsa_id")),
        "cves": [advisory.get("cve_id"), *(i.get("value") for i in identifiers if str(i.get("type")).upper() == "CVE")],
        "cwes": [c.get("cwe_id") for c in advisory.get("cwes") or [] if isinstance(c, dict)],
        "vector": text(cvss.get("vector_string")),
        "score": as_float(cvss.get("score")),
        "title": text(advisory.get("summary")),
        "description": text(advisory.get("description")),
        "references": [
            alert.get("html_url"),
            *(r.get("url") for r in advisory.get("references") or [] if isinstance(r, dict)),
        ],
    }


def _record(
    f: dict[str, Any],
    alert: dict[str, Any],
    repository: str,
    dismissed: bool,
    source: str,
    place: str,
    result: ParseResult,
) -> NormalisedFinding:
    raw_severity = f["severity"] or ""
    score = f["score"] if f["score"] is not None else cvss_base(f["vector"])
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, repository, f["manifest"], f["package"], f["ghsa"], f["id"]),
        title=f["title"] or f"{f['ghsa']} in {f['package']}",
        asset_ref=package_asset(repository, f["package"], f["version"]),
        tool="GitHub Dependabot",
        severity=band(raw_severity, source, place),
        raw_severity=raw_severity,
        kind="vulnerability",
        rule_ref=f["ghsa"],
        location=f["manifest"],
        cves=take_cves(result, [c for c in f["cves"] if c]),
        cwes=cwes([c for c in f["cwes"] if c]),
        cvss_vector=f["vector"],
        cvss_score=score,
        description=join_nonempty([f["description"]]),
        references=tuple(dict.fromkeys(u for u in f["references"] if isinstance(u, str) and "://" in u)),
        suppressed=dismissed,
        raw=json_raw(alert),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
