"""SLA status and its summary: the clock starts at validation, due dates are inclusive, KEV has its own row.

The compliance view over a whole record is in tests/report/test_views.py."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from handoffkit.workflow import sla

AS_OF = "2026-03-10T12:00:00Z"


def frame(*rows: tuple) -> pd.DataFrame:
    """rows: (severity, state, sla_due, closed_at, kev)."""
    return pd.DataFrame(rows, columns=["severity", "state", "sla_due", "closed_at", "kev"])


@pytest.mark.parametrize(
    ("state", "due", "closed", "expected"),
    [
        ("routed", None, None, "no_sla"),
        ("false_positive", "2026-01-01", None, "no_sla"),  # no risk was there: no SLA to breach
        ("routed", "2026-03-09", None, "breached"),  # yesterday
        ("routed", "2026-03-10", None, "due_soon"),  # due today: still in time
        ("awaiting_verification", "2026-03-17", None, "due_soon"),  # a closed ticket does not stop the clock
        ("routed", "2026-03-18", None, "within"),
        ("verified_closed", "2026-03-05", "2026-03-05T23:00:00Z", "met"),  # closed on the due day
        ("verified_closed", "2026-03-05", "2026-03-06T00:01:00Z", "breached"),
        ("reopened", "2026-03-05", None, "breached"),
    ],
)
def test_status(state: str, due: str | None, closed: str | None, expected: str) -> None:
    assert sla.status(frame(("high", state, due, closed, False)), AS_OF).tolist() == [expected]


def test_summary_counts_per_band_kev_and_all() -> None:
    df = frame(
        ("critical", "routed", "2026-03-01", None, True),  # breached, KEV
        ("critical", "verified_closed", "2026-03-20", "2026-03-02T10:00:00Z", True),  # met, KEV
        ("high", "routed", "2026-04-30", None, False),  # within
        ("high", "verified_closed", "2026-03-01", "2026-03-04T10:00:00Z", False),  # closed late
        ("info", "routed", None, None, False),  # no SLA
    )
    out = sla.summary(df, AS_OF).set_index("band")
    assert list(out.index) == ["critical", "high", "medium", "low", "info", "kev", "all"]
    assert out.loc["critical", ["findings", "with_sla", "met", "breached"]].tolist() == [2, 2, 1, 1]
    assert out.loc["critical", "compliance_pct"] == 50.0
    assert out.loc["high", ["within", "breached", "closed_late", "closed_on_time_pct"]].tolist() == [1, 1, 1, 0.0]
    assert out.loc["kev", ["findings", "met", "breached", "compliance_pct"]].tolist() == [2, 1, 1, 50.0]
    assert out.loc["all", ["findings", "with_sla", "no_sla", "breached"]].tolist() == [5, 4, 1, 2]
    assert out.loc["all", "compliance_pct"] == 50.0
    assert math.isnan(out.loc["medium", "compliance_pct"])  # nothing to comply with
