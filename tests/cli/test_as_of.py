"""``handoffkit findings --as-of``: the record rebuilt from the log at an earlier instant."""

from __future__ import annotations

import json

from handoffkit.cli import parse_instant
from handoffkit.record import findings
from handoffkit.record.store import Store
from handoffkit.report.output import to_json


def test_as_of_mid_period_has_fewer_findings_and_matches_the_library(demo_db: tuple[str, dict], run) -> None:
    url = demo_db[0]
    result = run("--db", url, "findings", "-e", "DEMO", "--as-of", "2026-03-31", "--format", "json")
    assert result.exit_code == 0, result.stderr
    then = json.loads(result.stdout)
    now = json.loads(run("--db", url, "findings", "-e", "DEMO", "--format", "json").stdout)
    assert 0 < len(then) < len(now)

    store = Store(url)
    try:
        expected = findings.as_of(store, "DEMO", parse_instant("2026-03-31"))
    finally:
        store.dispose()
    assert then == json.loads(to_json(expected))
    # the end of 31 March (UTC) is included: findings first seen on 1 April are not
    assert max(r["first_seen"] for r in then) < "2026-04-01T00:00:00.000000Z"
    assert any(r["first_seen"] >= "2026-04-01" for r in now)
    # the past is not the present: some finding found by then had a different state then
    by_id = {r["finding_id"]: r for r in now}
    assert any(r["state"] != by_id[r["finding_id"]]["state"] for r in then)


def test_as_of_an_instant_with_an_offset(demo_db: tuple[str, dict], run) -> None:
    """``2026-04-01T05:00:00+05:30`` is 23:30 UTC on 31 March: the same record as the end of that day."""
    url = demo_db[0]
    day = run("--db", url, "findings", "-e", "DEMO", "--as-of", "2026-03-31", "--format", "json")
    instant = run("--db", url, "findings", "-e", "DEMO", "--as-of", "2026-04-01T05:00:00+05:30", "--format", "json")
    assert instant.exit_code == 0
    assert json.loads(instant.stdout) == json.loads(day.stdout)


def test_a_bad_as_of_is_refused(demo_db: tuple[str, dict], run) -> None:
    result = run("--db", demo_db[0], "findings", "-e", "DEMO", "--as-of", "last tuesday")
    assert result.exit_code == 2 and result.stdout == ""
    assert "'last tuesday' is not a date (YYYY-MM-DD) or ISO 8601 instant" in result.stderr
