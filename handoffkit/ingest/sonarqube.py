"""SonarQube JSON: the sonar-report tool's JSON (``projectName``, ``rules``, ``issues``, ``hotspotKeys``),
Web API ``/api/issues/search`` pages (``issues``, ``components``, ``paging``) and ``/api/hotspots/search``
pages (``hotspots``).

One record per ``issues[]`` entry (every type: vulnerabilities, bugs, code smells, and the security
hotspots sonar-report lists among its issues) and per ``hotspots[]`` entry. An issue or hotspot already
fixed (``status`` CLOSED, or RESOLVED / REVIEWED with resolution FIXED) is counted in ``skipped``; one
marked FALSE-POSITIVE, WONTFIX, ACCEPTED or SAFE is kept with ``suppressed=True``. A search page holds only
part of a project's issues: ``total`` / ``paging.total`` beyond the page's count adds a warning.

Severity: issues — ``severity`` BLOCKER → critical, CRITICAL → high, MAJOR → medium, MINOR → low, INFO →
info (SonarQube 10: without ``severity``, the highest ``impacts[].severity``); hotspots —
``vulnerabilityProbability`` HIGH / MEDIUM / LOW.

Asset: the project (``project``, else sonar-report ``sonarComponent`` / ``projectName``). Location: the
component path (the ``project:`` prefix removed) and ``line``. Scan instant: sonar-report's ``date``; the
API pages carry none (use ``--scanned-at``).

CWEs: ``cwe-N`` tags, CWE links in the sonar-report rule description, ``Category: CWE-N`` in the message;
CVEs: CVE ids in the message (the dependency-check plugin writes ``Reference: CVE-…``).

Fingerprint: ``sonarqube``, project, rule, component, and SonarQube's issue / hotspot ``key`` (stable
across analyses). Excluded: line, message, dates, severity, status, effort.
"""

from __future__ import annotations

import re
from typing import Any

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    band,
    cwes,
    expect_dict,
    expect_list,
    first_sentence,
    instant,
    join_nonempty,
    json_raw,
    strip_html,
    take_cves,
    text,
)
from handoffkit.record.model import SEVERITY_RANK, NormalisedFinding, ParseResult, fingerprint

FORMAT = "sonarqube"
CONTAINERS = ("json",)

SEVERITY = {"blocker": "critical", "critical": "high", "major": "medium", "minor": "low", "info": "info"}
FIXED_STATUSES = frozenset({"closed"})
FIXED_RESOLUTIONS = frozenset({"fixed", "removed"})
ACCEPTED_RESOLUTIONS = frozenset({"false-positive", "wontfix", "accepted", "safe", "acknowledged"})

_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
_CWE_TEXT = re.compile(r"cwe\.mitre\.org/data/definitions/(\d+)|\bCWE-(\d+)", re.IGNORECASE)


