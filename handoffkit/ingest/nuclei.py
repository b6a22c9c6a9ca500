"""Nuclei results: JSON Lines (``nuclei -jsonl``, older ``-json``: one object per line) and the JSON array
export (``nuclei -je``), in the older (``templateID``, ``matched``) and v3 (``template-id``, ``matched-at``)
key spellings.

One record per result object (a template matched at one place). Nuclei repeats a template that matches at
several URLs of one host; each is a record and its own finding.

Severity: ``info.severity``: critical / high / medium / low / info; unknown → info (``raw_severity``
keeps it).

Asset: the origin of ``matched-at`` when it is a URL, else the origin of ``host``, else ``matched-at`` /
``host`` as a network asset (``host:port``). Location: ``matched-at``. Rule: the template id (with the
matcher name: ``template:matcher``). Scan instant: the latest ``timestamp``.

CVEs, CWEs, CVSS: ``info.classification`` (``cve-id``, ``cwe-id``, ``cvss-metrics``, ``cvss-score``).
References: ``info.reference`` (a list, or a text of URLs).

Fingerprint: ``nuclei``, template id, matcher name, type, ``matched-at``; for a result without a matcher
name, its ``extracted-results`` too (``tls-version`` reports ``tls12`` and ``tls13`` at one place as two
results). Excluded: request, response, ip, timestamps, curl command, and extracted values of results that
have a matcher name.
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
    host_asset,
    join_nonempty,
    json_raw,
    latest,
    take_cves,
    text,
    url_origin,
    urls_in,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "nuclei"
CONTAINERS = ("json",)

SEVERITY = {"unknown": "info"}


def _is_result(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("info"), dict)
        and ("template-id" in item or "templateID" in item)
        and ("matched-at" in item or "matched" in item or "host" in item)
    )


def sniff(doc: object) -> bool:
    """One result object (a one-line JSONL file) or a non-empty list of them: ``template-id`` /
    ``templateID``, an ``info`` object, and ``matched-at`` / ``matched`` / ``host``."""
    if isinstance(doc, list):
        return bool(doc) and all(map(_is_result, doc))
    return _is_result(doc)


def parse(doc: dict[str, Any] | list[Any], source: str) -> ParseResult:
    """Parse Nuclei results; see the module docstring for the mapping."""
    items = doc if isinstance(doc, list) else [doc]
    result = ParseResult(format=FORMAT, tool="Nuclei")
    for i, item in enumerate(items):
        place = f"[{i}]"
        record = _record(expect_dict(item, source, place, "a result"), source, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest(i.get("timestamp") for i in items if isinstance(i, dict))
    return result


def _asset(matched: str | None, host: str | None) -> str:
    """The URL origin of what matched; a ``host:port`` match (network, SSL, DNS templates) as a network
    asset; the scanned ``host`` only when the result names no match."""
    name = matched or host
    if not name:
        return UNKNOWN_ASSET
    origin = url_origin(name)
    if origin:
        return origin
    hostname, _, port = name.rpartition(":")
    return host_asset(hostname, port) if hostname and port.isdigit() else host_asset(name)


def _record(item: dict[str, Any], source: str, place: str, result: ParseResult) -> NormalisedFinding:
    info = expect_dict(item.get("info"), source, f"{place}.info", "the template info")
    template = text(item.get("template-id")) or text(item.get("templateID"))
    matcher = text(item.get("matcher-name")) or text(item.get("matcher_name"))
    matched = text(item.get("matched-at")) or text(item.get("matched"))
    host = text(item.get("host"))
    classification = info.get("classification") if isinstance(info.get("classification"), dict) else {}
    raw_severity = text(info.get("severity")) or "unknown"
    reference = info.get("reference")
    references = (
        [r for r in reference if isinstance(r, str)] if isinstance(reference, list) else list(urls_in(text(reference)))
    )
    # Without a matcher name, the extracted values tell apart the results of one template at one place
    # (tls-version reports tls12 and tls13 as two results).
    extracted = (
        [] if matcher else sorted(map(str, item.get("extracted-results") or item.get("extracted_results") or []))
    )
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, template, matcher, text(item.get("type")), matched or host, *extracted),
        title=text(info.get("name")) or template or "(untitled)",
        asset_ref=_asset(matched, host),
        tool="Nuclei",
        severity=band(raw_severity, source, f"{place}.info.severity", SEVERITY),
        raw_severity=raw_severity,
        kind="web" if text(item.get("type")) == "http" or url_origin(matched) else "host",
        rule_ref=f"{template}:{matcher}" if matcher else template,
        location=matched or host,
        cves=take_cves(result, classification.get("cve-id")),
        cwes=cwes(classification.get("cwe-id")),
        cvss_vector=text(classification.get("cvss-metrics")),
        cvss_score=as_float(classification.get("cvss-score")),
        description=join_nonempty([text(info.get("description")), text(info.get("remediation"))]),
        references=tuple(dict.fromkeys(r.strip() for r in references if "://" in r)),
        raw=json_raw(item),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )
