"""Query results as pandas DataFrames, built column-wise (the views read hundreds of thousands of rows)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection

from handoffkit.record.store import driver_rows


def frame(result: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """A query result (or a list of rows) as a DataFrame, built column by column.

    ``pd.DataFrame(rows)`` probes every SQLAlchemy ``Row`` for named-tuple fields; transposing first
    does not.
    """
    names = list(columns if columns is not None else result.keys())
    rows = result.fetchall() if hasattr(result, "fetchall") else result
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    return pd.DataFrame(dict(zip(names, map(list, zip(*rows, strict=True)), strict=True)))


def driver_frame(conn: Connection, stmt: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """``frame(conn.execute(stmt), columns)`` built from the database driver's own tuples.

    SQLAlchemy makes a ``Row`` per record and the transposition a list per column, which on a large
    record costs more than the query; pandas builds the same frame from the driver's tuples directly.
    Values come as the driver returns them, with no SQLAlchemy type
    processing, so this is for columns read as text or numbers (a boolean is 0/1 on SQLite).
    """
    names, rows = driver_rows(conn, stmt)
    names = list(columns) if columns is not None else names
    if not rows:
        return frame([], names)
    return pd.DataFrame.from_records(rows, columns=names)
