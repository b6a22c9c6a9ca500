"""handoffkit.report.display: every helper escapes, charts are inline SVG of aggregates only."""

from __future__ import annotations

import re

import altair as alt
import pandas as pd
import pytest

from handoffkit.report import display

from .fixture_notebook import CANARY

ESCAPED = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


def bars(rows: int, label: str = "a") -> alt.Chart:
    frame = pd.DataFrame({"label": [f"{label}{i}" for i in range(rows)], "count": range(rows)})
    return alt.Chart(frame, title=label).mark_bar().encode(x="label:N", y="count:Q")


def test_chart_is_inline_svg_with_the_text_escaped() -> None:
    frame = pd.DataFrame({"label": [CANARY], "count": [3]})
    chart = alt.Chart(frame, title=CANARY).mark_bar().encode(x=alt.X("label:N", title=CANARY), y="count:Q")
    svg = display.chart(chart)._repr_svg_()
    assert svg.startswith("<svg")
    assert "<script" not in svg and "<img" not in svg
    assert f">{ESCAPED}</text>" in svg  # the title, drawn as text


@pytest.mark.parametrize(
    "build",
    [
        lambda: bars(5_001),
        lambda: bars(10) + bars(5_001),  # a layer hides the big frame one level down
        lambda: alt.hconcat(bars(3), bars(6_000)),
        lambda: alt.Chart(alt.Data(values=[{"a": i} for i in range(5_001)])).mark_point().encode(x="a:Q"),
    ],
    ids=["chart", "layer", "concat", "inline-values"],
)
def test_chart_refuses_unaggregated_data(build) -> None:
    with pytest.raises(ValueError, match="aggregate first"):
        display.chart(build())


def test_chart_accepts_exactly_the_limit() -> None:
    frame = pd.DataFrame({"n": range(display.MAX_CHART_ROWS)})
    chart = alt.Chart(frame).mark_bar().encode(y="count():Q")  # one bar: Vega aggregates, cheaply
    assert "<svg" in display.chart(chart)._repr_svg_()


def test_chart_refuses_url_data() -> None:
    chart = alt.Chart(alt.UrlData("https://example.com/findings.csv")).mark_point().encode(x="a:Q")
    with pytest.raises(ValueError, match=r"URL 'https://example\.com/findings\.csv'"):
        display.chart(chart)


def test_chart_refuses_what_is_not_a_chart() -> None:
    with pytest.raises(TypeError, match="expects an Altair chart, got DataFrame"):
        display.chart(pd.DataFrame())


def test_two_charts_on_one_page_do_not_share_clip_ids() -> None:
    def clipped(top: int) -> str:
        frame = pd.DataFrame({"x": range(10), "y": range(10)})
        chart = alt.Chart(frame).mark_line(clip=True)
        chart = chart.encode(x=alt.X("x:Q", scale=alt.Scale(domain=[0, top])), y="y:Q")
        return display.chart(chart)._repr_svg_()

    first, second = clipped(4), clipped(6)
    first_ids = set(re.findall(r'id="([^"]+)"', first))
    second_ids = set(re.findall(r'id="([^"]+)"', second))
    assert first_ids and second_ids and not first_ids & second_ids
    for svg, ids in ((first, first_ids), (second, second_ids)):
        assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= ids  # every reference still resolves


def test_table_escapes_values_and_headers() -> None:
    markup = display.table(pd.DataFrame({CANARY: [CANARY]})).data
    assert CANARY not in markup
    assert markup.count(ESCAPED) == 2
    assert "hk-caption" not in markup  # nothing clipped, nothing to say


@pytest.mark.parametrize(
    ("rows", "max_rows", "caption"),
    [(60, 5, "showing 5 of 60 rows"), (1_234, 50, "showing 50 of 1,234 rows"), (0, 50, "no rows")],
)
def test_table_caption(rows: int, max_rows: int, caption: str) -> None:
    markup = display.table(pd.DataFrame({"n": range(rows)}), max_rows=max_rows).data
    assert f'<p class="hk-caption">{caption}</p>' in markup
    assert markup.count("<tr") == 1 + min(rows, max_rows)  # header row + rows shown


def test_tiles_escape_and_format_figures() -> None:
    markup = display.tiles({CANARY: CANARY, "open": 1234, "rate": 0.256, "flag": True}).data
    assert CANARY not in markup and markup.count(ESCAPED) == 2
    values = re.findall(r'class="hk-tile-value">([^<]*)<', markup)
    assert values == [ESCAPED, "1,234", "0.3", "True"]


def test_narrative_escapes_each_paragraph() -> None:
    markup = display.narrative([CANARY, "**not markdown**"]).data
    assert markup == f'<div class="hk-narrative"><p>{ESCAPED}</p><p>**not markdown**</p></div>'


def test_narrative_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match=r"wrap it: \[text\]"):
        display.narrative("one paragraph")


