"""Qualys Web Application Scanning: the ``WAS_SCAN_REPORT`` XML.

One record per ``RESULTS/VULNERABILITY_LIST/VULNERABILITY`` (a QID detected at one URL) and per
``RESULTS/INFORMATION_GATHERED_LIST/INFORMATION_GATHERED`` item (what the scanner learnt about the
application). A detection marked ``IGNORED`` true is kept with ``suppressed=True``. The QID details
(title, severity, CWE, CVSS, description) come from ``GLOSSARY/QID_LIST/QID``.

Severity: a vulnerability's QID ``SEVERITY`` 5 → critical, 4 → high, 3 → medium, 2 → low, 1 → low (as
Qualys VM); information gathered → info.

Asset: the origin of the detection's ``URL``; information gathered belongs to the web application
(``APPENDIX/WEBAPP/URL``). Location: the URL and, when given, the parameter. Every web application of the
appendix is in scope. Scan instant: the latest ``APPENDIX/SCAN_LIST/SCAN/END_DATE`` (Qualys writes
``11 Mar 2020 01:42PM GMT-0400``: the offset is read as written, UTC-4 here, not POSIX-inverted).

Fingerprint: vulnerability — ``qualys-was``, QID, URL, parameter; information gathered — ``qualys-was``,
web application, QID. Excluded: ``UNIQUE_ID``, ``ID``, ``DETECTION_ID`` (new per detection), payloads,
request / response, dates, severity.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from handoffkit.ingest.common import (
    UNKNOWN_ASSET,
    XML_MEDIA_TYPE,
    as_float,
    band,
    cwes,
    instant,
    join_nonempty,
    text,
    url_origin,
    xml_raw,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, fingerprint

FORMAT = "qualys-was"
CONTAINERS = ("xml",)

LEVELS = {"5": "critical", "4": "high", "3": "medium", "2": "low", "1": "low"}


def sniff(doc: object) -> bool:
    """XML root ``WAS_SCAN_REPORT`` with ``RESULTS``."""
    return isinstance(doc, Element) and doc.tag == "WAS_SCAN_REPORT" and doc.find("RESULTS") is not None


def parse(root: Element, source: str) -> ParseResult:
    """Parse a Qualys WAS report; see the module docstring for the mapping."""
    result = ParseResult(format=FORMAT, tool="Qualys WAS")
    glossary = {text(q.findtext("QID")): q for q in root.iterfind("GLOSSARY/QID_LIST/QID")}
    apps = [url_origin(text(w.findtext("URL"))) for w in root.iterfind("APPENDIX/WEBAPP")]
    app = next((a for a in apps if a), UNKNOWN_ASSET)
    result.scope_assets.update(a for a in apps if a)
    for i, vuln in enumerate(root.iterfind("RESULTS/VULNERABILITY_LIST/VULNERABILITY"), 1):
        record = _vulnerability(vuln, glossary, app, source, f"RESULTS/VULNERABILITY_LIST/VULNERABILITY[{i}]")
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    for i, item in enumerate(root.iterfind("RESULTS/INFORMATION_GATHERED_LIST/INFORMATION_GATHERED"), 1):
        record = _gathered(item, glossary, app, f"RESULTS/INFORMATION_GATHERED_LIST/INFORMATION_GATHERED[{i}]")
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    ends = [t for t in (instant(s.findtext("END_DATE")) for s in root.iterfind("APPENDIX/SCAN_LIST/SCAN")) if t]
    result.scanned_at = max(ends, default=None)
    return result


def _details(glossary: dict[str | None, Element], qid: str | None) -> Element:
    return glossary.get(qid, Element("QID"))


def _vulnerability(
    vuln: Element, glossary: dict[str | None, Element], app: str, source: str, place: str
) -> NormalisedFinding:
    qid, url, param = text(vuln.findtext("QID")), text(vuln.findtext("URL")), text(vuln.findtext("PARAM"))
    details = _details(glossary, qid)
    level = text(details.findtext("SEVERITY")) or ""
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, qid, url, param),
        title=text(details.findtext("TITLE")) or f"Qualys WAS QID {qid}",
        asset_ref=url_origin(url) or app,
        tool="Qualys WAS",
        severity=band(level, source, place, LEVELS),
        raw_severity=f"{level} ({text(details.findtext('CATEGORY')) or 'Vulnerability'})",
        kind="web",
        rule_ref=qid,
        location=" ".join(p for p in (url, f"[{param}]" if param else None) if p) or None,
        cwes=cwes(text(details.findtext("CWE"))),
        cvss_score=as_float(details.findtext("CVSS_V3/BASE")) or as_float(details.findtext("CVSS_BASE")),
        description=_description(details),
        suppressed=(text(vuln.findtext("IGNORED")) or "").lower() == "true",
        raw=xml_raw(vuln),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )


def _gathered(item: Element, glossary: dict[str | None, Element], app: str, place: str) -> NormalisedFinding:
    qid = text(item.findtext("QID"))
    details = _details(glossary, qid)
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, app, "information gathered", qid),
        title=text(details.findtext("TITLE")) or f"Qualys WAS QID {qid}",
        asset_ref=app,
        tool="Qualys WAS",
        severity="info",
        raw_severity=f"{text(details.findtext('SEVERITY')) or '-'} (Information Gathered)",
        kind="web",
        rule_ref=qid,
        cwes=cwes(text(details.findtext("CWE"))),
        description=_description(details),
        raw=xml_raw(item),
        raw_media_type=XML_MEDIA_TYPE,
        source_ref=place,
    )


def _description(details: Element) -> str | None:
    return join_nonempty([text(details.findtext(t)) for t in ("DESCRIPTION", "IMPACT", "SOLUTION")])
