"""ServiceNow exports → ticket snapshots.

Accepted layouts (``format`` names):

- ``servicenow-json`` — a Table API body, ``{"result": [record, ...]}`` (or ``{"result": record}`` for
  a single GET, or the JSONv2 processor's ``{"records": [...]}``). A value is either plain (a string, or
  a ``{"link", "value"}`` reference) or, with ``sysparm_display_value=all``, an object
  ``{"display_value", "value", "link"}``; the display value is shown, the raw value used for codes.
- ``servicenow-csv`` — a list view's Export → CSV, whose headers are the field names (``number``,
  ``short_description``, ``state``…; compared case-insensitively). Required columns: ``number``, ``state``.

Mappings: ``number`` → key, ``short_description`` → title, ``state`` → status, ``priority``,
``assigned_to`` → assignee (the raw sys_id when the export carries no display value), ``description``,
``close_code`` → resolution, every custom ``u_*`` field → ``fields`` under its field name (e.g.
``fields["u_finding_id"]``), ``sys_created_on``/``sys_updated_on`` → created/updated: the raw value
(UTC in the Table API) when the export has one, since display values are in the exporting user's time
zone (a CSV holds only those). No labels and no URL: neither export carries them.

Status: a bare numeric state is shown by its incident-table name (:data:`STATE_NAMES`). Status category
from the state name: New, Open → todo; In Progress, Work in Progress, On Hold, Pending → in_progress;
Resolved, Closed (and any ``Closed …``), Canceled/Cancelled → done. Otherwise from the incident state
code: 1 → todo; 2, 3 → in_progress; 6, 7, 8 → done. Otherwise ``active=false`` → done, else todo.
Other tables number their states differently (``sc_task`` 3 is Closed Complete), so export them with
display values. Priority: shown as ServiceNow labels it, a bare code becomes its label ("1" →
"1 - Critical", "2 - High", "3 - Moderate", "4 - Low", "5 - Planning").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from handoffkit.errors import InputError, located
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import TicketSnapshot

SYSTEM = "servicenow"

STATE_NAMES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
"""The incident table's state codes."""

CATEGORY_BY_STATE = {
    "new": "todo",
    "open": "todo",
    "in progress": "in_progress",
    "work in progress": "in_progress",
    "on hold": "in_progress",
    "pending": "in_progress",
    "resolved": "done",
    "closed": "done",
    "canceled": "done",
    "cancelled": "done",
}

PRIORITY_LABELS = {
    "1": "1 - Critical",
    "2": "2 - High",
    "3": "3 - Moderate",
    "4": "4 - Low",
    "5": "5 - Planning",
}

REQUIRED = ("number", "state")

NOT_SERVICENOW = (
    'expected a ServiceNow export: a Table API response {"result": [...]} or a list '
    "CSV export with `number` and `state` columns"
)

Record = dict[str, tuple[str | None, str | None]]
"""A record as field name → (display value, raw value); plain exports give the same string twice."""


def parse_document(doc: Any, source: str) -> tuple[str, list[TicketSnapshot], Counter[str]]:
    """Parse a decoded ServiceNow export (a :class:`CsvTable` or a JSON value) into snapshots.

    Returns ``(format, tickets, skipped)``; these exports hold nothing to skip.

    Raises:
        InputError: not one of the layouts in the module docstring, or a record lacks its number or state.
    """
    if isinstance(doc, CsvTable):
        return "servicenow-csv", parse_csv(doc, source), Counter()
    if isinstance(doc, dict) and ("result" in doc or "records" in doc):
        return "servicenow-json", parse_json(doc, source), Counter()
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        message = doc["error"].get("message") or "no message"
        raise InputError(
            located(
                source,
                "$.error",
                f"this is a ServiceNow error response ({message}), not an export; re-run the request that produced it",
            )
        )
    raise InputError(located(source, None, NOT_SERVICENOW))


def parse_json(doc: dict[str, Any], source: str) -> list[TicketSnapshot]:
    """Snapshots for every record of a Table API (or JSONv2) response."""
    name = "result" if "result" in doc else "records"
    records = doc[name]
    if isinstance(records, dict):  # GET /table/<t>/<sys_id> returns one record, not a list
        return [_snapshot(_json_record(records, source, f"$.{name}"), source, f"$.{name}")]
    if not isinstance(records, list):
        raise InputError(located(source, f"$.{name}", "expected a list of records"))
    return [
        _snapshot(_json_record(r, source, f"$.{name}[{i}]"), source, f"$.{name}[{i}]") for i, r in enumerate(records)
    ]


def parse_csv(table: CsvTable, source: str) -> list[TicketSnapshot]:
    """One snapshot per data row of a list CSV export."""
    columns = {header.strip().casefold(): header for header in table.headers}
    for name in REQUIRED:
        if name not in columns:
            raise InputError(located(source, "line 1", f"no `{name}` column; {NOT_SERVICENOW}"))
    tickets = []
    for row, line in zip(table.rows, table.lines, strict=True):
        record: Record = {}
        for name, header in columns.items():
            cell = _text(row[header] if isinstance(row[header], str) else ", ".join(row[header]))
            record[name] = (cell, cell)
        tickets.append(_snapshot(record, source, f"line {line}"))
    return tickets


def _json_record(raw: Any, source: str, ref: str) -> Record:
    if not isinstance(raw, dict):
        raise InputError(located(source, ref, "expected a record object"))
    return {name: _json_value(value) for name, value in raw.items()}


def _json_value(value: Any) -> tuple[str | None, str | None]:
    """(display, raw) from a plain value, a reference or a display_value=all object."""
    if isinstance(value, dict):
        display, raw = _text(value.get("display_value")), _text(value.get("value"))
        return display or raw, raw or display
    return _text(value), _text(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _snapshot(record: Record, source: str, ref: str) -> TicketSnapshot:
    display = {name: shown for name, (shown, _) in record.items()}
    raw = {name: value for name, (_, value) in record.items()}
    number, (state_shown, state_code) = display.get("number"), record.get("state", (None, None))
    if not number or not state_shown:
        missing = "number" if not number else "state"
        raise InputError(located(source, ref, f"no `{missing}`; expected every exported record to have one"))
    status = STATE_NAMES.get(state_shown, state_shown)
    priority = display.get("priority")
    return TicketSnapshot(
        system=SYSTEM,
        key=number,
        title=display.get("short_description") or "",
        status=status,
        status_category=state_category(status, state_code, display.get("active")),
        priority=PRIORITY_LABELS.get(priority or "", priority),
        assignee=display.get("assigned_to"),
        description=display.get("description"),
        fields={name: shown for name, shown in display.items() if name.startswith("u_") and shown},
        created_at=raw.get("sys_created_on"),
        updated_at=raw.get("sys_updated_on"),
        resolution=display.get("close_code"),
        source_ref=ref,
    )


def state_category(status: str, code: str | None = None, active: str | None = None) -> str:
    """todo / in_progress / done from a state name, else its incident code, else the active flag."""
    name = status.casefold()
    if name in CATEGORY_BY_STATE:
        return CATEGORY_BY_STATE[name]
    if name.startswith("closed"):  # Closed Complete / Incomplete / Skipped (catalog tasks)
        return "done"
    if code in STATE_NAMES:
        return CATEGORY_BY_STATE[STATE_NAMES[code].casefold()]
    return "done" if (active or "").casefold() == "false" else "todo"
