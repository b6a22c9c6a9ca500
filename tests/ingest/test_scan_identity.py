"""A scan is its content and its scan instant (issue 19, item 6).

Deterministic scanners (Semgrep, Trivy, SARIF without times) write the same bytes for the same results.
Such a file at a later scan instant is a rescan — a finding verified closed in between and present in it is
rediscovered and reopens — while the same bytes for the same instant stay a duplicate. A file that says
when it ran is identified by that instant, whatever ``--scanned-at`` says.
"""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.ingest import pipeline
from handoffkit.workflow import verification
from tests.builders import ACTOR, DATA, at, events, finding, route, validate, zap_scan

SEMGREP = DATA / "scans" / "semgrep_small.json"  # carries no scan instant


def test_the_same_bytes_of_a_later_scan_reopen_a_finding_closed_in_between(store, engagement, tmp_path):
    path = shutil.copy(SEMGREP, tmp_path / "semgrep.json")
    at(store, 2)
    [first] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR, scanned_at="2026-03-02T08:00:00Z")
    assert (first.status, first.scanned_at) == ("ok", "2026-03-02T08:00:00.000000Z") and first.new > 0
    fid = "HK-1"
    validate(store, [fid])
    route(store)
    at(store, 5)
    verification.verify(store, fid, kind="retest", evidence="run:semgrep-41 no longer injectable", actor=ACTOR)
    assert finding(store, fid)["state"] == "verified_closed"

    at(store, 9)
    [again] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR, scanned_at="2026-03-02T08:00:00Z")
    assert again.status == "duplicate" and finding(store, fid)["state"] == "verified_closed"
    [dup] = events(store, "ingest_duplicate")
    assert dup["data"]["scanned_at"] == "2026-03-02T08:00:00.000000Z"

    [rescan] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR, scanned_at="2026-03-09")
    assert (rescan.status, rescan.scanned_at, rescan.reopened) == ("ok", "2026-03-09T23:59:59.999999Z", 1)
    assert finding(store, fid)["state"] == "reopened"


def test_without_an_instant_the_ingest_time_is_the_scan_instant(store, engagement, tmp_path):
    path = shutil.copy(SEMGREP, tmp_path / "semgrep.json")
    at(store, 2)
    [first] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    at(store, 3)
    [second] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    assert (first.scanned_at, second.scanned_at) == ("2026-03-02T09:00:00.000000Z", "2026-03-03T09:00:00.000000Z")
    assert second.status == "ok" and second.seen_again == first.new


def test_a_file_that_says_when_it_ran_is_known_by_that_instant(store, engagement, tmp_path):
    path = zap_scan(tmp_path / "zap.json", [1, 2], "Mon, 2 Mar 2026 08:00:00")
    [first] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    assert first.scanned_at == "2026-03-02T08:00:00.000000Z"
    runner = CliRunner()
    args = ["--db", store.url, "ingest", "scan", str(path), "-e", engagement, "--actor", ACTOR, "--format", "json"]
    out = runner.invoke(cli, [*args, "--scanned-at", "2026-03-09"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["files"][0]["status"] == "duplicate"  # the file's own instant wins
    bad = runner.invoke(cli, [*args, "--scanned-at", "last tuesday"])
    assert bad.exit_code == 2 and "--scanned-at" in bad.output and "'last tuesday'" in bad.output
