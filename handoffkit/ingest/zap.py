"""OWASP ZAP reports: XML 2.x (``OWASPZAPReport/site/alerts/alertitem/instances/instance``), the
legacy 1.4 XML layout (``alertitem`` elements carrying their own ``uri``/``param``, with no
``instances``, directly under the root or under a site) and the traditional JSON report
(``site[].alerts[].instances[]``).

One record per alert instance (URI + method + parameter); a legacy alertitem is one record.
``raw`` is the alertitem reduced to that one instance, so each record's evidence is whole.

Severity: ``riskcode`` 3 → high, 2 → medium, 1 → low, 0 → info (ZAP has no critical);
``raw_severity`` keeps ``riskdesc`` ("Medium (High)": risk and confidence).

Asset: the origin (``scheme://host[:port]``) of the instance URI, else of the site name. Rule:
``alertRef`` (plugin id plus variant) else ``pluginid``. CWE from ``cweid`` (0 / -1 mean none);
``wascid`` stays in the raw evidence. Location: ``METHOD uri [param]``.

Fingerprint: ``zap``, origin, rule, method, URI (without fragment), parameter. Excluded: attack,
evidence, otherinfo (payloads and response snippets vary per run), ``generated``, counts, risk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    band,
    cwes,
    expect_dict,
    expect_list,
    join_nonempty,
    json_raw,
    latest,
    strip_html,
    text,
    url_origin,
    urls_in,
    xml_raw,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "zap"
CONTAINERS = ("json", "xml")

RISK = {"3": "high", "2": "medium", "1": "low", "0": "info"}

_Item = tuple[dict[str, Any], dict[str, Any], str, str, bytes, str]
"""(alert fields, instance fields, site origin, place, raw bytes, raw media type)."""


def sniff(doc: object) -> bool:
    """XML root ``OWASPZAPReport``, or a JSON object with a ``site`` and ZAP's ``@version``."""
    if isinstance(doc, Element):
        return doc.tag == "OWASPZAPReport"
    return isinstance(doc, dict) and "site" in doc and ("@version" in doc or "@programName" in doc)


def parse(doc: Element | dict[str, Any], source: str) -> ParseResult:
    """Parse a ZAP report; see the module docstring for the mapping."""
    version = text(doc.get("version") if isinstance(doc, Element) else doc.get("@version"))
    result = ParseResult(format=FORMAT, tool="OWASP ZAP", tool_version=version)
    items = _xml_items(doc, result) if isinstance(doc, Element) else _json_items(doc, source, result)
    for alert, instance, site, place, raw, media in items:
        record = _record(alert, instance, site, version, source, place, raw, media)
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    result.scanned_at = latest([doc.get("generated") if isinstance(doc, Element) else doc.get("@generated")])
    return result


def _site_origin(name: Any, host: Any, port: Any, ssl: Any) -> str:
    origin = url_origin(text(name))
    if origin:
        return origin
    if text(host):
        scheme = "https" if str(ssl).lower() == "true" else "http"
        return url_origin(f"{scheme}://{host}:{text(port) or (443 if scheme == 'https' else 80)}") or str(host)
    return UNKNOWN_ASSET


def _xml_items(root: Element, result: ParseResult) -> Iterator[_Item]:
    for a, item in enumerate(root.findall("alertitem"), 1):  # 1.4: alertitems straight under the root
        alert = _fields(item)
        yield alert, alert, UNKNOWN_ASSET, f"alertitem[{a}]", xml_raw(item), XML_MEDIA_TYPE
    for s, site in enumerate(root.findall("site"), 1):
        origin = _site_origin(site.get("name"), site.get("host"), site.get("port"), site.get("ssl"))
        result.scope_assets.add(origin)
        for a, item in enumerate(site.iterfind("alerts/alertitem"), 1):
            place = f"site[{s}]/alerts/alertitem[{a}]"
            alert = _fields(item)
            instances = item.find("instances")
            if instances is None:  # legacy layout: the alertitem is its own instance
                yield alert, alert, origin, place, xml_raw(item), XML_MEDIA_TYPE
                continue
            for i, instance in enumerate(instances.findall("instance"), 1):
                raw = _one_instance_xml(item, instance)
                yield alert, _fields(instance), origin, f"{place}/instances/instance[{i}]", raw, XML_MEDIA_TYPE


def _fields(elem: Element) -> dict[str, Any]:
    return {child.tag: child.text for child in elem if child.tag != "instances"}


def _one_instance_xml(item: Element, instance: Element) -> bytes:
    """The alertitem with only this instance (elements are shared, not copied)."""
    reduced = Element(item.tag, item.attrib)
    reduced.extend(child for child in item if child.tag != "instances")
    SubElement(reduced, "instances").append(instance)
    return xml_raw(reduced)


def _json_items(doc: dict[str, Any], source: str, result: ParseResult) -> Iterator[_Item]:
    sites = doc.get("site")
    for s, site in enumerate(expect_list([sites] if isinstance(sites, dict) else sites, source, "site", "sites")):
        site = expect_dict(site, source, f"site[{s}]", "a site")
        origin = _site_origin(site.get("@name"), site.get("@host"), site.get("@port"), site.get("@ssl"))
        result.scope_assets.add(origin)
        for a, alert in enumerate(expect_list(site.get("alerts"), source, f"site[{s}].alerts", "alerts")):
            alert = expect_dict(alert, source, f"site[{s}].alerts[{a}]", "an alert")
            shared = {k: v for k, v in alert.items() if k != "instances"}
            place = f"site[{s}].alerts[{a}]"
            for i, instance in enumerate(
                expect_list(alert.get("instances"), source, f"{place}.instances", "instances")
            ):
                instance = expect_dict(instance, source, f"{place}.instances[{i}]", "an instance")
                raw = json_raw({**shared, "instances": [instance]})
                yield shared, instance, origin, f"{place}.instances[{i}]", raw, JSON_MEDIA_TYPE


def _record(
    alert: dict[str, Any],
    instance: dict[str, Any],
    site: str,
    version: str | None,
    source: str,
    place: str,
    raw: bytes,
    media: str,
) -> NormalisedFinding:
    uri = text(instance.get("uri")) or ""
    method = (text(instance.get("method")) or "").upper()
    param = text(instance.get("param"))
    origin = url_origin(uri) or site
    rule = text(alert.get("alertRef")) or text(alert.get("pluginid"))
    riskcode = text(alert.get("riskcode")) or ""
    location = " ".join(p for p in (method, uri, f"[{param}]" if param else None) if p)
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, origin, rule, method, uri.split("#", 1)[0], param),
        title=text(alert.get("name")) or text(alert.get("alert")) or f"ZAP alert {rule}",
        asset_ref=origin,
        tool="OWASP ZAP",
        tool_version=version,
        severity=band(riskcode, source, place, RISK),
        raw_severity=text(alert.get("riskdesc")) or riskcode,
        kind="web",
        rule_ref=rule,
        location=location or None,
        cwes=cwes(text(alert.get("cweid"))),
        description=join_nonempty([strip_html(alert.get("desc")), strip_html(alert.get("solution"))]),
        references=urls_in(alert.get("reference")),
        raw=raw,
        raw_media_type=media,
        source_ref=place,
    )
