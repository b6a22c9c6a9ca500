"""Session fixtures: the report set rendered once for a copy of the demo, once for the hostile engagement.

Rendering executes six notebooks (a kernel each), so each pack is rendered once per session and the
tests read it. The demo pack is rendered through the CLI (``handoffkit --db … report``), with a
parameter file whose own ``db`` names a file that does not exist: the ``--db`` override is exercised
by every test that reads the pack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from views.builders import AS_OF, END, START, copy_sqlite

from handoffkit.cli import cli

from . import hostile

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ACTOR = "Ana Silva"


@dataclass(frozen=True)
class Pack:
    url: str
    engagement: str
    params: Path
    out: Path
    output: str  # what the CLI printed


def params_file(path: Path, engagement: str, notebooks: list[str] | None = None) -> Path:
    doc = {"db": "sqlite:///does-not-exist.db", "engagement": engagement, "period_start": START,
           "period_end": END, "as_of": AS_OF, "notebooks_dir": str(NOTEBOOKS)}
    if notebooks:
        doc["notebooks"] = notebooks
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def render(url: str, params: Path, out: Path) -> str:
    result = CliRunner().invoke(cli, ["--db", url, "report", "--params", str(params), "--out", str(out),
                                      "--actor", ACTOR])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="session")
def demo_pack(demo_sqlite: tuple[str, dict], tmp_path_factory: pytest.TempPathFactory) -> Pack:
    work = tmp_path_factory.mktemp("demo-pack")
    url = copy_sqlite(demo_sqlite[0], work / "demo.db")
    params = params_file(work / "quarterly.yaml", "DEMO")
    output = render(url, params, work / "out")
    return Pack(url, "DEMO", params, work / "out", output)


@pytest.fixture(scope="session")
def hostile_pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    work = tmp_path_factory.mktemp("hostile-pack")
    url = f"sqlite:///{work / 'hostile.db'}"
    engagement = hostile.build(url, work / "inputs")
    params = params_file(work / "quarterly.yaml", engagement)
    output = render(url, params, work / "out")
    return Pack(url, engagement, params, work / "out", output)
