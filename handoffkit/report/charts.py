"""Altair charts of the views' aggregated frames, shared by the notebooks.

Each function takes a frame a :mod:`handoffkit.report.views` (or :mod:`handoffkit.report.metrics` /
:mod:`handoffkit.workflow.sla`) function returned — already aggregated, a few hundred rows at most — and
returns an Altair chart; the notebooks render it with :func:`handoffkit.report.display.chart` (inline SVG).
Colours are fixed per series, so a series keeps its colour from one report to the next, and they mean
one thing on every page: blues for the record's ordinary flow, greens for verified closure, red
(:data:`ALARM`) only for what needs attention (denied actions, downward calibrations, gaps), and near-black
(:data:`REFERENCE`) for the reference marks drawn over bars (findings created, ticket closures observed,
targets). Every mark is in a legend.
"""

from __future__ import annotations

# isort: split
import handoffkit.record._jsonschema  # noqa: F401 - before Altair, which imports jsonschema

# isort: split
from typing import Any

import altair as alt
import pandas as pd

ALARM = "#c0392b"
REFERENCE = "#222222"
NORMAL = "#1f4e8c"
KEV = "#5b2a86"
WIDTH = 640
HEIGHT = 260

_ROUTING_COLOURS = {
    "ticket": "#1f4e8c",
    "sprint_backlog": "#4f8fd6",
    "quarterly_cycle": "#9cc3ee",
    "security_record_only": "#b8b8b8",
    "held_back": "#e08a2c",
}
_CLOSURE_COLOURS = {"rescan": "#1e7b4f", "retest": "#4fae7f", "commit": "#8fd3ad", "attestation": "#c9ecd8"}
_DIRECTION_COLOURS = {"down": ALARM, "up": "#1f4e8c", "same": "#b8b8b8"}
_OUTCOME_COLOURS = {"success": "#1f4e8c", "denied": ALARM, "failure": "#e08a2c"}


def _scale(colours: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(colours), range=list(colours.values()))


def _reported(df: pd.DataFrame, period: tuple[Any, Any] | None) -> tuple[pd.DataFrame, Any, list[str]]:
    """The frame with a ``reported`` column (the period is inside the reported period), the bars' opacity
    encoding (periods outside it drawn paler) and the subtitle line saying so. Month labels (``2026-07``)
    compare with the period's days by their first seven characters."""
    if period is None:
        return df, alt.value(1.0), []
    start, end = str(period[0])[:7], str(period[1])[:7]
    inside = df["period"].astype(str).str.slice(0, 7).between(start, end)
    marked = df.assign(reported=inside.map({True: "reported", False: "earlier"}))
    # an encoded field (not a condition on the datum), so the bars' aggregation keeps it
    opacity = alt.Opacity("reported:N", scale=alt.Scale(domain=["reported", "earlier"], range=[1.0, 0.35]), legend=None)
    return marked, opacity, [f"the reported period ({period[0]} to {period[1]}) in full colour, earlier ones paler"]


