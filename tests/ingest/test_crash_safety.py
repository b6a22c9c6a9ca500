"""Crash safety: an ingest killed with SIGKILL at 20 random moments while it writes leaves the record
holding either nothing of the file or all of it, an intact database, and a verifying activity log."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handoffkit.demo import formats
from handoffkit.record import engagements, log
from handoffkit.record.store import Store
from tests.builders import ACTOR, DATA

RESULTS = 8_000
KILLS = 20


def big_sarif(path: Path) -> None:
    results = [
        {
            "rule": f"r{i % 50}",
            "title": f"Rule {i % 50}",
            "level": "warning",
            "score": 5.0,
            "cwe": "CWE-79",
            "message": f"tainted flow {i}",
            "uri": f"src/m{i}.py",
            "line": i % 500 + 1,
            "fingerprint": f"{i:016x}",
        }
        for i in range(RESULTS)
    ]
    path.write_bytes(
        formats.sarif([{"tool": "semgrep", "version": "1", "repo": "https://git.test/big", "results": results}])
    )


def start_ingest(db: Path, scan: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "handoffkit",
            "--db",
            f"sqlite:///{db}",
            "ingest",
            "scan",
            str(scan),
            "-e",
            "ACME",
            "--actor",
            "Crash Tester",
            "--progress",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def wait_for(proc: subprocess.Popen, marker: str) -> float:
    """Block until the child's progress shows ``marker``; returns that moment."""
    for line in proc.stderr:
        if marker in line:
            return time.monotonic()
    raise AssertionError(f"the ingest never reported {marker!r}")


WRITING, COMMITTED = ": writing", " new, "


def findings_of_file(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM findings").fetchone()[0]


@pytest.mark.slow
def test_sigkill_during_ingest_is_all_or_nothing(tmp_path):
    template = tmp_path / "template.db"
    store = Store(f"sqlite:///{template}")
    engagements.init(store, "ACME", DATA / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    store.dispose()
    scan = tmp_path / "big.sarif"
    big_sarif(scan)

    # One undisturbed run measures how long the write phase lasts.
    full = tmp_path / "full.db"
    shutil.copy(template, full)
    proc = start_ingest(full, scan)
    write_seconds = -wait_for(proc, WRITING) + wait_for(proc, COMMITTED)
    proc.stderr.read()
    assert proc.wait(timeout=300) == 0
    assert findings_of_file(full) == RESULTS

    rng = random.Random(20261128)
    outcomes = []
    for i in range(KILLS):
        db = tmp_path / f"kill{i}.db"
        shutil.copy(template, db)
        proc = start_ingest(db, scan)
        wait_for(proc, WRITING)
        time.sleep(rng.uniform(0, write_seconds))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
        held = findings_of_file(db)
        assert held in (0, RESULTS), f"kill {i}: {held} of {RESULTS} findings survived (half-loaded)"
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        reopened = Store(f"sqlite:///{db}")
        assert log.verify(reopened).ok, f"kill {i}: activity log does not verify"
        reopened.dispose()
        outcomes.append(held)
    # The kills must really land inside the transaction, not only after it.
    assert outcomes.count(0) >= KILLS // 4, outcomes
