"""Amazon Inspector (v2) findings: ``aws inspector2 list-findings`` output (``{"findings": [...]}``).

One record per finding whose ``status`` is not ``CLOSED`` (a closed finding is counted in ``skipped``;
a later export marks it absent); ``SUPPRESSED`` findings are kept with ``suppressed=True``. Kinds:
``PACKAGE_VULNERABILITY`` → vulnerability, ``CODE_VULNERABILITY`` → code, ``NETWORK_REACHABILITY`` →
misconfiguration.

Severity: ``severity`` (CRITICAL / HIGH / MEDIUM / LOW / INFORMATIONAL); ``UNTRIAGED`` → the band of
``inspectorScore``, else info (``raw_severity`` keeps UNTRIAGED).

Asset: the first resource — an ECR image as ``<repositoryName>@<imageHash>``, an EC2 instance or Lambda
function by its ``id`` — with ``pkg:<name>@<version>`` of the first vulnerable package for a package
vulnerability. Location: the package's ``filePath`` / the code's ``filePath`` and start line / the open
port range. Scan instant: the latest ``lastObservedAt``.

CVEs: ``packageVulnerabilityDetails.vulnerabilityId`` and ``relatedVulnerabilities``; CWEs:
``codeVulnerabilityDetails.cwes``; CVSS: ``inspectorScoreDetails.adjustedCvss`` (``scoringVector``,
``score``), else the first ``packageVulnerabilityDetails.cvss[]``.

Fingerprint: ``inspector2``, ``findingArn`` (Inspector's own id for the finding, stable until it closes).
Excluded: times, status, scores, EPSS, descriptions.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    as_float,
    band,
    cwes,
    expect_dict,
    expect_list,
    json_raw,
    latest,
    package_asset,
    take_cves,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "aws-inspector2"
CONTAINERS = ("json",)

KINDS = {
    "PACKAGE_VULNERABILITY": "vulnerability",
    "CODE_VULNERABILITY": "code",
    "NETWORK_REACHABILITY": "misconfiguration",
}
SEVERITY = {"untriaged": "info"}


def sniff(doc: object) -> bool:
    """``{"findings": [...]}`` whose entries carry ``findingArn``, or an empty ``findings`` list alone."""
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        return False
    items = doc["findings"]
    if not items:
        return set(doc) <= {"findings", "nextToken"}
    return all(isinstance(f, dict) and "findingArn" in f for f in items)


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse Inspector findings; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Amazon Inspector")
    seen: list[Any] = []
    for i, finding in enumerate(expect_list(doc.get("findings"), source, "findings", "the findings")):
        place = f"findings[{i}]"
        finding = expect_dict(finding, source, place, "a finding")
        seen.append(finding.get("lastObservedAt"))
        resources = [r for r in finding.get("resources") or [] if isinstance(r, dict)]
        resource = _resource_name(resources[0]) if resources else UNKNOWN_ASSET
        result.scope_assets.add(resource)
        if str(finding.get("status", "")).upper() == "CLOSED":
            result.skipped["closed finding (status CLOSED)"] += 1
            continue
        record = _record(finding, resource, source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest(seen)
    return result


def _resource_name(resource: dict[str, Any]) -> str:
    details = resource.get("details") if isinstance(resource.get("details"), dict) else {}
    image = details.get("awsEcrContainerImage") if isinstance(details.get("awsEcrContainerImage"), dict) else None
    if image and text(image.get("repositoryName")):
        digest = text(image.get("imageHash"))
        return f"{text(image.get('repositoryName'))}@{digest}" if digest else text(image.get("repositoryName")) or ""
    return text(resource.get("id")) or UNKNOWN_ASSET


def _record(finding: dict[str, Any], resource: str, source: str, place: str, result: ParseResult) -> NormalisedFinding:
    kind = KINDS.get(str(finding.get("type", "")).upper(), "finding")
    details = (
        finding.get("packageVulnerabilityDetails")
        if isinstance(finding.get("packageVulnerabilityDetails"), dict)
        else {}
    )
    code = finding.get("codeVulnerabilityDetails") if isinstance(finding.get("codeVulnerabilityDetails"), dict) else {}
    packages = [p for p in details.get("vulnerablePackages") or [] if isinstance(p, dict)]
    package = packages[0] if packages else {}
    adjusted = (
        ((finding.get("inspectorScoreDetails") or {}).get("adjustedCvss"))
        if isinstance(finding.get("inspectorScoreDetails"), dict)
        else None
    )
    cvss = (
        adjusted
        if isinstance(adjusted, dict)
        else next((c for c in details.get("cvss") or [] if isinstance(c, dict)), {})
    )
    score = as_float(cvss.get("score", cvss.get("baseScore")))
    raw_severity = text(finding.get("severity")) or "UNTRIAGED"
    if raw_severity.upper() == "UNTRIAGED":
        severity = band_for_score(as_float(finding.get("inspectorScore"))) or "info"
    else:
        severity = band(raw_severity, source, f"{place}.severity", SEVERITY)
    vid = text(details.get("vulnerabilityId"))
    file_path = (code.get("filePath") or {}) if isinstance(code.get("filePath"), dict) else {}
    where = text(package.get("filePath")) or (
        f"{text(file_path.get('filePath'))}:{file_path.get('startLine')}" if file_path.get("filePath") else None
    )
    urls = [
        details.get("sourceUrl"),
        *(details.get("referenceUrls") or []),
        ((finding.get("remediation") or {}).get("recommendation") or {}).get("Url"),
    ]
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, text(finding.get("findingArn"))),
        title=text(finding.get("title")) or vid or "(untitled)",
        asset_ref=package_asset(resource, package.get("name"), package.get("version")) if package else resource,
        tool="Amazon Inspector",
        severity=severity,
        raw_severity=raw_severity,
        kind=kind,
        rule_ref=vid or text(code.get("detectorId")) or text(finding.get("type")),
        location=where,
        cves=take_cves(
            result,
            [
                v
                for v in [vid, *(details.get("relatedVulnerabilities") or [])]
                if isinstance(v, str) and v.upper().startswith("CVE")
            ],
        ),
        cwes=cwes(code.get("cwes")),
        cvss_vector=text(cvss.get("scoringVector")),
        cvss_score=score,
        description=text(finding.get("description")),
        references=tuple(dict.fromkeys(u for u in urls if isinstance(u, str) and "://" in u)),
        suppressed=str(finding.get("status", "")).upper() == "SUPPRESSED",
        raw=json_raw(finding),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