def routing_decisions(
    df: pd.DataFrame, title: str = "Findings created and routing decisions", period: tuple[Any, Any] | None = None
) -> alt.LayerChart:
    """Stacked routing decisions per period, with findings created as a line (frame of ``views.routing_decisions``).

    The first period usually holds the initial import (the whole backlog routed at once), which would
    flatten every later bar. When it is more than three times the largest later period, the y axis is cut
    at 1.2 times that largest later period, the first bar runs off the top and carries its real total as a
    label, and the subtitle says so. With ``period`` (first and last day), the reported period's bars are
    in full colour and the others paler.
    """
    df, opacity, highlight = _reported(df, period)
    colours = {**_ROUTING_COLOURS, "created": REFERENCE}
    totals = df[df["series"] != "created"].groupby("period", sort=True)["count"].sum()
    created = df[df["series"] == "created"].groupby("period", sort=True)["count"].sum()
    peaks = pd.concat([totals, created], axis=1).max(axis=1)
    cut = len(peaks) > 1 and peaks.iloc[0] > 3 * max(peaks.iloc[1:].max(), 1)
    top = 1.2 * max(peaks.iloc[1:].max(), 1) if cut else None
    y = alt.Y("sum(count):Q", title="findings", scale=alt.Scale(domain=[0, top], clamp=True) if cut else alt.Scale())
    colour = alt.Color("series:N", scale=_scale(colours), title="decision / created")
    bars = alt.Chart(df[df["series"] != "created"]).mark_bar(clip=True).encode(
        x=alt.X("period:O", title="period", axis=alt.Axis(labelAngle=-45)), y=y, color=colour,
        order=alt.Order("series:N"), opacity=opacity,
    )  # fmt: skip
    line = (
        alt.Chart(df[df["series"] == "created"])
        .mark_line(point=True, clip=True)
        .encode(x="period:O", y=y, color=colour)
    )
    layers = [bars, line]
    subtitle = list(highlight)
    if cut:
        first = str(peaks.index[0])
        label = pd.DataFrame(
            {
                "period": [first],
                "y": [top],
                "text": [f"{int(totals.iloc[0]):,} routed, {int(created.iloc[0]):,} created ↑"],
            }
        )
        layers.append(
            alt.Chart(label)
            .mark_text(align="left", dx=4, dy=8, fontWeight="bold")
            .encode(x="period:O", y="y:Q", text="text:N")
        )
        subtitle.append(f"{first}: the initial import runs off the scale so the later periods stay readable")
    return alt.layer(*layers).properties(title=alt.TitleParams(title, subtitle=subtitle), width=WIDTH, height=HEIGHT)


def ticket_mapping(df: pd.DataFrame, title: str = "Ticket-to-finding mapping") -> alt.Chart:
    """One bar per mapping category (frame of ``views.ticket_mapping``); gaps in the alarm colour."""
    kinds = df.assign(kind=df["category"].map(lambda c: "linked" if c == "linked" else "gap"))
    return (
        alt.Chart(kinds)
        .mark_bar()
        .encode(
            y=alt.Y("category:N", sort=list(df["category"]), title=None),
            x=alt.X("count:Q", title="count"),
            color=alt.Color("kind:N", scale=_scale({"linked": NORMAL, "gap": ALARM}), title=None),
        )
        .properties(title=title, width=WIDTH, height=30 * max(len(df), 1))
    )


def mapping_trend(df: pd.DataFrame, title: str = "Routing-miss and drift rates at each reconciliation") -> alt.Chart:
    """Routing-miss rate (of findings) and drift rate (of tickets) per run (frame of ``views.mapping_trend``)."""
    long = df.melt(
        id_vars=["as_of"], value_vars=["routing_miss_rate_pct", "drift_rate_pct"], var_name="rate", value_name="percent"
    )
    long["rate"] = long["rate"].map(
        {"routing_miss_rate_pct": "routing misses / findings", "drift_rate_pct": "severity drift / tickets"}
    )
    long["day"] = long["as_of"].str.slice(0, 10)
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:O", title="reconciliation run"),
            y=alt.Y("percent:Q", title="%"),
            color=alt.Color("rate:N", scale=alt.Scale(range=["#1f4e8c", ALARM]), title=None),
        )
        .properties(title=title, width=WIDTH, height=HEIGHT)
    )


