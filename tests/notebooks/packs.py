"""Render the report pack of an engagement through the CLI, the way an analyst does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from click.testing import CliRunner

from handoffkit.cli import cli
from tests.builders import ACTOR, AS_OF, END, ROOT, START, copy_sqlite

NOTEBOOKS = ROOT / "notebooks"


@dataclass(frozen=True)
class Pack:
    url: str
    engagement: str
    params: Path
    out: Path
    output: str  # what the CLI printed


def params_file(path: Path, engagement: str, notebooks: list[str] | None = None) -> Path:
    doc = {
        "db": "sqlite:///does-not-exist.db",
        "engagement": engagement,
        "period_start": START,
        "period_end": END,
        "as_of": AS_OF,
        "notebooks_dir": str(NOTEBOOKS),
    }
    if notebooks:
        doc["notebooks"] = notebooks
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def render(url: str, params: Path, out: Path) -> str:
    return render_args(url, params, out)


def render_args(url: str, params: Path, out: Path, *extra: str) -> str:
    """``handoffkit report`` with further options (``--pdf``); returns what it printed."""
    result = CliRunner().invoke(
        cli, ["--db", url, "report", "--params", str(params), "--out", str(out), "--actor", ACTOR, *extra]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def private_copy(pack: Pack, directory: Path) -> str:
    """A copy of the pack's record, for a test that writes to it: the pack is shared by every worker and
    read by the others' tests (a test that renders again or verifies the log appends events)."""
    return copy_sqlite(pack.url, directory / "pack.db")
