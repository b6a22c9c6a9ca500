"""The analyst's frames are typed: instants as UTC datetimes, ordered severity and state, real numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

import handoffkit as hk
from handoffkit.record.store import Store
from tests.builders import add_findings, at


@pytest.fixture
def three(store: Store, engagement: str) -> Store:
    at(store, 1)
    add_findings(store, engagement, 1, severity="low", sla_due=date(2026, 4, 1))
    add_findings(store, engagement, 1, severity="critical", kev=True)
    add_findings(store, engagement, 1, severity="high")
    return store


def _check_types(df: pd.DataFrame) -> None:
    assert df["severity"].cat.ordered and list(df["severity"].cat.categories)[-1] == "critical"
    assert df["state"].cat.ordered
    assert str(df["first_seen"].dt.tz) == "UTC"
    assert df["kev"].dtype == bool and df["row_version"].dtype == "int64"
    assert df.loc[df["finding_id"] == "HK-1", "sla_due"].item() == date(2026, 4, 1)


def test_current_findings_are_typed(three: Store, engagement: str) -> None:
    df = hk.current_findings(three, engagement)
    _check_types(df)
    assert df[df["severity"] >= "high"]["finding_id"].tolist() == ["HK-2", "HK-3"]
    assert df.sort_values("severity", ascending=False)["finding_id"].tolist() == ["HK-2", "HK-3", "HK-1"]


def test_as_of_takes_a_date_text_an_instant_text_or_a_datetime_and_is_typed(three: Store, engagement: str) -> None:
    later = datetime(2030, 1, 1, tzinfo=UTC)
    by_datetime = hk.findings_as_of(three, engagement, later)
    _check_types(by_datetime)
    for spelled in ("2030-01-01", "2030-01-01T00:00:00Z", date(2030, 1, 1)):
        pd.testing.assert_frame_equal(hk.findings_as_of(three, engagement, spelled), by_datetime)
    assert hk.findings_as_of(three, engagement, "2020-01-01").empty
    with pytest.raises(ValueError):
        hk.findings_as_of(three, engagement, "last tuesday")
