"""The gate process: the same verdict as in-process, reached by the CLI's ingests, and never a way around
the gate (a dead, stale, foreign or unreachable gate means the ingest checks in its own process)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from handoffkit.cli import cli
from handoffkit.ingest import gate_server, pipeline, quality
from handoffkit.record import schema
from handoffkit.record.model import NormalisedFinding, ParseResult
from tests.builders import ACTOR, zap_scan

pytestmark = pytest.mark.slow  # each module run loads Great Expectations in a gate process


def _wait(until, what: str, seconds: float = 180.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _serving() -> dict | None:
    state = gate_server.status()
    return state if state and not state.get("loading") else None


def _gone(pid: int) -> bool:
    try:  # a gate this test process started is its child: reap it, or it lingers as a zombie
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def gate_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gate")
    path.chmod(0o700)
    return path


@pytest.fixture
def served(gate_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A gate serving from this module's private directory; stopped (and waited for) afterwards."""
    monkeypatch.setenv("HANDOFFKIT_GATE", "served")
    monkeypatch.setenv("HANDOFFKIT_GATE_DIR", str(gate_dir))
    gate_server.warm()
    state = _wait(_serving, "the gate to serve")
    yield state
    gate_server.stop()
    _wait(lambda: _gone(state["pid"]), "the gate to exit")


def _frame(**overrides: list) -> pd.DataFrame:
    rows = {
        "fingerprint": ["a", "b", "c"],
        "title": ["x", "y", "z"],
        "asset_ref": ["h", "h", "h"],
        "severity": ["high", "low", "medium"],
        "cves": ["CVE-2024-12345", "", ""],
        "cwes": ["CWE-79", "", "CWE-89 CWE-20"],
        "source_ref": ["line 2", "line 3", "line 4"],
    }
    return pd.DataFrame({**rows, **overrides}, columns=list(quality.GATE_COLUMNS))


def _comparable(result: quality.QualityResult) -> dict:
    doc = result.stored()
    return {
        "success": result.success,
        "failures": result.failures,
        "statistics": doc["statistics"],
        # ids GX gives each expectation when a suite is built: each process builds its own
        "results": [
            {**r, "expectation_config": {k: v for k, v in r["expectation_config"].items() if k != "id"}}
            for r in doc["results"]
        ],
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"fingerprint": ["a", "a", None], "severity": ["high", "urgent", "low"]},
        {"cves": ["CVE-21-1", "", ""], "cwes": ["79", "", ""], "title": ["", "y", "z"], "asset_ref": [None, "h", ""]},
    ],
    ids=["passing", "duplicates-and-bad-severity", "malformed-ids-and-empty-text"],
)
def test_the_gate_process_reaches_the_verdict_the_process_itself_reaches(served, overrides) -> None:
    frame = _frame(**overrides)
    before = served["checks"]
    there, here = gate_server.check_findings(frame), quality.check_findings(frame)
    assert _wait(_serving, "status")["checks"] == before + 1  # the gate answered, not a fallback
    assert _comparable(there) == _comparable(here)
    assert there.success is (not overrides)


def test_a_cli_ingest_is_checked_by_the_gate_process_and_a_refusal_there_writes_nothing(
    served, store, engagement, tmp_path, monkeypatch
) -> None:
    before = served["checks"]
    path = zap_scan(tmp_path / "scan.json", [1, 2], "2026-03-01")
    done = CliRunner().invoke(cli, ["--db", store.url, "ingest", "scan", str(path), "-e", engagement, "--actor", ACTOR])
    assert done.exit_code == 0, done.output
    assert _wait(_serving, "status")["checks"] == before + 1

    bad = NormalisedFinding(
        fingerprint="f1", title="t", asset_ref="https://shop.test", tool="zap", severity="high",
        raw_severity="High", cves=("CVE-21-1",), source_ref="site[0].alerts[0]", raw=b"{}",
    )  # fmt: skip
    from handoffkit.ingest import detect

    monkeypatch.setattr(detect, "parse_file", lambda *a, **k: ParseResult("zap", "zap", records=[bad]))
    with store.read() as conn:
        findings_before = conn.execute(select(func.count()).select_from(schema.findings)).scalar()
    [result] = pipeline.ingest_scan(
        store, engagement, [zap_scan(tmp_path / "bad.json", [3], "2026-03-02")], actor=ACTOR, served_gate=True
    )
    assert result.status == "failed" and "cves: values to match regex" in result.error
    assert "site[0].alerts[0]" in result.error
    assert _wait(_serving, "status")["checks"] == before + 2
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(schema.findings)).scalar() == findings_before


