"""The five views on the demo, on both backends: aggregated, as-of aware, consistent with each other; and SLA
compliance on the small programme and on the demo."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from handoffkit.errors import ConfigError
from handoffkit.record import replay, schema
from handoffkit.record.store import Store
from handoffkit.report import controls, display, facts, views
from tests.builders import AS_OF, END, START


def count(store: Store, type_: str, *conditions) -> int:
    ev = schema.events.c
    with store.read() as conn:
        return conn.execute(
            select(func.count()).where(ev.engagement == "DEMO", ev.type == type_, ev.outcome == "success", *conditions)
        ).scalar()


@pytest.mark.parametrize("period", ["week", "month", "quarter"])
def test_routing_decisions_add_up_to_the_log_in_every_granularity(demo_store: Store, period: str) -> None:
    df = views.routing_decisions(demo_store, "DEMO", as_of=AS_OF, period=period)
    assert set(df["series"]) <= set(views.ROUTING_SERIES) and df.columns.tolist() == ["period", "series", "count"]
    assert df.loc[df["series"] == "created", "count"].sum() == count(demo_store, "finding_created")
    assert df.loc[df["series"] != "created", "count"].sum() == count(demo_store, "finding_routed")
    assert len(df) <= 60 * len(views.ROUTING_SERIES)  # aggregated: a chart never sees raw rows


def test_routing_decisions_respect_the_window_and_as_of(demo_store: Store) -> None:
    ev = schema.events.c
    window = views.routing_decisions(demo_store, "DEMO", start=START, end=END, as_of=AS_OF)
    assert set(window["period"]) == {"2026-07", "2026-08", "2026-09"}
    early = views.routing_decisions(demo_store, "DEMO", as_of="2025-12-31")
    assert early["period"].max() == "2025-12"
    assert early.loc[early["series"] == "created", "count"].sum() == count(
        demo_store, "finding_created", ev.occurred_at <= "2025-12-31T23:59:59.999999Z"
    )


def test_ticket_mapping_matches_reconciliation(demo_db, demo_store: Store) -> None:
    _, summary = demo_db
    df = views.ticket_mapping(demo_store, "DEMO", as_of=AS_OF).set_index("category")["count"]
    planted = summary["planted"]
    assert df["routing_misses"] == len(planted["routing_misses"])
    assert df["orphan_tickets"] == len(planted["orphan_tickets"])
    assert df["linked"] > 0


def test_linked_open_counts_the_same_from_the_tables_and_from_the_replayed_record(demo_store: Store) -> None:
    """On a settled instant the count comes from the current tables; the replayed frame must agree."""
    with demo_store.read() as conn:
        when = replay.instant(AS_OF)
        assert replay.settled(conn, "DEMO", when)
        from_tables = views.linked_open(conn, "DEMO", when)
        from_frame = views.linked_open(conn, "DEMO", when, replay.state_frame(conn, "DEMO", when))
    assert from_tables == from_frame > 0


def test_ticket_mapping_as_of_an_earlier_instant(demo_store: Store) -> None:
    now = views.ticket_mapping(demo_store, "DEMO", as_of=AS_OF).set_index("category")["count"]
    then = views.ticket_mapping(demo_store, "DEMO", as_of="2026-01-31").set_index("category")["count"]
    assert then["linked"] < now["linked"] and then["closure_misses"] <= now["closure_misses"]


def test_mapping_gaps_list_the_ids_behind_the_counts(demo_store: Store) -> None:
    counts = views.ticket_mapping(demo_store, "DEMO", as_of=AS_OF).set_index("category")["count"]
    misses = views.mapping_gaps(demo_store, "DEMO", "routing_misses", as_of=AS_OF, limit=None)
    orphans = views.mapping_gaps(demo_store, "DEMO", "orphan_tickets", as_of=AS_OF)
    assert len(misses) == counts["routing_misses"] and set(misses["disposition"]) == {"ticket"}
    assert len(orphans) == counts["orphan_tickets"] and (orphans["finding_ids"] != "").all()
    with pytest.raises(ConfigError, match="did you mean 'routing_misses'"):
        views.mapping_gaps(demo_store, "DEMO", "routing_miss", as_of=AS_OF)


def test_severity_drift_rows_show_the_tickets_drifted_priority(demo_store: Store) -> None:
    drift = views.mapping_gaps(demo_store, "DEMO", "severity_drift", as_of=AS_OF, limit=None)
    counts = views.ticket_mapping(demo_store, "DEMO", as_of=AS_OF).set_index("category")["count"]
    assert len(drift) == counts["severity_drift"] > 0
    bands = drift["ticket_priority"].str.extract(r"\((\w+)\)$")[0]
    assert bands.notna().all() and (bands != drift["severity"]).all()  # each row shows the band that differs


def test_severity_calibration_history_and_downward_drift(demo_store: Store) -> None:
    history = views.severity_calibration(demo_store, "DEMO", as_of=AS_OF)
    assert len(history) == count(demo_store, "severity_calibrated")
    assert history["seq"].is_monotonic_increasing and history["actor"].str.len().gt(0).all()
    down = views.severity_calibration(demo_store, "DEMO", as_of=AS_OF, direction="down", limit=5)
    assert len(down) <= 5 and set(down["direction"]) == {"down"} and down["seq"].is_monotonic_decreasing
    rank = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
    assert (down["from"].map(rank) > down["to"].map(rank)).all()
    trend = views.calibration_trend(demo_store, "DEMO", as_of=AS_OF, period="quarter")
    assert trend["count"].sum() == len(history)
    assert trend.loc[trend["direction"] == "down", "count"].sum() == (history["direction"] == "down").sum()


def test_closure_verification_by_kind_and_ticket_closures(demo_store: Store) -> None:
    df = views.closure_verification(demo_store, "DEMO", as_of=AS_OF)
    assert df.loc[df["series"] != "ticket_closed", "count"].sum() == count(demo_store, "finding_verified_closed")
    assert df.loc[df["series"] == "ticket_closed", "count"].sum() == count(demo_store, "ticket_closed_observed")
    summary = views.closure_summary(demo_store, "DEMO", start=START, end=END, as_of=AS_OF).set_index("closure")
    mapping = views.ticket_mapping(demo_store, "DEMO", as_of=AS_OF).set_index("category")["count"]
    assert summary.loc["administrative", "count"] == mapping["closure_misses"]


def test_activity_and_control_coverage(demo_store: Store) -> None:
    df = views.activity(demo_store, "DEMO", start=START, end=END, as_of=AS_OF)
    ev = schema.events.c
    with demo_store.read() as conn:
        expected = conn.execute(
            select(func.count()).where(
                (ev.engagement == "DEMO") | ev.engagement.is_(None), *replay.window(START, END, replay.instant(AS_OF))
            )
        ).scalar()
    assert df["count"].sum() == expected
    assert (df["iso27001"] != "").all()  # every event type in the demo is mapped
    coverage = views.control_coverage(df).set_index(["framework", "control"])["events"]
    assert coverage[("iso27001", "A.8.8")] == expected
    assert coverage[("nist_800_53", "RA-5")] >= df.loc[df["type"] == "finding_created", "count"].sum()

    by_type = views.events_by_type(df)
    assert by_type["events"].sum() == expected
    assert (by_type["events"] == by_type[list(views.OUTCOMES)].sum(axis=1)).all()
    assert by_type["events"].is_monotonic_decreasing


def test_events_by_control_names_every_control_zero_included() -> None:
    only_scans = pd.DataFrame(
        [("scan_ingested", "", "success", 3, "A.8.8", "CC7.1", "11.3", "RA-5"),
         ("scan_refused", "", "denied", 1, "A.8.8", "CC7.1", "11.3", "RA-5")],
        columns=["type", "detail", "outcome", "count", *controls.FRAMEWORKS],
    )  # fmt: skip
    by_control = views.events_by_control(only_scans).set_index(["framework", "control"])["events"]
    assert len(by_control) == sum(len(named) for named in controls.ALL)
    assert by_control[("SOC 2", "CC7.1")] == 4 and by_control[("SOC 2", "CC8.1")] == 0
    assert by_control[("NIST SP 800-53", "CM-3")] == 0
    by_type = views.events_by_type(only_scans)
    assert by_type.to_dict("records")[1] == {
        "type": "scan_refused",
        "events": 1,
        "success": 0,
        "denied": 1,
        "failure": 0,
    }


def test_recent_summary_shows_no_hash_and_one_subject(demo_store: Store) -> None:
    recent = views.recent_events(demo_store, "DEMO", start=START, end=END, as_of=AS_OF, limit=5)
    shown = views.recent_summary(recent)
    assert list(shown.columns) == ["seq", "occurred_at", "actor", "type", "subject", "outcome"]
    assert len(shown) == 5 and not shown.map(lambda v: len(str(v)) == 64).any().any()


@pytest.mark.parametrize(
    "build",
    [
        lambda s: views.routing_decisions(s, "DEMO", as_of=AS_OF, period="week"),
        lambda s: views.closure_verification(s, "DEMO", as_of=AS_OF),
        lambda s: views.calibration_trend(s, "DEMO", as_of=AS_OF),
        lambda s: views.activity_by_period(s, "DEMO", as_of=AS_OF),
    ],
    ids=["routing", "closure", "calibration", "activity"],
)
def test_the_view_frames_chart_as_inline_svg(demo_store: Store, build) -> None:
    import altair as alt

    df = build(demo_store)
    svg = display.chart(alt.Chart(df).mark_bar().encode(x="period:O", y="sum(count):Q"))._repr_svg_()
    assert svg.startswith("<svg")


def test_pivot_is_one_row_per_period(demo_store: Store) -> None:
    df = views.routing_decisions(demo_store, "DEMO", start=START, end=END, as_of=AS_OF)
    wide = views.pivot(df)
    assert wide["period"].tolist() == ["2026-07", "2026-08", "2026-09"]
    assert wide.drop(columns="period").to_numpy().sum() == df["count"].sum()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period_start": "2026-13-01"}, r"period_start='2026-13-01': expected a date YYYY-MM-DD"),
        ({"period_start": "2026-10-01"}, "period_start 2026-10-01 is after period_end 2026-09-30"),
        ({"engagement": "DEMOO"}, r"engagement='DEMOO': no such engagement .*did you mean 'DEMO'"),
        ({"as_of": "yesterday"}, r"as_of='yesterday': expected YYYY-MM-DD or an ISO 8601 instant"),
        ({"db": "sqlite:///nowhere/record.db"}, r"no database file .*nowhere/record\.db \(run `make demo`"),
    ],
)
def test_parameters_are_validated(demo_db, kwargs, message) -> None:
    args = {"db": demo_db[0], "engagement": "DEMO", "period_start": START, "period_end": END, "as_of": AS_OF}
    with pytest.raises(ConfigError, match=message):
        views.parameters(**{**args, **kwargs})


def test_parameters_pin_the_instant(demo_db) -> None:
    p = views.parameters(demo_db[0], "DEMO", START, END, AS_OF)
    assert p.as_of == "2026-09-30T23:59:59.999999Z" and str(p.period_start) == START


def test_behind_a_figure_are_as_many_rows_as_the_figure(demo_copy: Store) -> None:
    f = facts.compute(demo_copy, "DEMO", START, END, AS_OF)
    for figure in facts.FIGURES:
        rows = facts.behind(demo_copy, "DEMO", figure, start=START, end=END, as_of=AS_OF)
        assert len(rows) == getattr(f, figure), figure
    with pytest.raises(ConfigError, match="did you mean 'kev_open'"):
        facts.behind(demo_copy, "DEMO", "kev_opened", as_of=AS_OF)


def test_compliance_on_the_small_programme(programme: Store) -> None:
    out = views.sla_compliance(programme, "ACME", "2026-03-25").set_index("band")
    # HK-1 reopened (due 1 May), HK-2 closed by commit in time, HK-3 routed (due late August)
    assert out.loc["all", ["with_sla", "met", "breached", "within"]].tolist() == [3, 1, 0, 2]
    assert out.loc["all", "compliance_pct"] == 100.0


def test_compliance_on_the_demo_covers_every_finding(demo_store: Store) -> None:
    out = views.sla_compliance(demo_store, "DEMO", "2026-09-30").set_index("band")
    bands = ["critical", "high", "medium", "low", "info"]
    assert out.loc["all", "findings"] == out.loc[bands, "findings"].sum() > 0
    assert 0 < out.loc["kev", "findings"] < out.loc["all", "findings"]
    assert out.loc["info", "with_sla"] <= 2  # the policy gives info no SLA (only later re-calibrations keep one)


def test_a_quiet_week_is_a_zero_not_a_missing_bar(demo_store: Store) -> None:
    weekly = views.activity_by_period(demo_store, "DEMO", start=START, end=END, as_of=AS_OF, period="week")
    weeks = sorted(weekly["period"].unique())
    assert weeks[0] <= START and weeks[-1] >= str(pd.Timestamp(END) - pd.Timedelta(days=6))[:10]
    gaps = pd.to_datetime(pd.Series(weeks)).diff().dropna()
    assert (gaps == pd.Timedelta(days=7)).all()  # every week present
    assert len(weekly) == len(weeks) * len(views.OUTCOMES)  # every outcome in every week, zero included


def test_ticket_updates_handed_over_after_an_instant_are_still_owed_as_of_it(demo_store: Store) -> None:
    """The demo hands July's re-scorings over on 7 July: as of the 6th they are owed, none handed over in
    July; as of the end of the period they are handed over and no longer owed (the last month's are)."""
    july = views.ticket_updates(demo_store, "DEMO", handed_over=True, start=START, end=END, as_of=AS_OF)
    assert len(july) and set(july["occurred_at"].str.slice(0, 10)) == {"2026-07-07"}
    assert set(july["cause"]) == {"recalibration"} and set(july["via"]) == {"payload"}
    before = views.ticket_updates(demo_store, "DEMO", as_of="2026-07-06")
    key = ["finding_id", "ticket_key", "field"]
    handed = set(july[key].itertuples(index=False, name=None))
    assert handed <= set(before[key].itertuples(index=False, name=None))
    assert views.ticket_updates(demo_store, "DEMO", handed_over=True, start=START, as_of="2026-07-06").empty
    after = views.ticket_updates(demo_store, "DEMO", as_of=AS_OF)
    assert len(after) and not handed & set(after[key].itertuples(index=False, name=None))
    summary = views.ticket_updates_summary(demo_store, "DEMO", as_of=AS_OF)
    assert summary["owed"].sum() == len(after)
