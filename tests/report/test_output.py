"""Progress on stderr: a bar on a terminal, lines when asked for elsewhere, silence in pipes by default."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.record.store import Store
from handoffkit.report.output import Activity
from tests.builders import ACTOR, zap_scan


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
