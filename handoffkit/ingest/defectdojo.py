"""A DefectDojo findings export: the ``/api/v2/findings/`` JSON, either one paginated page
(``{"count", "next", "previous", "results": [...]}``) or a bare list of finding objects.

One record per finding object; the field mapping, severity and asset rules are those of the
Generic Findings Import (:mod:`handoffkit.ingest.generic`) — an export uses the same vocabulary
(``title``, ``severity``, ``cwe``, ``vulnerability_ids[{vulnerability_id}]``, ``component_name``,
``file_path``, ``line``, ``cvssv3``, ``false_p`` …). Its ``endpoints`` are endpoint ids, which
name no host, so the asset falls back to the component or file path. ``external_id`` is the
DefectDojo finding ``id`` (the key its Jira links use).

A page whose ``next`` is set is only part of the export: the result carries a warning saying how
many of ``count`` findings the file holds.

Fingerprint: ``defectdojo``, ``DefectDojo``, then the tool's ``unique_id_from_tool`` when present,
else DefectDojo's deduplication ``hash_code``, else the generic field-based parts. Excluded: the
finding id, test / engagement ids, dates, SLA fields, status flags.
"""

from __future__ import annotations

from typing import Any

from handoffkit.ingest.common import expect_dict, expect_list, json_raw, text
from handoffkit.ingest.generic import finding_record
from handoffkit.record.model import ParseResult

FORMAT = "defectdojo"
CONTAINERS = ("json",)
TOOL = "DefectDojo"

_FINDING_KEYS = frozenset({"id", "title", "severity"})
_DOJO_KEYS = frozenset({"hash_code", "test", "found_by", "numerical_severity", "unique_id_from_tool"})


def sniff(doc: object) -> bool:
    """A paginated page (``count`` + ``next`` + ``results``) or a non-empty list of findings."""
    if isinstance(doc, dict):
        return (
            {"count", "next", "results"} <= doc.keys()
            and isinstance(doc["results"], list)
            and all(_is_finding(f) for f in doc["results"])
        )
    return isinstance(doc, list) and bool(doc) and all(_is_finding(f) for f in doc)


def _is_finding(obj: object) -> bool:
    return isinstance(obj, dict) and obj.keys() >= _FINDING_KEYS and bool(_DOJO_KEYS & obj.keys())


def parse(doc: dict[str, Any] | list[Any], source: str) -> ParseResult:
    """Parse a DefectDojo findings export; see the module docstring for the mapping."""
    paginated = isinstance(doc, dict)
    findings = expect_list(doc["results"] if paginated else doc, source, "results", "the findings")
    result = ParseResult(format=FORMAT, tool=TOOL)
    prefix = "results" if paginated else ""
    for i, finding in enumerate(findings):
        place = f"{prefix}[{i}]"
        finding = expect_dict(finding, source, place, "a finding")
        identity = text(finding.get("unique_id_from_tool")) or text(finding.get("hash_code"))
        record = finding_record(
            finding,
            tool=TOOL,
            version=None,
            source=source,
            place=place,
            result=result,
            raw=json_raw(finding),
            fmt=FORMAT,
            identity=identity,
            external_id=text(finding.get("id")),
        )
        result.records.append(record)
        result.scope_assets.add(record.asset_ref)
    if paginated and doc.get("next"):
        result.warnings.append(
            f"{source}: one page of a paginated export ({len(findings)} of "
            f"{doc.get('count')} findings); fetch the pages from {doc['next']} on too"
        )
    return result
