"""AWS Security Hub findings in the AWS Security Finding Format (ASFF): ``aws securityhub get-findings``
output (``{"Findings": [...]}``; ``findings`` where an export writes the key in lower case).

One record per finding, except those no longer open: a control result whose ``Compliance.Status`` is
``PASSED`` (a passed check, as Trivy's PASS), a finding whose ``RecordState`` is ``ARCHIVED`` or whose
``Workflow.Status`` is ``RESOLVED`` — each counted in ``skipped``, so a later export marks the finding
absent. ``Workflow.Status`` ``SUPPRESSED`` is kept with ``suppressed=True``.

Severity: ``Severity.Label`` (CRITICAL / HIGH / MEDIUM / LOW / INFORMATIONAL); without a label, the
``Normalized`` 0-100 score divided by ten through the CVSS bands.

Asset: the first resource's ``Id`` (an ARN, ``AWS::::Account:…``); for a package vulnerability,
``<resource> pkg:<name>@<version>`` of the first vulnerable package. Rule: ``GeneratorId`` (the control or
product rule). Location: the resource type and the package's ``FilePath``. Scan instant: the latest
``LastObservedAt`` (else ``UpdatedAt``).

CVEs: ``Vulnerabilities[].Id``; CVSS: the first ``Vulnerabilities[].Cvss[]`` entry (``BaseVector``,
``BaseScore``). References: ``Remediation.Recommendation.Url``, ``SourceUrl``, ``Vulnerabilities[].ReferenceUrls``.

Fingerprint: ``asff``, ``ProductArn``, ``Id`` — Security Hub's own finding identity, stable while the
product updates the finding. Excluded: times, workflow, severity, descriptions.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    as_float,
    band,
    expect_dict,
    expect_list,
    join_nonempty,
    json_raw,
    latest,
    package_asset,
    take_cves,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "asff"
CONTAINERS = ("json",)

_ASFF_KEYS = {"SchemaVersion", "ProductArn", "GeneratorId", "AwsAccountId"}


def _findings_key(doc: object) -> str | None:
    if not isinstance(doc, dict):
        return None
    for key in ("Findings", "findings"):
        items = doc.get(key)
        if isinstance(items, list) and all(isinstance(f, dict) and _ASFF_KEYS & set(f) for f in items):
            return key if items or key == "Findings" else None
    return None


def sniff(doc: object) -> bool:
    """``Findings`` (or ``findings``) whose entries carry ASFF's ``SchemaVersion`` / ``ProductArn`` /
    ``GeneratorId`` / ``AwsAccountId``."""
    return _findings_key(doc) is not None


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse Security Hub findings; see the module docstring for the mapping."""
    key = _findings_key(doc) or "Findings"
    result = ParseResult(format=FORMAT, tool="AWS Security Hub")
    seen: list[Any] = []
    for i, finding in enumerate(expect_list(doc.get(key), source, key, "the findings")):
        place = f"{key}[{i}]"
        finding = expect_dict(finding, source, place, "a finding")
        seen.append(finding.get("LastObservedAt") or finding.get("UpdatedAt"))
        resources = [r for r in finding.get("Resources") or [] if isinstance(r, dict)]
        result.scope_assets.update(text(r.get("Id")) or UNKNOWN_ASSET for r in resources)
        gone = _gone(finding)
        if gone:
            result.skipped[gone] += 1
            continue
        record = _record(finding, resources, source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest(seen)
    return result


def _gone(finding: dict[str, Any]) -> str | None:
    compliance = finding.get("Compliance") if isinstance(finding.get("Compliance"), dict) else {}
    workflow = finding.get("Workflow") if isinstance(finding.get("Workflow"), dict) else {}
    if str(compliance.get("Status", "")).upper() == "PASSED":
        return "passed control check (Compliance.Status PASSED)"
    if str(finding.get("RecordState", "")).upper() == "ARCHIVED":
        return "archived finding (RecordState ARCHIVED)"
    if str(workflow.get("Status", "")).upper() == "RESOLVED":
        return "resolved finding (Workflow.Status RESOLVED)"
    return None


def _record(
    finding: dict[str, Any], resources: list[dict[str, Any]], source: str, place: str, result: ParseResult
) -> NormalisedFinding:
    severity_obj = finding.get("Severity") if isinstance(finding.get("Severity"), dict) else {}
    label = text(severity_obj.get("Label"))
    if label:
        severity, raw_severity = band(label, source, f"{place}.Severity.Label"), label
    else:
        normalized = as_float(severity_obj.get("Normalized"))
        severity = band_for_score(normalized / 10 if normalized is not None else None) or "info"
        raw_severity = f"Normalized {normalized:g}" if normalized is not None else ""
    resource = resources[0] if resources else {}
    vulns = [v for v in finding.get("Vulnerabilities") or [] if isinstance(v, dict)]
    packages = [p for v in vulns for p in v.get("VulnerablePackages") or [] if isinstance(p, dict)]
    package = packages[0] if packages else {}
    cvss = next((c for v in vulns for c in v.get("Cvss") or [] if isinstance(c, dict)), {})
    remediation = (
        (finding.get("Remediation") or {}).get("Recommendation")
        if isinstance(finding.get("Remediation"), dict)
        else None
    )
    urls = [
        (remediation or {}).get("Url") if isinstance(remediation, dict) else None,
        finding.get("SourceUrl"),
        *(u for v in vulns for u in v.get("ReferenceUrls") or []),
        *((v.get("Vendor") or {}).get("Url") for v in vulns if isinstance(v.get("Vendor"), dict)),
    ]
    resource_id = text(resource.get("Id")) or UNKNOWN_ASSET
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, text(finding.get("ProductArn")), text(finding.get("Id"))),
        title=text(finding.get("Title")) or text(finding.get("GeneratorId")) or "(untitled)",
        asset_ref=package_asset(resource_id, package.get("Name"), package.get("Version")) if package else resource_id,
        tool="AWS Security Hub",  # one tool name per file: rescan scope is per tool
        severity=severity,
        raw_severity=raw_severity,
        kind="vulnerability" if vulns else "misconfiguration",
        rule_ref=text(finding.get("GeneratorId")),
        location=" ".join(p for p in (text(resource.get("Type")), text(package.get("FilePath"))) if p) or None,
        cves=take_cves(result, [v.get("Id") for v in vulns if str(v.get("Id", "")).upper().startswith("CVE")]),
        cvss_vector=text(cvss.get("BaseVector")),
        cvss_score=as_float(cvss.get("BaseScore")),
        description=join_nonempty(
            [text(finding.get("Description")), text(remediation.get("Text")) if isinstance(remediation, dict) else None]
        ),
        references=tuple(dict.fromkeys(u for u in urls if isinstance(u, str) and "://" in u)),
        suppressed=str((finding.get("Workflow") or {}).get("Status", "")).upper() == "SUPPRESSED",
        raw=json_raw(finding),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
