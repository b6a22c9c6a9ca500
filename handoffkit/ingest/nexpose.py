"""Rapid7 Nexpose / InsightVM XML export (``NexposeReport`` version 1.0 and 2.0).

One record per vulnerable test result: a ``<test>`` under ``nodes/node/tests`` (a host-level check) or
``nodes/node/endpoints/endpoint/services/service/tests`` (a check on one service) whose ``status``
starts with ``vulnerable`` (``vulnerable-exploited``, ``vulnerable-version``, ``vulnerable-potential``).
Other statuses (``not-vulnerable``, ``skipped-version``, ``error`` …) say the check ran and found
nothing: they are counted in ``skipped`` and, being absent, let a rescan mark the finding gone.

The vulnerability's details come from ``VulnerabilityDefinitions/vulnerability`` whose ``id`` equals the
test's ``id`` (case-insensitive): title, severity, CVSS, CVEs (``references/reference[@source=CVE]``),
description, solution, URL references.

Severity: Rapid7's 1-10 ``severity`` through the CVSS bands (9-10 critical, 7-8 high, 4-6 medium, 1-3
low, 0 info); ``raw_severity`` keeps the number and Rapid7's word (1-3 Moderate, 4-7 Severe, 8-10
Critical).

Asset: the node's first ``names/name`` (else its ``address``), plus ``:port`` for a service-level test.
Every node is in scope. Location: ``port/protocol (service)`` and the test ``key`` (the path, file or
account the check found). Scan instant: the latest ``scans/scan@endTime`` (Nexpose writes
``20210228T225429678``, read as UTC).

CVSS: ``cvssV3Vector`` / ``cvssV3Score`` when the definition has them, else ``cvssVector`` (v2, as written,
parentheses removed) / ``cvssScore``.

Fingerprint: ``nexpose``, host (lower-case), port (0 for a host-level test), protocol, test id, test key.
Excluded: the test's proof paragraphs, ``vulnerable-since``, scan ids, severity, risk scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    as_float,
    host_asset,
    join_nonempty,
    take_cves,
    text,
    xml_raw,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "nexpose"
CONTAINERS = ("xml",)

VULNERABLE = "vulnerable"
"""Prefix of the test statuses that are findings."""

_Test = tuple[Element, str, str | None, str | None, str | None, str]
"""(test, host, port, protocol, service, place)."""


def sniff(doc: object) -> bool:
    """XML root ``NexposeReport`` with ``nodes``."""
    return isinstance(doc, Element) and doc.tag == "NexposeReport" and doc.find("nodes") is not None


def parse(root: Element, source: str) -> ParseResult:
    """Parse a Nexpose XML export; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Rapid7 Nexpose", tool_version=text(root.get("version")))
    definitions = {(v.get("id") or "").lower(): v for v in root.iterfind("VulnerabilityDefinitions/vulnerability")}
    for test, host, port, protocol, service, place in _tests(root, result):
        status = (test.get("status") or "").lower()
        if not status.startswith(VULNERABLE):
            result.skipped[f"test not vulnerable ({status or 'no status'})"] += 1
            continue
        definition = definitions.get((test.get("id") or "").lower())
        record = _record(test, definition, host, port, protocol, service, place, result)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = max(
        filter(None, map(_instant, (s.get("endTime") for s in root.iterfind("scans/scan")))), default=None
    )
    return result


def _instant(value: str | None) -> datetime | None:
    """``20210228T225429678`` (Nexpose's compact form, no zone) as UTC."""
    raw = text(value)
    try:
        return datetime.strptime(raw[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC) if raw else None
    except ValueError:
        return None


def _tests(root: Element, result: ParseResult) -> Iterator[_Test]:
    for n, node in enumerate(root.iterfind("nodes/node"), 1):
        host = text(node.findtext("names/name")) or text(node.get("address")) or UNKNOWN_ASSET
        result.scope_assets.add(host_asset(host))
        for t, test in enumerate(node.iterfind("tests/test"), 1):
            yield test, host, None, None, None, f"nodes/node[{n}]/tests/test[{t}]"
        for e, endpoint in enumerate(node.iterfind("endpoints/endpoint"), 1):
            port, protocol = text(endpoint.get("port")), text(endpoint.get("protocol"))
            for s, service in enumerate(endpoint.iterfind("services/service"), 1):
                for t, test in enumerate(service.iterfind("tests/test"), 1):
                    place = f"nodes/node[{n}]/endpoints/endpoint[{e}]/services/service[{s}]/tests/test[{t}]"
                    yield test, host, port, protocol, text(service.get("name")), place


def _severity(number: str | None) -> tuple[str, str]:
    score = as_float(number)
    if score is None:
        return "info", number or ""
    word = "Critical" if score >= 8 else "Severe" if score >= 4 else "Moderate"
    return band_for_score(score) or "info", f"{number} ({word})"


def _paragraphs(elem: Element | None) -> str | None:
    """The text of Nexpose's nested ``Paragraph`` / ``UnorderedList`` markup, whitespace collapsed per line."""
    if elem is None:
        return None
    lines = (" ".join(chunk.split()) for chunk in elem.itertext())
    return text("\n".join(line for line in lines if line))


def _record(
    test: Element,
    definition: Element | None,
    host: str,
    port: str | None,
    protocol: str | None,
    service: str | None,
    place: str,
    result: ParseResult,
) -> NormalisedFinding:
    vid, key = text(test.get("id")), text(test.get("key"))
    found = definition if definition is not None else Element("vulnerability")
    severity, raw_severity = _severity(text(found.get("severity")))
    v3_vector, v3_score = text(found.get("cvssV3Vector")), as_float(found.get("cvssV3Score"))
    has_v3 = v3_vector is not None or v3_score is not None
    v2_vector = (text(found.get("cvssVector")) or "").strip("()") or None
    references = found.findall("references/reference")
    where = f"{port}/{(protocol or '').lower()}" + (f" ({service})" if service else "") if port else None
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, host.lower(), port or "0", (protocol or "").lower(), vid, key),
        title=text(found.get("title")) or f"Nexpose check {vid}",
        asset_ref=host_asset(host, port),
        tool="Rapid7 Nexpose",
        tool_version=result.tool_version,
        severity=severity,
        raw_severity=raw_severity,
        kind="host",
        rule_ref=vid,
        location=" ".join(p for p in (where, key) if p) or None,
        cves=take_cves(result, [r.text for r in references if (r.get("source") or "").upper() == "CVE"]),
        cvss_vector=v3_vector if has_v3 else v2_vector,
        cvss_score=v3_score if has_v3 else as_float(found.get("cvssScore")),
        description=join_nonempty([_paragraphs(found.find("description")), _paragraphs(found.find("solution"))]),
        references=tuple(
            dict.fromkeys(
                t for r in references if (r.get("source") or "").upper() == "URL" and "://" in (t := text(r.text) or "")
            )
        ),
        raw=xml_raw(test),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )
