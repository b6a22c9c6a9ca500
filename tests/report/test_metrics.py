"""Remediation metrics on the small programme, whose every date is known (:func:`tests.builders.small_programme`)."""

from __future__ import annotations

import pandas as pd
import pytest

from handoffkit import reconcile
from handoffkit.record import replay
from handoffkit.record.store import Store
from handoffkit.report import metrics
from tests.builders import ACTOR, at


def test_mttr_counts_validation_to_verified_closure_per_band(programme: Store) -> None:
    with programme.read() as conn:
        out = metrics.mttr(conn, "ACME").set_index("band")
    # HK-1 (high) validated 2 March, verified 10 March; HK-2 (medium) validated 2 March, verified 12 March
    assert out.loc["high", ["closed", "mean_days"]].tolist() == [1, 8.0]
    assert out.loc["medium", ["closed", "mean_days"]].tolist() == [1, 10.0]
    assert out.loc["all", ["closed", "mean_days", "median_days"]].tolist() == [2, 9.0, 9.0]
    assert out.loc["low", "closed"] == 0 and pd.isna(out.loc["low", "mean_days"])


@pytest.mark.parametrize(
    ("start", "end", "as_of", "closed"),
    [
        ("2026-03-11", "2026-03-31", None, ["HK-2"]),  # only closures in the window count
        (None, None, "2026-03-11T00:00:00Z", ["HK-1"]),  # as of 11 March HK-2 was not closed yet
        ("2026-04-01", None, None, []),
    ],
)
def test_mttr_window_and_as_of(programme: Store, start, end, as_of, closed) -> None:
    with programme.read() as conn:
        rows = metrics.mttr_durations(conn, "ACME", start=start, end=end, as_of=replay.instant(as_of))
    assert rows["finding_id"].tolist() == closed


def test_verified_closures_by_kind_and_period(programme: Store) -> None:
    with programme.read() as conn:
        by_kind = metrics.closures_by_kind(conn, "ACME")
        per_day = metrics.verified_closures(conn, "ACME", period="day")
    assert by_kind == {"rescan": 0, "retest": 1, "commit": 1, "attestation": 0}
    assert per_day.to_dict(orient="records") == [
        {"period": "2026-03-10", "kind": "retest", "count": 1},
        {"period": "2026-03-12", "kind": "commit", "count": 1},
    ]


def test_reopen_rate_is_reopened_over_ever_verified(programme: Store) -> None:
    with programme.read() as conn:
        assert metrics.reopen_rate(conn, "ACME") == {"reopened": 1, "verified": 2, "rate_pct": 50.0}
        before = metrics.reopen_rate(conn, "ACME", as_of=replay.instant("2026-03-15"))
    assert before == {"reopened": 0, "verified": 2, "rate_pct": 0.0}


def test_reopen_rate_without_closures_is_not_measurable(store: Store, engagement: str) -> None:
    with store.read() as conn:
        assert metrics.reopen_rate(conn, engagement)["rate_pct"] is None


def test_reconciliation_trend_reads_each_run(programme: Store) -> None:
    at(programme, 21)
    reconcile.reconcile(programme, "ACME", record=True, actor=ACTOR)
    at(programme, 28)
    reconcile.reconcile(programme, "ACME", record=True, actor=ACTOR)
    with programme.read() as conn:
        trend = metrics.reconciliation_trend(conn, "ACME")
        windowed = metrics.reconciliation_trend(conn, "ACME", start="2026-03-25")
    assert trend["as_of"].str.slice(0, 10).tolist() == ["2026-03-21", "2026-03-28"]
    # HK-1 is reopened (not routed) and no ticket was ever raised: the one routing miss is none
    assert trend[["routing_misses", "findings", "tickets"]].values.tolist() == [[0, 3, 0], [0, 3, 0]]
    assert trend["drift_rate_pct"].isna().all()  # no tickets: no rate
    assert len(windowed) == 1


def test_count_events_in_a_window(programme: Store) -> None:
    with programme.read() as conn:
        assert metrics.count_events(conn, "ACME", "finding_created") == 3
        assert metrics.count_events(conn, "ACME", "finding_verified_closed", start="2026-03-11") == 1
        assert metrics.count_events(conn, "ACME", "finding_seen", end="2026-03-19") == 0
