"""One entry point for every ticket-system export: read the bytes, detect the layout, parse.

The caller names the system (the CLI's ``--system``); the layout within that system is detected from
the content: JSON when the text starts with ``{`` or ``[`` (after any BOM and whitespace), CSV
otherwise. Each system's module documents the layouts it accepts and how it maps them:
:mod:`~handoffkit.tickets.jira`, :mod:`~handoffkit.tickets.servicenow`,
:mod:`~handoffkit.tickets.github`. A file that is not an export of the named system is refused with
an :class:`~handoffkit.errors.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from handoffkit.errors import InputError, located
from handoffkit.record.inputs import CsvTable, decode_text, load_json, read_csv
from handoffkit.record.model import TicketSnapshot
from handoffkit.tickets import defectdojo, github, jira, servicenow

SYSTEMS = ("jira", "servicenow", "github")


@dataclass(slots=True)
class TicketExport:
    """What one ticket export held."""

    system: str
    format: str
    """The layout read, e.g. ``jira-csv``, ``jira-rest-search``, ``servicenow-json``, ``gh-cli``."""
    tickets: list[TicketSnapshot] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Reason → count of items deliberately not read as tickets (GitHub pull requests)."""


def parse_export(data: bytes, source: str, system: str, *, jira_names: Mapping[str, str] | None = None) -> TicketExport:
    """Parse one export of ``system`` into ticket snapshots.

    Args:
        data: the file's bytes.
        source: the file name, used in error messages.
        system: one of :data:`SYSTEMS`.
        jira_names: Jira custom field id → display name (an ``expand=names`` map), for REST bodies
            that do not carry their own.

    Raises:
        ValueError: ``system`` is not one of :data:`SYSTEMS` (a caller's mistake, not the file's).
        InputError: the file is malformed or not an export of ``system``.
    """
    if system not in SYSTEMS:
        close = difflib.get_close_matches(system, SYSTEMS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown ticket system {system!r}{hint}; expected one of {', '.join(SYSTEMS)}")
    return parse_document(_read_document(data, source), source, system, jira_names=jira_names)


def parse_document(doc: Any, source: str, system: str, *, jira_names: Mapping[str, str] | None = None) -> TicketExport:
    """:func:`parse_export` of an already decoded document (a JSON value or a CSV table), e.g. an API page.

    Raises:
        ValueError: ``system`` is not one of :data:`SYSTEMS`.
        InputError: not an export of ``system``.
    """
    if system not in SYSTEMS:
        raise ValueError(f"unknown ticket system {system!r}; expected one of {', '.join(SYSTEMS)}")
    try:
        if system == "jira":
            layout, tickets, skipped = jira.parse_document(doc, source, jira_names)
        elif system == "servicenow":
            layout, tickets, skipped = servicenow.parse_document(doc, source)
        else:
            layout, tickets, skipped = github.parse_document(doc, source)
    except RecursionError as exc:
        # Rich-text trees (Jira's ADF) are walked recursively; a hostile file nested just under the JSON
        # reader's own limit must still end as a refusal, not a crash.
        raise InputError(located(source, None, "nested too deeply to be a real export; refused")) from exc
    return TicketExport(system, layout, tickets, skipped)


def parse_links(data: bytes, source: str) -> defectdojo.JiraLinkExport:
    """Parse a DefectDojo ``jira_finding_mappings`` export into finding ↔ Jira key links.

    Raises:
        InputError: the file is malformed or not such an export.
    """
    return defectdojo.parse_mappings(load_json(data, source), source)


def _read_document(data: bytes, source: str) -> Any | CsvTable:
    """The decoded JSON value, or the CSV table when the text does not start like JSON."""
    text = decode_text(data, source)
    if text.lstrip().startswith(("{", "[")):
        return load_json(text, source)
    return read_csv(data, source)
