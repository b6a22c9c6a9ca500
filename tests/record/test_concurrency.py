"""Concurrent writers: many processes appending to one log, two people editing one finding."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from handoffkit.errors import ConcurrentEditError
from handoffkit.record import engagements, findings, log, schema
from handoffkit.record.store import Store
from handoffkit.workflow import calibration
from tests.builders import ACTOR, DATA, add_findings, event_rows

from .workers import hammer

PROCESSES, PER_PROCESS = 8, 50


@pytest.mark.slow  # eight writer processes and a forkserver
def test_eight_processes_append_fifty_events_each(store: Store) -> None:
    """Half the processes log plain events, half change findings (two of them the same one); every
    append is its own transaction. SQLite queues them on BEGIN IMMEDIATE + the busy timeout,
    PostgreSQL on the chain-head row lock."""
    engagements.init(store, "ACME", DATA / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    ids = add_findings(store, "ACME", 3)
    targets = [None, None, None, None, ids[0], ids[1], ids[2], ids[2]]
    before = len(event_rows(store))

    ctx = multiprocessing.get_context("forkserver")  # a clean single-threaded parent, imports paid once
    ctx.set_forkserver_preload(["handoffkit.record.findings", hammer.__module__])
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=hammer, args=(store.url, w, PER_PROCESS, targets[w], start, results))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    start.set()
    reports = dict(results.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    assert reports == {w: [] for w in range(PROCESSES)}, "a writer failed (database is locked?)"
    rows = event_rows(store)
    assert [r["seq"] for r in rows] == list(range(1, before + PROCESSES * PER_PROCESS + 1))
    assert Counter(r["actor"] for r in rows[before:]) == {f"Worker {w}": PER_PROCESS for w in range(PROCESSES)}
    result = log.verify(store)
    assert result.ok, result.reason
    assert result.head_seq == before + PROCESSES * PER_PROCESS

    with store.read() as conn:
        versions = dict(conn.execute(select(schema.findings.c.finding_id, schema.findings.c.row_version)).all())
    assert versions == {ids[0]: 1 + PER_PROCESS, ids[1]: 1 + PER_PROCESS, ids[2]: 1 + 2 * PER_PROCESS}
    replayed = findings.rebuild(store, "ACME")
    assert {f: r["row_version"] for f, r in replayed.items()} == versions


def test_two_concurrent_edits_of_one_finding_exactly_one_wins(store: Store, engagement: str) -> None:
    [fid] = add_findings(store, engagement)
    with store.read() as conn:
        version = findings.get(conn, fid).row_version  # both analysts read the finding at this version
    go = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def edit(actor: str, severity: str) -> None:
        go.wait()
        try:
            outcome[actor] = calibration.calibrate(
                store, fid, severity=severity, reason=f"{actor} says {severity}", actor=actor, expected_version=version
            )
        except ConcurrentEditError as exc:
            outcome[actor] = exc

    threads = [threading.Thread(target=edit, args=a) for a in (("Ana Silva", "critical"), ("Ben Okoro", "low"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    winners = [a for a, r in outcome.items() if isinstance(r, dict)]
    losers = [a for a, r in outcome.items() if isinstance(r, ConcurrentEditError)]
    assert len(winners) == 1 and len(losers) == 1, outcome
    winner, loser = winners[0], losers[0]
    message = str(outcome[loser])
    assert fid in message and f"version {version + 1}, not {version}" in message and "reload" in message

    wanted = outcome[winner]["to"]
    with store.read() as conn:
        row = findings.get(conn, fid)
    assert (row.severity, row.row_version) == (wanted, version + 1)

    logged = [r for r in event_rows(store) if r["type"] == "severity_calibrated"]
    assert [(r["actor"], r["outcome"]) for r in logged] == [(winner, "success"), (loser, "failure")]
    assert message in logged[1]["payload"]
    assert log.verify(store).ok
    assert findings.rebuild(store, engagement)[fid]["severity"] == wanted


def test_a_stale_version_fails_even_without_a_race(store: Store, engagement: str) -> None:
    [fid] = add_findings(store, engagement)
    calibration.calibrate(store, fid, severity="medium", reason="first look", actor="Ana Silva", expected_version=1)
    with pytest.raises(ConcurrentEditError, match="at version 2, not 1"):
        calibration.calibrate(
            store, fid, severity="info", reason="stale notebook", actor="Ben Okoro", expected_version=1
        )
    with store.read() as conn:
        assert findings.get(conn, fid).severity == "medium"
