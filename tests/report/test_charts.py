"""handoffkit.report.charts: every mark in a legend, targets drawn, no band missing, the backlog kept in scale."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from handoffkit.report import charts, display


def svg(chart) -> str:
    return display.chart(chart)._repr_svg_()


def routing(first_created: int) -> pd.DataFrame:
    rows = []
    for i, month in enumerate(["2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09"]):
        rows += [(month, "created", first_created if i == 0 else 30), (month, "ticket", 10), (month, "held_back", 5)]
    return pd.DataFrame(rows, columns=["period", "series", "count"])


def test_the_created_line_is_in_the_legend_and_the_reported_period_stands_out() -> None:
    drawn = svg(charts.routing_decisions(routing(30), period=(date(2026, 7, 1), date(2026, 9, 30))))
    assert ">created</text>" in drawn and ">ticket</text>" in drawn
    assert "the reported period (2026-07-01 to 2026-09-30) in full colour" in drawn
    assert 'fill-opacity="0.35"' in drawn or 'opacity="0.35"' in drawn  # the earlier months, paler
    assert "off the scale" not in drawn  # no backlog to cut


@pytest.mark.parametrize(("first", "cut"), [(800, True), (90, False)])
def test_an_initial_backlog_runs_off_the_scale_and_says_so(first: int, cut: bool) -> None:
    drawn = svg(charts.routing_decisions(routing(first)))
    assert ("2026-04: the initial import runs off the scale" in drawn) is cut
    assert (f"15 routed, {first:,} created ↑" in drawn) is cut


def test_ticket_closures_are_in_the_legend() -> None:
    frame = pd.DataFrame(
        [("2026-07", "rescan", 4), ("2026-07", "ticket_closed", 6)], columns=["period", "series", "count"]
    )
    assert ">ticket_closed</text>" in svg(charts.closure_verification(frame))


def test_every_band_is_drawn_and_one_without_closures_says_so() -> None:
    frame = pd.DataFrame(
        {
            "band": ["critical", "high", "medium", "low", "info", "all"],
            "mean_days": [None, 20.0, 30.0, 40.0, 50.0, 35.0],
        }
    )
    drawn = svg(charts.mttr(frame))
    assert ">no closures</text>" in drawn and ">critical</text>" in drawn and ">20.0</text>" in drawn


def test_the_sla_target_is_a_rule_in_the_legend() -> None:
    frame = pd.DataFrame({"band": ["critical", "kev", "all"], "compliance_pct": [40.0, 10.0, 38.0]})
    drawn = svg(charts.sla_compliance(frame, target=95))
    assert ">target</text>" in drawn and ">KEV findings</text>" in drawn and "SLA compliance %" in drawn
    assert ">target</text>" not in svg(charts.sla_compliance(frame, target=None))
