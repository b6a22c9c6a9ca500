"""Formula-safe CSV: the one rule and the one writer behind every CSV handoffkit writes.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, tab, CR or LF as a formula
(OWASP "CSV injection"); record text is attacker-influenced (a scanner reports what a target says about
itself), so every such cell gets a leading ``'``. Quotes already leading the text count too: ``'=1``
becomes ``''=1``, so that :func:`unsafe_cell` gives the record's value back. Every cell is quoted, the
header's too. Every CSV handoffkit writes — command output, ticket payloads, the activity-log export —
is written by this module; ``tests/cli/test_csv.py`` runs each with formula canaries in every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from handoffkit.record._csvline import quoted_line

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_FIRST = frozenset(FORMULA_START)


def _needs_quote(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_START)


def safe_cell(value: Any) -> str:
    """``value`` as cell text (a list as space-separated items), with a leading ``'`` where it would run."""
    text = "" if value is None else (" ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
    return "'" + text if _needs_quote(text) else text


def safe_cells(values: Iterable[Any]) -> list[str]:
    """:func:`safe_cell` for a row of scalars, written for the activity-log export's millions of cells."""
    cells = ["" if v is None else v if v.__class__ is str else str(v) for v in values]
    return [("'" + c) if c and (c[0] in _FIRST or (c[0] == "'" and _needs_quote(c))) else c for c in cells]


def unsafe_cell(text: str) -> str:
    """Inverse of :func:`safe_cell` (for re-import and round-trip tests)."""
    return text[1:] if text.startswith("'") and _needs_quote(text[1:]) else text


def header_line(columns: Sequence[str]) -> str:
    """The header record, formula-safe too: a column may be named by configuration (the policy's Jira
    custom field), not only by handoffkit."""
    return quoted_line(safe_cells(columns))


def line(values: Iterable[Any]) -> str:
    """One formula-safe, fully quoted record."""
    return quoted_line(safe_cells(values))


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A whole CSV: the header, then one formula-safe record per row (``row.get(column)`` per cell)."""
    return header_line(columns) + "".join(quoted_line([safe_cell(row.get(c)) for c in columns]) for row in rows)


def rows_to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV from positional rows (a repeated column name, as Jira's importer wants, is allowed)."""
    return header_line(header) + "".join(quoted_line([safe_cell(v) for v in row]) for row in rows)
