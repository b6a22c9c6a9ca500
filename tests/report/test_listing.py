"""The CLI's lists: filters, --fields, --limit, ndjson, CSV booleans, and a table that folds instead of cutting."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.errors import ConfigError
from handoffkit.record import findings
from handoffkit.record.store import Store
from handoffkit.report import listing
from handoffkit.report.listing import Filters
from handoffkit.report.output import to_table
from tests.builders import ACTOR, add_findings, at, zap_scan


def _cli(store: Store, *args: str):
    return CliRunner().invoke(cli, ["--db", store.url, *args], catch_exceptions=False)


@pytest.fixture
def mixed(store: Store, engagement: str) -> Store:
    """Four findings: two high ZAP on shop.test (payments), a critical Trivy (platform), a low one owner-less."""
    at(store, 1)
    add_findings(store, engagement, 2, owner_team="payments", owner_name="Priya Raman")
    at(store, 5)
    add_findings(store, engagement, 1, severity="critical", tool="Trivy", owner_team="platform", state="routed")
    add_findings(store, engagement, 1, severity="low", title='=HYPERLINK("http://x")', kev=True)
    return store


def test_filters_combine_and_are_case_insensitive(mixed: Store, engagement: str) -> None:
    def ids(**kw) -> list[str]:
        return listing.finding_list(mixed, engagement, Filters(**kw))["finding_id"].tolist()

    assert ids() == ["HK-1", "HK-2", "HK-3", "HK-4"]
    assert ids(severity=("HIGH",)) == ["HK-1", "HK-2"]
    assert ids(severity=("high", "critical")) == ["HK-1", "HK-2", "HK-3"]
    assert ids(tool=("trivy",)) == ["HK-3"]
    assert ids(owner=("Payments",)) == ["HK-1", "HK-2"]
    assert ids(owner=("priya raman",)) == ["HK-1", "HK-2"]  # the person, not only the team
    assert ids(owner=("pay",)) == []  # a prefix is not an owner
    assert ids(state=("routed",)) == ["HK-3"]
    assert ids(state=("open",), severity=("low",)) == ["HK-4"]
    assert ids(state=("closed",)) == []
    assert ids(since=datetime(2026, 3, 5, tzinfo=UTC)) == ["HK-3", "HK-4"]
    assert ids(severity=("high",), since=datetime(2026, 3, 5, tzinfo=UTC)) == []
    assert ids(limit=2) == ["HK-1", "HK-2"]
    assert ids(limit=0) == []


def test_fields_choose_and_order_columns_and_an_unknown_one_is_named(mixed: Store, engagement: str) -> None:
    df = listing.finding_list(mixed, engagement, Filters(fields=("severity", "finding_id")))
    assert list(df.columns) == ["severity", "finding_id"]
    with pytest.raises(ConfigError, match="unknown field 'sevrity'; this list has finding_id"):
        listing.finding_list(mixed, engagement, Filters(fields=("sevrity",)))
    with pytest.raises(ConfigError, match="--severity does not apply"):
        listing.exception_list(mixed, engagement, Filters(severity=("high",)))


def test_fields_reach_every_record_column_now_and_as_of_an_earlier_instant(store: Store, engagement: str) -> None:
    """Columns outside the default list (batch_id, location, scores…) on request, typed, and as of T only
    what was true at T: a batch set after T does not leak into the list as of T."""
    at(store, 10)
    add_findings(store, engagement, 2, cvss_score=7.5, location="https://shop.test/a")
    before = at(store, 11)
    at(store, 12)
    with store.write() as conn:
        findings.change(
            conn, store, findings.get(conn, "HK-2")._mapping, {"batch_id": "batch-high-q2"}, type="finding_batched",
            actor=ACTOR,
        )  # fmt: skip
    wanted = Filters(fields=("finding_id", "batch_id", "location", "cvss_score", "number", "suppressed"))
    now = listing.finding_list(store, engagement, wanted)
    assert list(now.columns) == list(wanted.fields)
    assert now["batch_id"].isna().tolist() == [True, False] and now["batch_id"].iloc[1] == "batch-high-q2"
    assert now["location"].tolist() == ["https://shop.test/a"] * 2
    assert str(now["number"].dtype) == "Int64" and now["suppressed"].dtype == bool
    assert now["cvss_score"].dtype == "float64" and now["cvss_score"].tolist() == [7.5, 7.5]
    then = listing.finding_list(store, engagement, wanted, as_of=before)
    assert then["batch_id"].isna().all() and then["location"].tolist() == ["https://shop.test/a"] * 2
    replayed = listing.finding_list(store, engagement, wanted, as_of=datetime(2026, 3, 13, tzinfo=UTC))
    pd.testing.assert_frame_equal(replayed, now)  # rebuilt from the log: the same values, the same types
    assert list(listing.finding_list(store, engagement, Filters()).columns) == [*findings.PUBLIC, "ticket_keys"]
    for lookalike in ("batch-id", "Batch_ID", "payload", "row_hash"):
        with pytest.raises(ConfigError, match=f"unknown field '{lookalike}'.*on request .*batch_id"):
            listing.finding_list(store, engagement, Filters(fields=(lookalike,)))
    with pytest.raises(ConfigError, match="no findings column 'payload'"):
        findings.current(store, engagement, ["payload"])  # the Python API refuses it too
    out = _cli(store, "findings", "-e", engagement, "--fields", "finding_id,batch_id", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows == [["finding_id", "batch_id"], ["HK-1", ""], ["HK-2", "batch-high-q2"]]


def test_events_are_newest_first_filtered_and_limited_in_sql(mixed: Store, engagement: str) -> None:
    df = listing.event_list(mixed, engagement, Filters(limit=2), types=("finding_created",))
    assert df["finding_id"].tolist() == ["HK-4", "HK-3"]
    assert "row_hash" not in df.columns and "payload" not in df.columns
    every = listing.event_list(mixed, engagement, Filters())
    cut = every["occurred_at"].iloc[-1]  # the oldest event: as of its instant, the later ones are gone
    early = listing.event_list(mixed, engagement, Filters(), as_of=datetime.fromisoformat(cut))
    assert set(early["occurred_at"]) == {cut} and len(early) < len(every)
    assert listing.event_list(mixed, engagement, Filters(), finding_id="HK-3")["type"].tolist() == ["finding_created"]
    with pytest.raises(ConfigError, match="--owner does not apply to events"):
        listing.event_list(mixed, engagement, Filters(owner=("payments",)))


def test_cli_lists_in_every_format(mixed: Store, engagement: str) -> None:
    base = ("findings", "-e", engagement, "--severity", "low", "--fields", "finding_id,kev,title")
    nd = _cli(mixed, *base, "--format", "ndjson")
    assert nd.exit_code == 0, nd.output
    assert [json.loads(line) for line in nd.stdout.splitlines()] == [
        {"finding_id": "HK-4", "kev": True, "title": '=HYPERLINK("http://x")'}
    ]
    as_csv = _cli(mixed, *base, "--format", "csv")
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["finding_id", "kev", "title"],
        ["HK-4", "true", '\'=HYPERLINK("http://x")'],  # true/false, and formula-safe
    ]
    events = _cli(mixed, "events", "-e", engagement, "--limit", "1", "--format", "json")
    assert [e["finding_id"] for e in json.loads(events.stdout)] == ["HK-4"]
    since = _cli(mixed, "findings", "-e", engagement, "--since", "2026-03-05", "--format", "json")
    assert [f["finding_id"] for f in json.loads(since.stdout)] == ["HK-3", "HK-4"]
    bad = _cli(mixed, "findings", "-e", engagement, "--since", "yesterday")
    assert bad.exit_code == 2 and "'yesterday' is not a date" in bad.stderr


def test_tickets_and_exceptions_lists(store: Store, engagement: str, rec, exports) -> None:
    from tests.builders import route, ticket, validate

    ids = rec.web("https://shop.test", ("SQLi", 3), ("XSS", 3))
    validate(store, ids)
    route(store)
    exports.ingest("jira", ticket("jira", 1, [ids[0]]), ticket("jira", 2, [ids[1]]))
    out = _cli(store, "tickets", "-e", engagement, "--format", "json", "--fields", "key,finding_ids")
    assert out.exit_code == 0, out.output
    assert [t["finding_ids"] for t in json.loads(out.stdout)] == [ids[0], ids[1]]
    one = _cli(store, "tickets", "-e", engagement, "--limit", "1", "--format", "ndjson")
    assert len(one.stdout.splitlines()) == 1
    exc = _cli(store, "exception", "list", "-e", engagement, "--status", "active", "--format", "json")
    assert json.loads(exc.stdout) == []


def test_table_folds_long_text_instead_of_cutting_it() -> None:
    long = "Reflected cross-site scripting in the search box of the public shop " * 2
    folded = to_table([{"id": "HK-1", "title": long}], ["id", "title"], width=60)
    assert "…" not in folded
    assert " ".join(folded.split()).count("public shop") == 2  # every word is there, folded over lines
    assert max(len(line) for line in folded.splitlines()) <= 60
    piped = to_table([{"id": "HK-1", "title": long}], ["id", "title"])
    assert long.strip() in piped  # not a terminal: one line per row, nothing folded


def test_ingest_names_the_scanner_with_its_own_option(store: Store, engagement: str, tmp_path: Path) -> None:
    scan = zap_scan(tmp_path / "x.json", [1], "2026-03-01")
    wrong = _cli(store, "ingest", "scan", str(scan), "-e", engagement, "--actor", ACTOR, "--format", "zap")
    assert wrong.exit_code == 2 and "'zap' is not one of" in wrong.stderr  # --format is the output format
    ok = _cli(
        store, "ingest", "scan", str(scan), "-e", engagement, "--actor", ACTOR, "--scanner", "zap", "--format", "json"
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["files"][0]["format"] == "zap"
