"""Altair charts of the views' aggregated frames, shared by the notebooks.

Each function takes a frame a :mod:`handoffkit.report.views` (or :mod:`handoffkit.report.metrics` /
:mod:`handoffkit.workflow.sla`) function returned — already aggregated, a few hundred rows at most — and
returns an Altair chart; the notebooks render it with :func:`handoffkit.report.display.chart` (inline SVG).
Colours are fixed per series, so a series keeps its colour from one report to the next, and
downward calibrations are always the alarm colour.
"""

from __future__ import annotations

# isort: split
import handoffkit.record._jsonschema  # noqa: F401 - before Altair, which imports jsonschema

# isort: split
import altair as alt
import pandas as pd

ALARM = "#c0392b"
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


def routing_decisions(df: pd.DataFrame, title: str = "Findings created and routing decisions") -> alt.LayerChart:
    """Stacked routing decisions per period, with findings created as a line (frame of ``views.routing_decisions``)."""
    bars = (
        alt.Chart(df[df["series"] != "created"])
        .mark_bar()
        .encode(
            x=alt.X("period:O", title="period"),
            y=alt.Y("sum(count):Q", title="findings"),
            color=alt.Color("series:N", scale=_scale(_ROUTING_COLOURS), title="decision"),
            order=alt.Order("series:N"),
        )
    )
    line = (
        alt.Chart(df[df["series"] == "created"])
        .mark_line(point=True, color="#222222")
        .encode(x="period:O", y="sum(count):Q")
    )
    return alt.layer(bars, line).properties(title=title, width=WIDTH, height=HEIGHT)


def ticket_mapping(df: pd.DataFrame, title: str = "Ticket-to-finding mapping") -> alt.Chart:
    """One bar per mapping category (frame of ``views.ticket_mapping``); gaps in the alarm colour."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("category:N", sort=list(df["category"]), title=None),
            x=alt.X("count:Q", title="count"),
            color=alt.condition(alt.datum.category == "linked", alt.value("#1f4e8c"), alt.value(ALARM)),
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
            x=alt.X("period:O", title="period"),
            y=alt.Y("sum(count):Q", title="calibrations"),
            color=alt.Color("direction:N", scale=_scale(_DIRECTION_COLOURS), title="direction"),
        )
        .properties(title=title, width=WIDTH, height=HEIGHT)
    )


def closure_verification(
    df: pd.DataFrame, title: str = "Verified closures by evidence kind, and ticket closures observed"
) -> alt.LayerChart:
    """Stacked verified closures per period with ticket closures as a line (``views.closure_verification``)."""
    bars = (
        alt.Chart(df[df["series"] != "ticket_closed"])
        .mark_bar()
        .encode(
            x=alt.X("period:O", title="period"),
            y=alt.Y("sum(count):Q", title="findings"),
            color=alt.Color("series:N", scale=_scale(_CLOSURE_COLOURS), title="evidence"),
        )
    )
    line = (
        alt.Chart(df[df["series"] == "ticket_closed"])
        .mark_line(point=True, color=ALARM)
        .encode(x="period:O", y="sum(count):Q")
    )
    return alt.layer(bars, line).properties(title=title, width=WIDTH, height=HEIGHT)


def mttr(df: pd.DataFrame, title: str = "Mean days from validation to verified closure") -> alt.Chart:
    """Mean days per band (frame of ``metrics.mttr``; the ``all`` row is left out)."""
    bands = df[(df["band"] != "all") & df["mean_days"].notna()]
    return (
        alt.Chart(bands)
        .mark_bar(color="#1f4e8c")
        .encode(
            x=alt.X("band:N", sort=list(bands["band"]), title="severity"),
            y=alt.Y("mean_days:Q", title="days"),
        )
        .properties(title=title, width=WIDTH // 2, height=HEIGHT)
    )


def sla_compliance(df: pd.DataFrame, title: str = "SLA compliance per band and for KEV findings") -> alt.Chart:
    """Compliance % per band plus KEV (a :func:`handoffkit.report.views.sla_compliance` frame; bands without
    SLAs are left out)."""
    rows = df[(df["band"] != "all") & df["compliance_pct"].notna()]
    return (
        alt.Chart(rows)
        .mark_bar()
        .encode(
            x=alt.X("band:N", sort=list(rows["band"]), title=None),
            y=alt.Y("compliance_pct:Q", title="% not in breach", scale=alt.Scale(domain=[0, 100])),
            color=alt.condition(alt.datum.band == "kev", alt.value(ALARM), alt.value("#1f4e8c")),
        )
        .properties(title=title, width=WIDTH // 2, height=HEIGHT)
    )


def activity(df: pd.DataFrame, title: str = "Activity-log events per period") -> alt.Chart:
    """Events per period by outcome (frame of ``views.activity_by_period``)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("period:O", title="period"),
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
        .mark_bar(color="#1f4e8c")
        .encode(
            y=alt.Y("label:N", sort=list(labelled["label"]), title=None),
            x=alt.X("events:Q", title="events"),
        )
        .properties(title=title, width=WIDTH, height=22 * max(len(labelled), 1))
    )
