"""DefectDojo's finding ↔ Jira issue mappings → link records.

Accepted layout: the ``GET /api/v2/jira_finding_mappings/`` body, either one page
``{"count", "next", "previous", "results": [row, ...]}`` or a bare list of rows. A row is ``{"id",
"jira_id", "jira_key", "finding", "engagement", "finding_group", "jira_creation", "jira_change", …}``.

Each row with a ``finding`` becomes a :class:`JiraLink` ``(dojo_finding_id, jira_key)``; the DefectDojo
finding id is kept as text so it compares equal to ``NormalisedFinding.external_id``. Rows without a
finding map an engagement (an epic) or a finding group to Jira: they link no single finding, so they are
skipped and counted (``skipped["engagement"]``, ``skipped["finding_group"]``, else ``skipped["no_finding"]``).
A page whose ``next`` is set is only part of the export; :attr:`JiraLinkExport.next_page` says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from handoffkit.errors import InputError, located

NOT_MAPPINGS = (
    'expected a DefectDojo /api/v2/jira_finding_mappings/ export: {"results": [...]} or a list of mapping rows'
)


@dataclass(frozen=True, slots=True)
class JiraLink:
    """One DefectDojo finding linked to one Jira issue."""

    dojo_finding_id: str
    jira_key: str
    source_ref: str = ""


@dataclass(slots=True)
class JiraLinkExport:
    """What one mappings export held."""

    links: list[JiraLink] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    next_page: str | None = None
    """The API's ``next`` URL: set when the file is one page of a longer list."""


def parse_mappings(doc: Any, source: str) -> JiraLinkExport:
    """Link records from a decoded mappings export (one page or a bare list).

    Raises:
        InputError: not a mappings export, or a row lacks its ``jira_key`` or has a malformed ``finding``.
    """
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        rows, base, next_page = doc["results"], "$.results", doc.get("next")
    elif isinstance(doc, list):
        rows, base, next_page = doc, "$", None
    else:
        raise InputError(located(source, None, NOT_MAPPINGS))
    export = JiraLinkExport(next_page=next_page if isinstance(next_page, str) else None)
    for i, row in enumerate(rows):
        ref = f"{base}[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("jira_key"), str) or not row["jira_key"]:
            raise InputError(located(source, ref, "expected a mapping row with a `jira_key`"))
        finding = row.get("finding")
        if finding is None:
            export.skipped[_why_no_finding(row)] += 1
        elif isinstance(finding, int | str) and not isinstance(finding, bool) and str(finding).isdigit():
            export.links.append(JiraLink(str(finding), row["jira_key"], ref))
        else:
            raise InputError(located(source, f"{ref}.finding", f"finding {finding!r}; expected a finding id"))
    return export


def _why_no_finding(row: dict[str, Any]) -> str:
    for kind in ("engagement", "finding_group"):
        if row.get(kind) is not None:
            return kind
    return "no_finding"