def test_a_gate_that_drops_the_request_means_an_in_process_check_with_a_warning(gate_dir, monkeypatch, caplog) -> None:
    """A process holding the gate's lock and socket that hangs up: the check still happens, here."""
    monkeypatch.setenv("HANDOFFKIT_GATE", "served")
    monkeypatch.setenv("HANDOFFKIT_GATE_DIR", str(gate_dir))
    where = gate_server.address()
    with open(where.with_suffix(".lock"), "a+") as lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        impostor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        where.unlink(missing_ok=True)
        impostor.bind(str(where))
        impostor.listen(1)
        try:
            import threading

            def hang_up() -> None:
                conn, _ = impostor.accept()
                conn.close()

            threading.Thread(target=hang_up, daemon=True).start()
            result = gate_server.check_findings(_frame(severity=["high", "urgent", "low"]))
        finally:
            impostor.close()
            where.unlink(missing_ok=True)
    assert not result.success and any("urgent" in f for f in result.failures)
    assert "did not answer" in caplog.text


def test_a_stale_socket_means_an_in_process_check_and_a_new_gate(gate_dir, monkeypatch) -> None:
    monkeypatch.setenv("HANDOFFKIT_GATE", "served")
    monkeypatch.setenv("HANDOFFKIT_GATE_DIR", str(gate_dir))
    where = gate_server.address()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    where.unlink(missing_ok=True)
    stale.bind(str(where))  # bound, never listening, then abandoned: a killed gate's leftover
    stale.close()
    assert where.exists() and gate_server.status() is None
    result = gate_server.check_findings(_frame(severity=["high", "urgent", "low"]))
    assert not result.success  # decided here, in this process
    state = _wait(_serving, "the gate the check started")
    assert state["checks"] == 0
    os.kill(state["pid"], signal.SIGKILL)  # killed: its socket stays behind
    _wait(lambda: _gone(state["pid"]) or None, "the gate to die")
    assert where.exists()
    assert gate_server.check_findings(_frame()).success
    restarted = _wait(_serving, "a new gate")
    assert restarted["pid"] != state["pid"]
    gate_server.stop()
    _wait(lambda: _gone(restarted["pid"]), "the gate to exit")


def test_a_directory_others_can_enter_is_never_used(tmp_path, monkeypatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("HANDOFFKIT_GATE", "served")
    monkeypatch.setenv("HANDOFFKIT_GATE_DIR", str(shared))
    assert gate_server.address() is None
    gate_server.warm()
    assert gate_server.check_findings(_frame()).success
    assert list(shared.iterdir()) == []  # no socket, no lock, no gate started


def test_a_request_that_is_not_json_gets_an_error_and_the_gate_serves_on(served) -> None:
    where = gate_server.address()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(where))
        gate_server._send(sock, b"\x80not json")
        answer = gate_server._receive(sock)
    assert b"error" in answer
    with pytest.raises(gate_server.GateUnavailable, match="unknown request"):
        gate_server._ask(where, {"op": "run", "code": "import os"})
    assert gate_server.check_findings(_frame()).success
    assert _serving()["pid"] == served["pid"]


def test_an_idle_gate_exits_and_removes_its_socket(gate_dir, monkeypatch) -> None:
    monkeypatch.setenv("HANDOFFKIT_GATE", "served")
    monkeypatch.setenv("HANDOFFKIT_GATE_DIR", str(gate_dir))
    monkeypatch.setenv("HANDOFFKIT_GATE_IDLE", "1")
    gate_server.warm()
    state = _wait(_serving, "the gate to serve")
    _wait(lambda: _gone(state["pid"]), "the idle gate to exit", seconds=30)
    assert not gate_server.address().exists() and gate_server.status() is None


def test_the_gate_is_named_after_the_code_it_runs(monkeypatch) -> None:
    first = gate_server.key()
    monkeypatch.setattr(gate_server.sys, "executable", "/another/python")
    assert gate_server.key() != first


def test_the_cli_says_whether_a_gate_runs(served, gate_dir) -> None:
    env = {"HANDOFFKIT_GATE": "served", "HANDOFFKIT_GATE_DIR": str(gate_dir)}
    shown = CliRunner().invoke(cli, ["gate", "status"], env=env)
    assert shown.exit_code == 0 and f"gate process {served['pid']} running since" in shown.output
    stopped = CliRunner().invoke(cli, ["gate", "stop"], env=env)
    assert stopped.exit_code == 0 and stopped.output.strip() == "stopped the gate process"
    _wait(lambda: _gone(served["pid"]), "the gate to exit")
    assert CliRunner().invoke(cli, ["gate", "status"], env=env).output.startswith("no gate process is running")


def test_the_cli_uses_a_gate_unless_told_not_to(monkeypatch) -> None:
    monkeypatch.delenv("HANDOFFKIT_GATE", raising=False)
    assert gate_server.enabled()
    for off in ("inprocess", " InProcess "):
        monkeypatch.setenv("HANDOFFKIT_GATE", off)
        assert not gate_server.enabled()


def test_stopping_a_gate_that_has_not_written_its_pid_signals_nobody(gate_dir, monkeypatch) -> None:
    """A lock held before the pid is in it reads as pid -1: kill(-1) would signal every process of the user."""
    import fcntl

    monkeypatch.setenv("HANDOFFKIT_GATE_DIR", str(gate_dir))
    where = gate_server.address()
    where.unlink(missing_ok=True)
    with open(where.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert gate_server.status() == {"pid": -1, "loading": True}
        assert gate_server.stop()  # and this test process is still here to see it
