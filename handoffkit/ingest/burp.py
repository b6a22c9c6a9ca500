"""Burp Suite XML issue exports (``<issues burpVersion=…>`` → ``<issue>``).

One record per ``issue``. ``raw`` is the whole ``<issue>`` element, so the base64 request and
response (``requestresponse``) travel in the stored evidence. Burp exports carry an internal DTD
of element declarations only; :mod:`handoffkit.ingest.detect` accepts exactly that (``DOCTYPE``),
never entities or external references.

Severity: High → high, Medium → medium, Low → low, Information → info (Burp has no critical);
``raw_severity`` keeps the word and the confidence ("High, Firm").

Asset: the origin of ``host`` (``https://app.example:8443``). Rule: the issue ``type`` (Burp's
numeric issue-type id). Location: ``location`` (path plus the parameter Burp names), else
``path``. CWE from ``vulnerabilityClassifications``; references are the links in ``references``.
Burp has no CVE field.

Fingerprint: ``burp``, origin, issue type, location (or path). Excluded: ``serialNumber`` (new
every scan), ``exportTime``, issue detail text, request/response, severity, confidence.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    band,
    children_text,
    cwes,
    first,
    join_nonempty,
    latest,
    strip_html,
    url_origin,
    urls_in,
    xml_raw,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "burp"
CONTAINERS = ("xml",)
DOCTYPE = "issues"
"""The DOCTYPE name whose internal, declarations-only DTD a Burp export always carries."""


def sniff(doc: object) -> bool:
    """The XML root is ``issues`` (with a ``burpVersion`` attribute or ``issue`` children)."""
    return (
        isinstance(doc, Element)
        and doc.tag == "issues"
        and ("burpVersion" in doc.attrib or doc.find("issue") is not None)
    )


def parse(root: Element, source: str) -> ParseResult:
    """Parse a Burp XML export; see the module docstring for the mapping."""
    version = root.get("burpVersion") or None
    result = ParseResult(format=FORMAT, tool="Burp Suite", tool_version=version)
    for i, issue in enumerate(root.findall("issue"), 1):
        record = _record(issue, version, source, f"issue[{i}]")
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest([root.get("exportTime")])
    return result


def _record(issue: Element, version: str | None, source: str, place: str) -> NormalisedFinding:
    fields = children_text(issue)
    host = first(fields, "host")
    asset = url_origin(host) or host or UNKNOWN_ASSET
    issue_type = first(fields, "type")
    where = first(fields, "location", "path")
    severity, confidence = first(fields, "severity") or "", first(fields, "confidence")
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, asset, issue_type, where),
        title=first(fields, "name") or f"Burp issue {issue_type}",
        asset_ref=asset,
        tool="Burp Suite",
        tool_version=version,
        severity=band(severity, source, place),
        raw_severity=f"{severity}, {confidence}" if confidence else severity,
        kind="web",
        rule_ref=issue_type,
        location=where,
        cwes=cwes(first(fields, "vulnerabilityClassifications")),
        description=join_nonempty(
            [
                strip_html(first(fields, "issueDetail")),
                strip_html(first(fields, "issueBackground")),
                strip_html(first(fields, "remediationDetail", "remediationBackground")),
            ]
        ),
        references=urls_in(first(fields, "references")),
        raw=xml_raw(issue),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )
