"""Printing results for the CLI: aligned tables, JSON and CSV (formula-safe, :mod:`handoffkit.record.csvsafe`)."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
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


def to_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, width: int | None = None) -> str:
    """An aligned text table drawn by rich. On a terminal, long text folds within the terminal's width
    (nothing is cut); piped, each row stays on one line at its natural width, for grep and cut."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def cell(v: Any) -> str:
        v = plain(v)
        text = ", ".join(map(str, v)) if isinstance(v, list) else "" if v is None else str(v)
        return text.replace("\r", " ").replace("\n", " ")

    grid = [[cell(r.get(c)) for c in columns] for r in rows]
    natural = sum(max([len(c), *(len(g[i]) for g in grid)]) + 2 for i, c in enumerate(columns))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", highlight=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for g in grid:
        table.add_row(*g)
    terminal = sys.stdout.isatty()
    console = Console(
        file=io.StringIO(),
        width=width or (None if terminal else 2 * natural + 80),
        force_terminal=terminal,
        color_system="auto" if terminal else None,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(table, markup=False)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines())


def to_ndjson(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """One compact JSON object per line (for jq and line-oriented tools)."""
    return "\n".join(orjson.dumps({c: plain(r.get(c)) for c in columns}).decode() for r in rows)


def _csv_value(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def emit(
    data: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any], fmt: str, columns: Sequence[str] | None = None
) -> str:
    """Render rows (or one mapping) as ``table``, ``json``, ``ndjson`` or ``csv``."""
    if isinstance(data, Mapping):
        if fmt == "json":
            return to_json(data)
        data = [{"key": k, "value": v} for k, v in data.items()]
    rows = records(data)
    cols = list(columns or (data.columns if _is_frame(data) else (rows[0] if rows else [])))
    if fmt == "json":
        return to_json([{c: r.get(c) for c in cols} for r in rows])
    if fmt == "ndjson":
        return to_ndjson(rows, cols)
    if fmt == "csv":  # booleans as true/false, as spreadsheets and other CSV tools read them
        return to_csv([{c: _csv_value(r.get(c)) for c in cols} for r in rows], cols).rstrip("\n")
    return to_table(rows, cols) if cols else "(nothing)"


class Activity:
    """Progress of long work on stderr: a bar with the count and an ETA on a terminal (rich), one line
    per step when asked for outside one, nothing otherwise — so pipes and logs stay clean.

    Call it with each step's message; :meth:`advance` after each unit of ``total`` (files, pages…).
    """

    def __init__(self, total: int | None, mode: str, lines: Callable[[str], None] | None = None) -> None:
        self.mode = mode
        self._lines = lines
        self._bar: Any = None
        self._task: Any = None
        if mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("", total=total)

    @classmethod
    def choose(cls, total: int | None, asked: bool | None) -> Activity:
        """``asked`` None: a bar on a terminal, quiet elsewhere; True: a bar or lines; False: quiet."""
        terminal = sys.stderr.isatty()
        if asked is False or (asked is None and not terminal):
            return cls(total, "quiet")
        return cls(total, "bar" if terminal else "lines")

    def __enter__(self) -> Activity:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    @classmethod
    def of(cls, progress: Callable[[str], None] | None) -> Activity:
        """``progress`` itself when it is an Activity; else one that hands each step's message to it (a
        plain callable, e.g. a notebook's ``print``), or does nothing (None)."""
        if isinstance(progress, Activity):
            return progress
        return cls(None, "quiet") if progress is None else cls(None, "lines", progress)

    def __call__(self, message: str) -> None:
        if self.mode == "lines":
            if self._lines is not None:
                self._lines(message)
            else:
                print(message, file=sys.stderr, flush=True)
        elif self._bar is not None:
            self._bar.update(self._task, description=message if len(message) <= 60 else "…" + message[-59:])

    def expect(self, total: int) -> None:
        """The number of units the work turned out to have, once the work knows it: the bar then shows
        how many are done of it and an ETA."""
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def reach(self, done: int) -> None:
        """``done`` units done in all (for work that knows where it is, not how much it just did)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done)

    def advance(self, units: int = 1) -> None:
        """``units`` more done. Thread-safe (a report renders its pages in threads)."""
        if self._bar is not None:
            self._bar.advance(self._task, units)
