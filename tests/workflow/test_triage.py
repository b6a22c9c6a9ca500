"""The triage gate: a person validates a finding before anything routes it (issue 4, "Triage gate")."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.errors import RefusedError
from handoffkit.workflow import triage, verification
from tests.builders import ACTOR, SHOP, events, finding, route, snapshot, validate


def test_nothing_not_validated_is_ever_routed(store, rec):
    pending, valid, fp, dup, regressed = rec.web(
        SHOP,
        ("Pending XSS", 3),
        ("Validated XSS", 3),
        ("Test fixture XSS", 3),
        ("Same XSS again", 3),
        ("Regressed XSS", 3),
    )
    validate(store, [valid, regressed])
    triage.triage(store, [fp], "false_positive", reason="matched a test fixture", actor=ACTOR)
    triage.triage(store, [dup], "duplicate", duplicate_of=valid, reason="same root cause", actor=ACTOR)
    route(store)
    verification.verify(store, regressed, kind="retest", evidence="run:retest-1 fixed", actor=ACTOR)
    # The next scan finds it again: reopened, awaiting a new triage decision.
    rec.web(
        SHOP,
        ("Pending XSS", 3),
        ("Validated XSS", 3),
        ("Test fixture XSS", 3),
        ("Same XSS again", 3),
        ("Regressed XSS", 3),
        generated="Mon, 9 Mar 2026 08:00:00",
    )
    assert finding(store, regressed)["state"] == "reopened"
    routed_before = {e["finding_id"] for e in events(store, "finding_routed")}

    result = route(store)

    assert finding(store, valid)["state"] == "routed"
    assert routed_before == {valid, regressed}
    assert {e["finding_id"] for e in events(store, "finding_routed")} == {valid, regressed}  # nothing new
    states = {fid: (finding(store, fid)["state"], finding(store, fid)["disposition"]) for fid in (pending, fp, dup)}
    assert states == {pending: ("new", None), fp: ("false_positive", None), dup: ("duplicate", None)}
    assert finding(store, regressed)["state"] == "reopened"
    assert result.changes == []
    assert (result.held_back["not_validated"], result.held_back["false_positive"], result.held_back["duplicate"]) == (
        2,
        1,
        1,
    )


def test_triage_by_id_records_the_decision_and_starts_the_sla_clock(store, rec, clock):
    [fid] = rec.web(SHOP, ("Reflected XSS", 3))
    assert finding(store, fid)["validated_at"] is None

    out = triage.triage(store, [fid], "validated", reason="  exploitable from the login page ", actor=" Ana  Silva ")

    assert out == [{"finding_id": fid, "triage": "validated", "state": "validated"}]
    row = finding(store, fid)
    assert (row["triage"], row["state"], row["validated_at"]) == ("validated", "validated", clock.fixed)
    [ev] = events(store, "finding_triaged", finding_id=fid)
    assert (ev["actor"], ev["outcome"], ev["state"]) == ("Ana Silva", "success", "validated")
    assert ev["data"]["as"] == "validated" and ev["data"]["reason"] == "exploitable from the login page"
    assert ev["data"]["from"] == {"triage": "pending", "state": "new", "validated_at": None}


def test_triage_by_filter_selects_untriaged_findings_only(store, rec):
    web = rec.web(SHOP, ("Filter high A", 3), ("Filter high B", 3), ("Filter low", 1))
    host = rec.host("db-1.corp.test", {"name": "Filter host high", "severity": 3})
    tool = finding(store, web[0])["tool"]
    rule = finding(store, web[2])["rule_ref"]

    assert triage.select_ids(store, "ACME", tool=tool) == web
    assert triage.select_ids(store, "ACME", severity="high") == [*web[:2], *host]
    assert triage.select_ids(store, "ACME", asset="db-?.corp.*") == host
    assert triage.select_ids(store, "ACME", rule=rule) == [web[2]]
    assert triage.select_ids(store, "ACME", tool=tool, severity="high") == web[:2]

    validate(store, triage.select_ids(store, "ACME", tool=tool, severity="high"))
    assert triage.select_ids(store, "ACME", tool=tool) == [web[2]]  # decided ones drop out of the filter
    with pytest.raises(RefusedError, match="--severity 'severe'"):
        triage.select_ids(store, "ACME", severity="severe")


def test_duplicate_needs_duplicate_of(store, rec):
    original, copy = rec.web(SHOP, ("Original CSRF", 2), ("Copy CSRF", 2))
    before = snapshot(store)

    with pytest.raises(RefusedError, match="needs --duplicate-of"):
        triage.triage(store, [copy], "duplicate", reason="same", actor=ACTOR)
    with pytest.raises(RefusedError, match="must be another finding"):
        triage.triage(store, [copy], "duplicate", duplicate_of=copy, reason="same", actor=ACTOR)
    with pytest.raises(RefusedError, match="only goes with --as duplicate"):
        triage.triage(store, [copy], "validated", duplicate_of=original, reason="same", actor=ACTOR)

    after = snapshot(store)
    assert after["findings_versions"] == before["findings_versions"]
    assert after["events"] == before["events"] + 3
    denied = events(store, "finding_triaged", outcome="denied")
    assert len(denied) == 3 and all(e["actor"] == ACTOR for e in denied)
    assert finding(store, copy)["state"] == "new"

    triage.triage(store, [copy], "duplicate", duplicate_of=original, reason="same token", actor=ACTOR)
    row = finding(store, copy)
    assert (row["triage"], row["state"]) == ("duplicate", "duplicate")
    [ev] = events(store, "finding_triaged", finding_id=copy, outcome="success")
    assert ev["data"]["duplicate_of"] == original


def test_triage_cli_by_id_and_by_filter(store, rec):
    one, two, low = rec.web(SHOP, ("CLI XSS one", 3), ("CLI XSS two", 3), ("CLI low", 1))
    runner = CliRunner()
    base = ["--db", store.url, "--format", "json"]

    by_id = runner.invoke(cli, [*base, "triage", one, "--as", "validated", "--reason", "seen it", "--actor", ACTOR])
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.output) == [{"finding_id": one, "triage": "validated", "state": "validated"}]

    by_filter = runner.invoke(
        cli,
        [
            *base,
            "triage",
            "-e",
            "ACME",
            "--severity",
            "high",
            "--as",
            "false_positive",
            "--reason",
            "scanner noise",
            "--actor",
            ACTOR,
        ],
    )
    assert by_filter.exit_code == 0, by_filter.output
    assert [r["finding_id"] for r in json.loads(by_filter.output)] == [two]  # `one` is triaged already
    assert (finding(store, one)["state"], finding(store, two)["state"], finding(store, low)["state"]) == (
        "validated",
        "false_positive",
        "new",
    )

    dup = runner.invoke(cli, [*base, "triage", low, "--as", "duplicate", "--reason", "same", "--actor", ACTOR])
    assert dup.exit_code == 5
    assert "--duplicate-of" in dup.output and finding(store, low)["state"] == "new"

    both = runner.invoke(
        cli, [*base, "triage", low, "-e", "ACME", "--tool", "x", "--as", "validated", "--reason", "r", "--actor", ACTOR]
    )
    assert both.exit_code == 2 and "not both" in both.output
    no_engagement = runner.invoke(
        cli, [*base, "triage", "--severity", "low", "--as", "validated", "--reason", "r", "--actor", ACTOR]
    )
    assert no_engagement.exit_code == 2 and "needs --engagement" in no_engagement.output
