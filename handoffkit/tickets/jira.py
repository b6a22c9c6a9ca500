"""Jira exports → ticket snapshots.

Accepted layouts (``format`` names):

- ``jira-csv`` — Issues → Export → CSV (all fields or current fields): UTF-8 with or without BOM, or
  UTF-16. Repeated headers (``Labels``, ``Sprint``, ``Watchers``, ``Comment``, multi-value custom
  fields) arrive merged into lists (:func:`handoffkit.record.inputs.read_csv`). Required columns:
  ``Issue key`` and ``Status``.
- ``jira-rest-search`` — a ``GET /rest/api/2|3/search`` (or ``/search/jql``) body, ``{"issues": [...]}``.
- ``jira-rest-issue`` — a ``GET /rest/api/2|3/issue/{key}`` body, ``{"key", "fields": {...}}``.

Mappings:

- CSV: ``Issue key`` → key, ``Summary`` → title, ``Status``, ``Priority``, ``Assignee``, ``Resolution``
  (``Unresolved`` → none), ``Description``, ``Created``/``Updated`` kept as exported (Jira writes CSV
  dates in the exporting user's locale and format, so they are not re-parsed here), every ``Labels``
  column (a cell is also split on whitespace: Jira labels cannot contain spaces, and some exports put
  all labels in one cell), ``Custom field (X)`` → ``fields["X"]`` and ``Sprint`` → ``fields["Sprint"]``
  (a list when the column repeats). No URL: the CSV does not name the site.
- REST: ``key``, ``fields.summary``, ``fields.status.name``, ``fields.priority.name``,
  ``fields.assignee.displayName`` (Server/Data Center: ``name``), ``fields.labels``,
  ``fields.description`` (v2: text; v3: an Atlassian Document Format tree → its plain text),
  ``created``, ``updated``, ``resolution.name``; url = ``<site>/browse/<key>`` derived from ``self``.
  Non-empty ``customfield_NNNNN`` values → ``fields`` under their display name when a ``names`` map is
  given or the body carries one (``expand=names``), otherwise under their id. Option, user and other
  named objects are reduced to their ``value``/``displayName``/``name``; ADF rich text to plain text.
- Status category: REST ``status.statusCategory.key`` new → todo, indeterminate → in_progress,
  done → done. CSV: the ``Status Category`` column (To Do / In Progress / Done) when the export has it.
  Otherwise from the status name (:func:`category_from_status`): Done, Closed, Resolved, Cancelled,
  Canceled, Won't Do, Won't Fix → done; In Progress, In Review, In Development, In Testing, Code Review
  → in_progress; any other name → todo, unless the issue has a resolution (Jira sets one only when work
  is finished), then done.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from handoffkit.errors import InputError, located
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import TicketSnapshot

SYSTEM = "jira"

CATEGORY_BY_KEY = {"new": "todo", "indeterminate": "in_progress", "done": "done"}
"""Jira's three status-category keys (REST ``statusCategory.key``)."""

CATEGORY_BY_NAME = {"to do": "todo", "in progress": "in_progress", "done": "done"}
"""The same categories by the names the CSV ``Status Category`` column shows."""

DONE_STATUSES = frozenset({"done", "closed", "resolved", "cancelled", "canceled", "won't do", "won't fix"})
IN_PROGRESS_STATUSES = frozenset({"in progress", "in review", "in development", "in testing", "code review"})

REQUIRED_COLUMNS = ("Issue key", "Status")
_CUSTOM_COLUMN = re.compile(r"^Custom field \((?P<name>.+)\)$")
_REST_BASE = re.compile(r"^(?P<site>https?://.+?)/rest/api/")

NOT_JIRA = (
    "expected a Jira export: a CSV export (with an `Issue key` column), a REST search response "
    '{"issues": [...]} or a REST issue body {"key": ..., "fields": {...}}'
)


def parse_document(
    doc: Any,
    source: str,
    names: Mapping[str, str] | None = None,
) -> tuple[str, list[TicketSnapshot], Counter[str]]:
    """Parse a decoded Jira export (a :class:`CsvTable` or a JSON value) into snapshots.

    Returns ``(format, tickets, skipped)``; Jira exports hold nothing to skip.

    Raises:
        InputError: the document is not one of the layouts in the module docstring, or an issue in it
            lacks its key or status.
    """
    if isinstance(doc, CsvTable):
        return "jira-csv", parse_csv(doc, source), Counter()
    if isinstance(doc, dict) and "issues" in doc:
        return "jira-rest-search", parse_search(doc, source, names), Counter()
    if isinstance(doc, dict) and "fields" in doc:
        return "jira-rest-issue", [parse_issue(doc, source, names)], Counter()
    if isinstance(doc, dict) and "errorMessages" in doc:
        raise InputError(
            located(
                source,
                None,
                f"this is a Jira error response ({_jira_errors(doc)}), "
                "not an export; re-run the request that produced it",
            )
        )
    raise InputError(located(source, None, NOT_JIRA))


