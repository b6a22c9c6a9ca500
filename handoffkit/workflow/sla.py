"""SLA status of findings and SLA compliance per severity band (and for KEV-listed findings).

The clock starts at validation: routing sets ``sla_due`` to the validation day plus the band's SLA days
(the KEV override: 14 days, or CISA's earlier due date) — see :mod:`handoffkit.workflow.routing`. Here the due
date is only compared, vectorised, with the closure day or with the as-of day:

============  ===============================================================================
status        meaning
============  ===============================================================================
no_sla        no due date (info band, held back, not validated), or closed as false positive
              / duplicate (no risk was there to remediate)
met           verified closed on or before the due date
breached      verified closed after the due date, or still open after it
due_soon      open, due within :data:`DUE_SOON_DAYS` days of the as-of day (inclusive)
within        open, due later than that
============  ===============================================================================

SLA compliance (per band) is the share of findings carrying an SLA that are not in breach:
``(met + due_soon + within) / (findings with an SLA)``; ``closed_on_time_pct`` is the stricter
``met / (met + closed late)`` over closed findings only.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from handoffkit.record import replay
from handoffkit.record.model import SEVERITIES

DUE_SOON_DAYS = 7
STATUSES = ("no_sla", "met", "breached", "due_soon", "within")
COUNT_COLUMNS = ("findings", "with_sla", "no_sla", "met", "breached", "due_soon", "within", "closed_late")
COMPLIANCE_COLUMNS = ("band", *COUNT_COLUMNS, "compliance_pct", "closed_on_time_pct")


def _day(as_of: datetime | date | str) -> pd.Timestamp:
    """The as-of day (UTC) as a naive midnight timestamp, comparable with ``sla_due``."""
    text = replay.instant(as_of)
    return pd.Timestamp(text[:10])


def status(frame: pd.DataFrame, as_of: datetime | date | str) -> pd.Series:
    """Each finding's SLA status (see the module docstring) on the as-of day.

    Args:
        frame: findings as of ``as_of`` with ``sla_due`` (date), ``closed_at`` (instant), ``state``.
        as_of: the instant the frame describes (a date means the end of that day, UTC).

    Returns:
        A string Series aligned with ``frame``, values from :data:`STATUSES`.
    """
    day = _day(as_of)
    due = pd.to_datetime(frame["sla_due"], errors="coerce")
    closed_day = pd.to_datetime(frame["closed_at"], utc=True, errors="coerce").dt.tz_localize(None).dt.normalize()
    closed = frame["state"].eq("verified_closed").to_numpy()
    no_sla = (due.isna() | frame["state"].isin(["false_positive", "duplicate"])).to_numpy()
    late_close = closed & (closed_day > due).to_numpy()
    overdue = ~closed & (day > due).to_numpy()
    soon = ~closed & ((due - day).dt.days <= DUE_SOON_DAYS).to_numpy()
    values = np.select(
        [no_sla, closed & ~late_close, late_close | overdue, soon],
        ["no_sla", "met", "breached", "due_soon"],
        default="within",
    )
    return pd.Series(values, index=frame.index, name="sla_status")


def summary(frame: pd.DataFrame, as_of: datetime | date | str) -> pd.DataFrame:
    """Compliance per band, then a ``kev`` row (KEV-listed findings, any band) and an ``all`` row.

    Returns:
        One row per band with :data:`COMPLIANCE_COLUMNS`; percentages are ``NaN`` when nothing
        carries an SLA (nothing to comply with).
    """
    df = pd.DataFrame(
        {
            "band": frame["severity"].to_numpy(),
            "kev": frame["kev"].astype(bool).to_numpy(),
            "status": status(frame, as_of).to_numpy(),
            "closed": frame["state"].eq("verified_closed").to_numpy(),
        }
    )
    counts = pd.crosstab(df["band"], df["status"]).reindex(index=list(SEVERITIES), columns=list(STATUSES), fill_value=0)
    late = df[df["closed"] & df["status"].eq("breached")].groupby("band").size().reindex(list(SEVERITIES), fill_value=0)
    counts["closed_late"] = late
    kev = df[df["kev"]]
    counts.loc["kev"] = [int(kev["status"].eq(s).sum()) for s in STATUSES] + [
        int((kev["closed"] & kev["status"].eq("breached")).sum())
    ]
    counts.loc["all"] = counts.loc[list(SEVERITIES)].sum()
    out = counts.reset_index(names="band")
    out.columns.name = None
    out["findings"] = out[list(STATUSES)].sum(axis=1)
    out["with_sla"] = out["findings"] - out["no_sla"]
    ok = out["met"] + out["due_soon"] + out["within"]
    out["compliance_pct"] = (100 * ok / out["with_sla"].where(out["with_sla"] > 0)).round(1)
    closed_total = out["met"] + out["closed_late"]
    out["closed_on_time_pct"] = (100 * out["met"] / closed_total.where(closed_total > 0)).round(1)
    return out[list(COMPLIANCE_COLUMNS)].astype(dict.fromkeys(COUNT_COLUMNS, "int64"))