def test_checklist_escapes_and_badges() -> None:
    markup = display.checklist(
        [
            {"item": CANARY, "status": "pass", "evidence": CANARY},
            {"item": "retest", "status": "not-yet-measurable", "evidence": "no retest yet"},
        ]
    ).data
    assert CANARY not in markup and markup.count(ESCAPED) == 2
    assert '<span class="hk-badge hk-badge-pass">pass</span>' in markup
    assert '<span class="hk-badge hk-badge-pending">not-yet-measurable</span>' in markup


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"item": "x", "status": "passed", "evidence": "e"}, "status 'passed' is not one of .*did you mean 'pass'"),
        ({"item": "x", "status": CANARY, "evidence": "e"}, "is not one of pass, fail, not-yet-measurable$"),
        ({"item": "x", "status": "pass"}, "checklist item 2: missing evidence"),
    ],
)
def test_checklist_refuses_malformed_items(entry: dict, message: str) -> None:
    good = {"item": "ok", "status": "pass", "evidence": "e"}
    with pytest.raises(ValueError, match=message):
        display.checklist([good, entry])


def test_table_reads_like_a_table_a_person_reads() -> None:
    frame = pd.DataFrame(
        {
            "seq": [18571],
            "occurred_at": ["2026-09-30T23:59:59.999999Z"],
            "finding_id": ["HK-1042"],
            "sla_breached": [12345],
            "title": ["SQL injection in the login form"],
        }
    )
    markup = display.table(frame).data
    assert "<th>Time</th><th>Finding</th>" in markup and '<th class="hk-num">SLA breached</th>' in markup
    assert '<td class="hk-nowrap hk-num">18571</td>' in markup  # an id: no thousands separator
    assert '<td class="hk-nowrap">2026-09-30 23:59 UTC</td>' in markup  # to the minute, never wrapped
    assert '<td class="hk-nowrap">HK-1042</td>' in markup
    assert '<td class="hk-nowrap hk-num">12,345</td>' in markup
    assert "<td>SQL injection in the login form</td>" in markup  # prose may wrap, between words


def test_table_links_the_full_csv_when_rows_are_left_off() -> None:
    frame = pd.DataFrame({"n": range(30)})
    assert (
        'showing 10 of 30 rows; every row: <a class="hk-csv-link" href="all.csv">'
        in display.table(frame, max_rows=10, csv="all.csv").data
    )
    assert "all.csv" not in display.table(frame, max_rows=30, csv="all.csv").data


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-09-30T23:59:59.999999Z", "2026-09-30 23:59 UTC"),
        ("2026-10-01T01:59:00+02:00", "2026-09-30 23:59 UTC"),
        (pd.Timestamp("2026-09-30 23:59:59", tz="UTC"), "2026-09-30 23:59 UTC"),
        ("2026-09-30", "2026-09-30"),  # a day stays a day
        ("HK-2026-09-30T", "HK-2026-09-30T"),  # not an instant: unchanged
        (None, "—"),
    ],
)
def test_minute(value, shown: str) -> None:
    assert display.minute(value) == shown


@pytest.mark.parametrize(
    ("column", "heading"),
    [("finding_id", "Finding"), ("kev_compliance_pct", "KEV compliance %"), ("sla_due", "SLA due"), ("band", "Band")],
)
def test_label(column: str, heading: str) -> None:
    assert display.label(column) == heading


def test_a_tile_carries_its_status_target_and_change() -> None:
    markup = display.tiles({"SLA compliance": display.Tile("43.7%", "off target", "target 90%", "-2.1 pts")}).data
    assert 'class="hk-tile hk-off-target"' in markup
    assert '<div class="hk-tile-status">off target</div>' in markup and "target 90%" in markup
    with pytest.raises(ValueError, match="status 'red' is not one of on target, at risk, off target"):
        display.tiles({"x": display.Tile(1, "red")})


def test_table_markup_depends_on_the_values_not_the_dtype() -> None:
    """A frame read back from the shared memo may hold the same numbers as object: the page must not change."""
    frame = pd.DataFrame({"count": [3, 1_200], "band": ["high", "low"]})
    assert display.table(frame).data == display.table(frame.astype(object)).data
    assert '<td class="hk-nowrap hk-num">1,200</td>' in display.table(frame.astype(object)).data


def test_a_batch_id_never_wraps_but_other_long_text_may() -> None:
    # A batch id runs past the short-token rule (up to GitHub's 50-character label); it is an id all the same.
    assert "hk-nowrap" in display._cell("batch-medium-2026-06-29-infrastructure", False, False)
    assert "hk-nowrap" in display._cell("batch-low-2026-Q3-data", False, False)
    assert "hk-nowrap" not in display._cell("https://example.test/a/very/long/path/to/something", False, False)
    assert "hk-nowrap" not in display._cell("batch-medium-2026-06-29 infrastructure team", False, False)