def calibration_trend(df: pd.DataFrame, title: str = "Severity calibrations (downward in red)") -> alt.Chart:
    """Calibrations per period by direction (frame of ``views.calibration_trend``)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("period:O", title="period", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("sum(count):Q", title="calibrations"),
            color=alt.Color("direction:N", scale=_scale(_DIRECTION_COLOURS), title="direction"),
        )
        .properties(title=title, width=WIDTH, height=HEIGHT)
    )


def closure_verification(
    df: pd.DataFrame,
    title: str = "Verified closures by evidence kind, and ticket closures observed",
    period: tuple[Any, Any] | None = None,
) -> alt.LayerChart:
    """Stacked verified closures per period with ticket closures as a line (``views.closure_verification``);
    with ``period``, the reported period's bars in full colour and the others paler."""
    df, opacity, highlight = _reported(df, period)
    colours = {**_CLOSURE_COLOURS, "ticket_closed": REFERENCE}
    colour = alt.Color("series:N", scale=_scale(colours), title="evidence / ticket closures")
    bars = (
        alt.Chart(df[df["series"] != "ticket_closed"])
        .mark_bar()
        .encode(
            x=alt.X("period:O", title="period", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("sum(count):Q", title="findings"),
            color=colour,
            opacity=opacity,
        )
    )
    line = (
        alt.Chart(df[df["series"] == "ticket_closed"])
        .mark_line(point=True)
        .encode(x="period:O", y="sum(count):Q", color=colour)
    )
    return alt.layer(bars, line).properties(
        title=alt.TitleParams(title, subtitle=highlight), width=WIDTH, height=HEIGHT
    )


def mttr(df: pd.DataFrame, title: str = "Mean days from validation to verified closure") -> alt.LayerChart:
    """Mean days per band (frame of ``metrics.mttr``; the ``all`` row is left out). Every band is drawn:
    one with no closure in the period is labelled "no closures" instead of silently missing."""
    bands = df[df["band"] != "all"].assign(
        days=lambda d: d["mean_days"].fillna(0.0),
        note=lambda d: d["mean_days"].map(lambda v: "no closures" if pd.isna(v) else f"{v:.1f}"),
    )[["band", "days", "note"]]
    x = alt.X("band:N", sort=list(bands["band"]), title="severity", axis=alt.Axis(labelAngle=0))
    bars = alt.Chart(bands).mark_bar(color=NORMAL).encode(x=x, y=alt.Y("days:Q", title="days"))
    notes = alt.Chart(bands).mark_text(dy=-6, color=REFERENCE).encode(x=x, y="days:Q", text="note:N")
    return alt.layer(bars, notes).properties(title=title, width=WIDTH // 2, height=HEIGHT)


def sla_compliance(
    df: pd.DataFrame, title: str = "SLA compliance per band and for KEV findings", target: float | None = 90.0
) -> alt.LayerChart:
    """Compliance % per band plus KEV (a :func:`handoffkit.report.views.sla_compliance` frame; bands without
    SLAs are left out), with the target as a rule line (in the legend)."""
    rows = df[(df["band"] != "all") & df["compliance_pct"].notna()].assign(
        kind=lambda d: d["band"].map(lambda b: "KEV findings" if b == "kev" else "severity band")
    )
    colours = {"severity band": NORMAL, "KEV findings": KEV, **({"target": REFERENCE} if target is not None else {})}
    colour = alt.Color("kind:N", scale=_scale(colours), title=None)
    bars = (
        alt.Chart(rows)
        .mark_bar()
        .encode(
            x=alt.X("band:N", sort=list(rows["band"]), title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("compliance_pct:Q", title="SLA compliance %", scale=alt.Scale(domain=[0, 100])),
            color=colour,
        )
    )
    layers = [bars]
    if target is not None:
        rule = pd.DataFrame({"target": [target], "kind": ["target"]})
        layers.append(alt.Chart(rule).mark_rule(strokeDash=[6, 3], size=2).encode(y="target:Q", color=colour))
    return alt.layer(*layers).properties(title=title, width=WIDTH // 2, height=HEIGHT)


def activity(df: pd.DataFrame, title: str = "Activity-log events per period") -> alt.Chart:
    """Events per period by outcome (frame of ``views.activity_by_period``)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("period:O", title="period", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("sum(count):Q", title="events"),
            color=alt.Color("series:N", scale=_scale(_OUTCOME_COLOURS), title="outcome"),
        )
        .properties(title=title, width=WIDTH, height=HEIGHT)
    )


def control_coverage(df: pd.DataFrame, title: str = "Events evidencing each control") -> alt.Chart:
    """Events per framework control (frame of ``views.control_coverage``)."""
    labelled = df.assign(label=df["framework"] + " " + df["control"])
    return (
        alt.Chart(labelled)
        .mark_bar(color=NORMAL)
        .encode(
            y=alt.Y("label:N", sort=list(labelled["label"]), title=None),
            x=alt.X("events:Q", title="events"),
        )
        .properties(title=title, width=WIDTH, height=22 * max(len(labelled), 1))
    )
