"""npm audit JSON, npm 7 and later (``npm audit --json``, ``auditReportVersion`` 2).

One record per key of ``vulnerabilities`` — one per affected package. A package affected only through
another (``via`` holds package names, not advisories) is a record too: it is what ``npm audit fix``
changes. The advisory objects in ``via[]`` give the title, CWEs, CVSS and URLs.

Severity: the package's ``severity``: critical / high / moderate (→ medium) / low / info.

Asset: npm audit names no project, so the asset is ``unknown pkg:<name>`` (the owners map matches it
by glob, ``--scope`` limits a rescan). Location: the package's first ``nodes[]`` path
(``node_modules/…``). CVEs: none (npm advisories are GHSA URLs; a CVE named in a title is not read).
Scan instant: none (use ``--scanned-at``).

CVSS: the highest-scored advisory in ``via[]`` (``cvss.vectorString``, ``cvss.score``).

Fingerprint: ``npm-audit``, package name, first node path, the advisory URLs (else the names in ``via``).
Excluded: ranges, ``fixAvailable``, ``effects``, severity, metadata counts.
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
    join_nonempty,
    json_raw,
    package_asset,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "npm-audit"
CONTAINERS = ("json",)


def sniff(doc: object) -> bool:
    """A JSON object with ``auditReportVersion`` ≥ 2 and a ``vulnerabilities`` object."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("vulnerabilities"), dict)
        and isinstance(doc.get("auditReportVersion"), int)
        and doc["auditReportVersion"] >= 2
    )


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse an npm audit report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="npm audit")
    result.scope_assets.add(UNKNOWN_ASSET)
    for key, entry in doc["vulnerabilities"].items():
        place = f"vulnerabilities.{key}"
        record = _record(key, expect_dict(entry, source, place, "a vulnerable package"), source, place)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    return result


def _record(key: str, entry: dict[str, Any], source: str, place: str) -> NormalisedFinding:
    name = text(entry.get("name")) or key
    via = entry.get("via") or []
    advisories = sorted(
        (v for v in via if isinstance(v, dict)), key=lambda a: -(as_float((a.get("cvss") or {}).get("score")) or 0)
    )
    through = [str(v) for v in via if isinstance(v, str)]
    top = advisories[0] if advisories else {}
    cvss = top.get("cvss") if isinstance(top.get("cvss"), dict) else {}
    nodes = [n for n in entry.get("nodes") or [] if isinstance(n, str)]
    urls = [a.get("url") for a in advisories if isinstance(a.get("url"), str)]
    raw_severity = text(entry.get("severity")) or ""
    title = text(top.get("title")) or (f"{name} is vulnerable through {', '.join(through)}" if through else name)
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, name, nodes[0] if nodes else None, *(sorted(urls) or sorted(through))),
        title=title,
        asset_ref=package_asset(UNKNOWN_ASSET, name),
        tool="npm audit",
        severity=band(raw_severity, source, place),
        raw_severity=raw_severity,
        kind="vulnerability",
        rule_ref=urls[0].rsplit("/", 1)[-1] if urls else None,
        location=nodes[0] if nodes else None,
        cwes=cwes([a.get("cwe") for a in advisories]),
        cvss_vector=text(cvss.get("vectorString")) if cvss.get("score") else None,
        cvss_score=as_float(cvss.get("score")) or None,
        description=join_nonempty(
            [*(text(a.get("title")) for a in advisories), f"Vulnerable range: {text(entry.get('range')) or '?'}"]
        ),
        references=tuple(dict.fromkeys(u for u in urls if "://" in u)),
        raw=json_raw(entry),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
