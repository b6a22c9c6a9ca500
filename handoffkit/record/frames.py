"""Query results as pandas DataFrames, built column-wise (the views read hundreds of thousands of rows)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection

from handoffkit.record.model import SEVERITIES, STATES, TRIAGE
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


SEVERITY_TYPE = pd.CategoricalDtype(list(reversed(SEVERITIES)), ordered=True)
"""Severity as an ordered categorical: ``df[df.severity >= "high"]`` and sorting by severity work."""
STATE_TYPE = pd.CategoricalDtype(list(STATES), ordered=True)
"""Lifecycle states in lifecycle order."""
TRIAGE_TYPE = pd.CategoricalDtype(list(TRIAGE), ordered=True)


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """The analyst's frame of findings: instants as UTC datetimes, days as dates, severity / state /
    triage as ordered categoricals, numbers and flags as numbers and booleans (never their text)."""
    out = df.copy()
    for column, dtype in (
        ("severity", SEVERITY_TYPE),
        ("scanner_severity", SEVERITY_TYPE),
        ("state", STATE_TYPE),
        ("triage", TRIAGE_TYPE),
    ):
        if column in out:
            out[column] = out[column].astype(dtype)
    for column in ("first_seen", "last_seen", "validated_at", "routed_at", "closed_at"):
        if column in out:
            out[column] = pd.to_datetime(out[column], utc=True, format="ISO8601")
    for column in ("sla_due", "kev_due"):
        if column in out:
            days = pd.to_datetime(out[column], format="ISO8601")
            out[column] = days.dt.date.astype(object).where(days.notna(), None)
    for column in ("kev", "suppressed"):
        if column in out:
            out[column] = out[column].astype(bool)
    for column in ("number", "policy_version", "last_scan_id"):  # absent ones stay missing, not 0.0
        if column in out:
            out[column] = pd.to_numeric(out[column]).astype("Int64")
    for column in ("cvss_score", "calibrated_score"):
        if column in out:
            out[column] = pd.to_numeric(out[column]).astype("float64")
    if "row_version" in out:
        out["row_version"] = pd.to_numeric(out["row_version"]).astype("int64")
    return out
