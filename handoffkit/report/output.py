"""Printing results for the CLI: aligned tables, JSON and CSV (formula-safe, :mod:`handoffkit.record.csvsafe`)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson

from handoffkit.record.csvsafe import to_csv
from handoffkit.record.schema import format_ts

if TYPE_CHECKING:
    import pandas as pd


def _pandas() -> Any:
    # A pandas value can only reach us once pandas is loaded; not importing it here keeps the start-up
    # of commands that never build a frame (reconcile, log verify, link …) free of its cost.
    return sys.modules.get("pandas")


def _is_frame(data: Any) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(data, pd.DataFrame)


_READY = frozenset({str, int, bool, type(None)})


def plain(value: Any) -> Any:
    """A JSON-ready version of ``value`` (instants as canonical UTC text, NaN as null)."""
    if value.__class__ in _READY:  # most values (a reconciliation's ids): nothing to convert
        return value
    pd = _pandas()
    if pd is not None:
        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item())
    return value


def records(data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if _is_frame(data):
        return [plain(r) for r in data.to_dict(orient="records")]
    return [plain(dict(r)) for r in data]


def to_json(data: Any) -> str:
    """Indented JSON (UTF-8 text, not ASCII-escaped). orjson writes it, since ``json`` indents in pure
    Python; ``json`` takes what orjson refuses (an integer over 64 bits)."""
    if _is_frame(data):
        data = records(data)
    value = plain(data)
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def to_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, max_width: int = 48) -> str:
    """A plain aligned text table (cells clipped to ``max_width``)."""

    def cell(v: Any) -> str:
        v = plain(v)
        text = ", ".join(map(str, v)) if isinstance(v, list) else "" if v is None else str(v)
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    grid = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(g[i]) for g in grid)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(g, widths, strict=True)).rstrip() for g in grid]
    return "\n".join(lines)


def emit(
    data: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any], fmt: str, columns: Sequence[str] | None = None
) -> str:
    """Render rows (or one mapping) as ``table``, ``json`` or ``csv``."""
    if isinstance(data, Mapping):
        if fmt == "json":
            return to_json(data)
        data = [{"key": k, "value": v} for k, v in data.items()]
    rows = records(data)
    cols = list(columns or (data.columns if _is_frame(data) else (rows[0] if rows else [])))
    if fmt == "json":
        return to_json([{c: r.get(c) for c in cols} for r in rows])
    if fmt == "csv":
        return to_csv(rows, cols).rstrip("\n")
    return to_table(rows, cols) if cols else "(nothing)"