def sniff(doc: object) -> bool:
    """An ``issues`` array with ``rule`` objects and sonar-report's ``sonarComponent`` / ``projectName`` or the
    API's ``paging`` / ``components``; or a ``hotspots`` array with ``paging``."""
    if not isinstance(doc, dict):
        return False
    if isinstance(doc.get("hotspots"), list) and "paging" in doc:
        return True
    issues = doc.get("issues")
    if not isinstance(issues, list) or not all(isinstance(i, dict) and "rule" in i for i in issues):
        return False
    return any(k in doc for k in ("sonarComponent", "projectName", "paging", "components", "effortTotal"))


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse a SonarQube export; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="SonarQube")
    project = text(doc.get("sonarComponent")) or text(doc.get("projectName"))
    rules = doc.get("rules") if isinstance(doc.get("rules"), dict) else {}
    key = "hotspots" if isinstance(doc.get("hotspots"), list) else "issues"
    items = expect_list(doc.get(key), source, key, f"the {key}")
    for component in doc.get("components") or []:
        if isinstance(component, dict) and component.get("qualifier") == "TRK" and text(component.get("key")):
            result.scope_assets.add(text(component.get("key")) or UNKNOWN_ASSET)
    if project:
        result.scope_assets.add(project)
    for i, item in enumerate(items):
        place = f"{key}[{i}]"
        item = expect_dict(item, source, place, f"an entry of {key}")
        status, resolution = (text(item.get("status")) or "").lower(), (text(item.get("resolution")) or "").lower()
        if status in FIXED_STATUSES or resolution in FIXED_RESOLUTIONS:
            result.skipped["fixed in SonarQube"] += 1
            continue
        record = _record(
            item, key == "hotspots", project, rules, resolution in ACCEPTED_RESOLUTIONS, source, place, result
        )
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    paging = doc.get("paging") if isinstance(doc.get("paging"), dict) else {}
    totals = [t for t in (doc.get("total"), paging.get("total")) if isinstance(t, int) and not isinstance(t, bool)]
    total = max(totals, default=0)
    if total > len(items):
        result.warnings.append(f"a page of {len(items)} of {total} {key}: fetch the other pages to have them all")
    result.scanned_at = instant(doc.get("date")) if "sonarComponent" in doc or "projectName" in doc else None
    return result


def _severity(item: dict[str, Any], hotspot: bool, source: str, place: str) -> tuple[str, str]:
    if hotspot:
        raw = text(item.get("vulnerabilityProbability")) or ""
        return band(raw, source, f"{place}.vulnerabilityProbability"), raw
    raw = text(item.get("severity"))
    if raw:
        return band(raw, source, f"{place}.severity", SEVERITY), raw
    impacts = [text(i.get("severity")) for i in item.get("impacts") or [] if isinstance(i, dict)]
    bands = [band(i, source, f"{place}.impacts", {"blocker": "critical", "info": "info"}) for i in impacts if i]
    return (max(bands, key=SEVERITY_RANK.__getitem__), ", ".join(filter(None, impacts))) if bands else ("info", "")


def _record(
    item: dict[str, Any],
    hotspot: bool,
    project: str | None,
    rules: dict[str, Any],
    accepted: bool,
    source: str,
    place: str,
    result: ParseResult,
) -> NormalisedFinding:
    rule_key = text(item.get("rule")) or text(item.get("ruleKey"))
    rule = rules.get(rule_key) if isinstance(rules.get(rule_key), dict) else {}
    owner = text(item.get("project")) or project or UNKNOWN_ASSET
    component = text(item.get("component")) or ""
    path = component.split(":", 1)[1] if ":" in component and component.startswith(owner + ":") else component
    line = (
        item.get("line") or (item.get("textRange") or {}).get("startLine")
        if isinstance(item.get("textRange") or {}, dict)
        else item.get("line")
    )
    message = text(item.get("message"))
    severity, raw_severity = _severity(item, hotspot, source, place)
    tags = [t for t in item.get("tags") or [] if isinstance(t, str) and t.lower().startswith("cwe-")]
    described = [
        m.group(1) or m.group(2) for m in _CWE_TEXT.finditer(" ".join(filter(None, [rule.get("htmlDesc"), message])))
    ]
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, owner, rule_key, path, text(item.get("key"))),
        title=text(rule.get("name"))
        or text(item.get("description"))
        or first_sentence(message)
        or rule_key
        or "(untitled)",
        asset_ref=owner,
        tool="SonarQube",
        severity=severity,
        raw_severity=raw_severity,
        kind="code",
        rule_ref=rule_key,
        location=f"{path}:{line}" if path and line else path or None,
        cves=take_cves(result, sorted({c.upper() for c in _CVE.findall(message or "")})),
        cwes=cwes(tags, [d for d in described if d]),
        description=join_nonempty([message, strip_html(rule.get("htmlDesc")) if rule.get("htmlDesc") else None]),
        suppressed=accepted,
        raw=json_raw(item),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