# ------------------------------------------------------------------------------------------- status


def category_from_status(status: str, resolution: str | None = None) -> str:
    """Guess the status category from a status name, for exports that do not carry one."""
    name = status.strip().casefold()
    if name in DONE_STATUSES:
        return "done"
    if name in IN_PROGRESS_STATUSES:
        return "in_progress"
    return "done" if resolution else "todo"


# ---------------------------------------------------------------------------------------------- CSV


def parse_csv(table: CsvTable, source: str) -> list[TicketSnapshot]:
    """One snapshot per data row of a Jira CSV export."""
    for column in REQUIRED_COLUMNS:
        if column not in table.headers:
            hint = difflib.get_close_matches(column, table.headers, n=1)
            also = f" (found {hint[0]!r}; Jira spells it {column!r})" if hint else ""
            raise InputError(located(source, "line 1", f"no `{column}` column{also}; {NOT_JIRA}"))
    custom = {h: m["name"] for h in table.headers if (m := _CUSTOM_COLUMN.match(h))}
    if "Sprint" in table.headers:
        custom["Sprint"] = "Sprint"
    return [
        _csv_snapshot(row, custom, source, f"line {line}") for row, line in zip(table.rows, table.lines, strict=True)
    ]


def _csv_snapshot(row: dict[str, Any], custom: dict[str, str], source: str, ref: str) -> TicketSnapshot:
    key = _cell(row, "Issue key")
    status = _cell(row, "Status")
    if not key or not status:
        missing = "Issue key" if not key else "Status"
        raise InputError(located(source, ref, f"empty `{missing}`; expected every exported issue to have one"))
    resolution = _cell(row, "Resolution")
    if resolution and resolution.casefold() == "unresolved":
        resolution = None
    listed_category = (_cell(row, "Status Category") or "").casefold()
    category = CATEGORY_BY_NAME.get(listed_category) or category_from_status(status, resolution)
    return TicketSnapshot(
        system=SYSTEM,
        key=key,
        title=_cell(row, "Summary") or "",
        status=status,
        status_category=category,
        priority=_cell(row, "Priority"),
        assignee=_cell(row, "Assignee"),
        labels=tuple(sorted({word for cell in _cells(row.get("Labels")) for word in cell.split()})),
        description=_cell(row, "Description"),
        fields=_csv_custom_fields(row, custom),
        created_at=_cell(row, "Created"),
        updated_at=_cell(row, "Updated"),
        resolution=resolution,
        source_ref=ref,
    )


def _cells(value: str | list[str] | None) -> list[str]:
    """The non-empty cells under one header (a repeated header gives a list)."""
    values = value if isinstance(value, list) else [value or ""]
    return [v.strip() for v in values if v.strip()]


def _cell(row: dict[str, Any], column: str) -> str | None:
    cells = _cells(row.get(column))
    return cells[0] if cells else None


