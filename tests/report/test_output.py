"""Progress on stderr: a bar on a terminal, lines when asked for elsewhere, silence in pipes by default."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.record import engagements
from handoffkit.record.store import Store
from handoffkit.report import log_export
from handoffkit.report.output import Activity
from tests.builders import ACTOR, add_findings, at, zap_scan
from tests.conftest import DATA


@pytest.mark.parametrize(("terminal", "asked", "mode"), [
    (False, None, "quiet"), (False, True, "lines"), (False, False, "quiet"),
    (True, None, "bar"), (True, True, "bar"), (True, False, "quiet"),
])  # fmt: skip
def test_the_mode_follows_the_terminal_and_the_option(
    monkeypatch: pytest.MonkeyPatch, terminal: bool, asked: bool | None, mode: str
) -> None:
    monkeypatch.setattr("sys.stderr", type("Err", (io.StringIO,), {"isatty": lambda self: terminal})())
    assert Activity.choose(3, asked).mode == mode


def test_the_bar_counts_files_and_shows_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    err = type("Err", (io.StringIO,), {"isatty": lambda self: True})()
    monkeypatch.setattr("sys.stderr", err)
    with Activity.choose(2, None) as activity:
        activity("a.json: parsing")
        activity.advance()
        activity._bar.refresh()
    drawn = err.getvalue()
    assert "1/2" in drawn and "eta" in drawn and "a.json: parsing" in drawn


def test_ingest_in_a_pipe_prints_no_progress_unless_asked(store: Store, engagement: str, tmp_path: Path) -> None:
    runner = CliRunner()
    first = zap_scan(tmp_path / "a.json", [1], "2026-03-01")
    second = zap_scan(tmp_path / "b.json", [2], "2026-03-02")
    base = ["--db", store.url, "ingest", "scan", str(first), "-e", engagement, "--actor", ACTOR]
    quiet = runner.invoke(cli, base, catch_exceptions=False)
    assert quiet.exit_code == 0 and quiet.stderr == ""
    lines = runner.invoke(cli, [*base[:4], str(second), *base[5:], "--progress"], catch_exceptions=False)
    assert lines.exit_code == 0 and f"{second}: parsing" in lines.stderr


def _bar(monkeypatch: pytest.MonkeyPatch) -> Activity:
    monkeypatch.setattr("sys.stderr", type("Err", (io.StringIO,), {"isatty": lambda self: True})())
    return Activity.choose(None, None)


def test_a_plain_callable_or_none_becomes_an_activity_and_an_activity_stays_itself() -> None:
    told: list[str] = []
    lines = Activity.of(told.append)
    lines("step one")
    lines.expect(3)
    lines.advance()  # no bar: counting is a no-op, the message still reaches the callable
    assert told == ["step one"] and lines.mode == "lines"
    assert Activity.of(None).mode == "quiet"
    bar = Activity(2, "quiet")
    assert Activity.of(bar) is bar


def test_the_log_export_bar_counts_the_range_it_writes_to_the_end(
    store: Store, engagement: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bar's total is the seq range of the export; it reaches it even when the range's last events
    are another engagement's (which this export does not write)."""
    at(store, 10)
    add_findings(store, engagement, 30)
    engagements.init(store, "OTHER", DATA / "policy.yaml", actor=ACTOR)  # the log's last events are OTHER's
    with _bar(monkeypatch) as activity:
        result = log_export.export_log(store, engagement, tmp_path / "log.csv", actor=ACTOR, progress=activity)
        task = activity._bar.tasks[0]
        assert result.rows < task.total  # OTHER's events are in the range but not in the file
        assert task.completed == task.total > result.last_seq >= 30  # to the end: seq 1 up to OTHER's last
        activity._bar.refresh()
    assert "eta" in sys.stderr.getvalue()