def _csv_custom_fields(row: dict[str, Any], custom: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, name in custom.items():
        cells = _cells(row.get(column))
        if cells:
            fields[name] = cells if isinstance(row[column], list) else cells[0]
    return fields


# --------------------------------------------------------------------------------------------- REST


def parse_search(
    doc: dict[str, Any],
    source: str,
    names: Mapping[str, str] | None = None,
) -> list[TicketSnapshot]:
    """Snapshots for every issue of a REST search response (v2 or v3)."""
    issues = doc.get("issues")
    if not isinstance(issues, list):
        raise InputError(located(source, "$.issues", "expected a list of issues"))
    names = {**_names_map(doc, source, "$"), **(names or {})}
    return [parse_issue(issue, source, names, ref=f"$.issues[{i}]") for i, issue in enumerate(issues)]


def parse_issue(
    doc: Any,
    source: str,
    names: Mapping[str, str] | None = None,
    ref: str = "$",
) -> TicketSnapshot:
    """One snapshot from a REST issue body (v2 or v3)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("key"), str) or not isinstance(doc.get("fields"), dict):
        raise InputError(
            located(
                source,
                ref,
                "expected a Jira issue object with `key` and `fields` "
                "(a search must request the fields, e.g. fields=*all)",
            )
        )
    fields = doc["fields"]
    status = fields.get("status")
    if not isinstance(status, dict) or not isinstance(status.get("name"), str):
        raise InputError(
            located(
                source,
                f"{ref}.fields.status",
                "expected a status object with a `name` (export the issue with its status field)",
            )
        )
    names = {**_names_map(doc, source, ref), **(names or {})}
    resolution = _name_of(fields.get("resolution"))
    return TicketSnapshot(
        system=SYSTEM,
        key=doc["key"],
        title=fields.get("summary") or "",
        status=status["name"],
        status_category=_rest_category(status, fields, resolution),
        priority=_name_of(fields.get("priority")),
        assignee=_name_of(fields.get("assignee")),
        labels=tuple(sorted({label for label in fields.get("labels") or () if isinstance(label, str)})),
        description=_text_of(fields.get("description")),
        fields=_rest_custom_fields(fields, names),
        url=_browse_url(doc),
        created_at=fields.get("created"),
        updated_at=fields.get("updated"),
        resolution=resolution,
        source_ref=ref,
    )


def _rest_category(status: dict[str, Any], fields: dict[str, Any], resolution: str | None) -> str:
    """From the status's own category; the issue-level copy or the status name only when it is missing."""
    for holder in (status, fields):
        category = holder.get("statusCategory")
        if isinstance(category, dict) and category.get("key") in CATEGORY_BY_KEY:
            return CATEGORY_BY_KEY[category["key"]]
    return category_from_status(status["name"], resolution)


def _names_map(doc: dict[str, Any], source: str, ref: str) -> dict[str, str]:
    """The ``expand=names`` map a body may carry (custom field id → display name)."""
    names = doc.get("names") or {}
    if not isinstance(names, dict):
        raise InputError(located(source, f"{ref}.names", "expected an object mapping field ids to names"))
    return names


def _name_of(value: Any) -> str | None:
    """The human name of a Jira object: a user, priority, resolution, option or plain string."""
    if isinstance(value, dict):
        for attr in ("displayName", "name", "value", "emailAddress", "accountId"):
            if isinstance(value.get(attr), str):
                return value[attr]
        return None
    return value if isinstance(value, str) and value else None


def _text_of(description: Any) -> str | None:
    """v2 descriptions are wiki-markup text; v3 ones are ADF trees."""
    if isinstance(description, dict | list):
        return adf_text(description) or None
    if isinstance(description, str):
        return description.strip() or None
    return None


def _plain(value: Any) -> Any:
    """A custom-field value as a reader would see it (option objects reduced to their value)."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        if value.get("type") == "doc":
            return adf_text(value)
        return _name_of(value) or value
    return value


def _rest_custom_fields(fields: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    # Null and empty custom fields are the norm (a site has hundreds); keeping them would only add noise.
    return {
        names.get(field_id, field_id): _plain(value)
        for field_id, value in fields.items()
        if field_id.startswith("customfield_") and value not in (None, "", [], {})
    }


def _browse_url(doc: dict[str, Any]) -> str | None:
    match = _REST_BASE.match(doc.get("self") or "")
    return f"{match['site']}/browse/{doc['key']}" if match else None


def _jira_errors(doc: dict[str, Any]) -> str:
    messages = list(doc.get("errorMessages") or []) + [f"{k}: {v}" for k, v in (doc.get("errors") or {}).items()]
    return "; ".join(map(str, messages)) or "no message"


# ---------------------------------------------------------------------------------------------- ADF

_ADF_BLOCKS = frozenset({"paragraph", "heading", "codeBlock", "rule"})
_ADF_INLINE_ATTR = {
    "mention": "text",
    "emoji": "text",
    "inlineCard": "url",
    "status": "text",
    "date": "timestamp",
}


def adf_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format tree: its text, one line per block, marks dropped."""
    parts: list[str] = []
    _adf_walk(node, parts)
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip()


def _adf_walk(node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for child in node:
            _adf_walk(child, parts)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "text":
        parts.append(str(node.get("text", "")))
    elif kind == "hardBreak":
        parts.append("\n")
    elif kind in _ADF_INLINE_ATTR:
        parts.append(str((node.get("attrs") or {}).get(_ADF_INLINE_ATTR[kind]) or ""))
    else:
        _adf_walk(node.get("content"), parts)
        if kind in _ADF_BLOCKS:
            parts.append("\n")
