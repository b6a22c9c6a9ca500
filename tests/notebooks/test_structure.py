"""The notebooks as stored: no outputs, one literal parameters cell, validated next, a matching params file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from handoffkit.report import pack
from tests.builders import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]


def test_every_view_has_a_notebook_and_the_analysts_have_theirs() -> None:
    assert set(NAMES) == {*pack.TITLES, "explore"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_one_parameters_cell_with_commented_literals_then_validation(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    source = cells[tagged[0]].source
    assignments = [node for node in ast.parse(source).body if isinstance(node, ast.Assign)]
    assert all(isinstance(node.value, ast.Constant) for node in assignments)  # literal defaults only
    assert all("#" in line for line in source.splitlines() if "=" in line)  # each one explained
    assert "views.parameters(db, engagement, period_start, period_end, as_of)" in cells[tagged[0] + 1].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_the_params_file_has_the_notebooks_keys(path: Path) -> None:
    declared = set(papermill.inspect_notebook(str(path)))
    own = {"thresholds"} if path.stem == pack.LEADERSHIP else set()  # the leadership tiles' thresholds
    assert declared == set(pack.NOTEBOOK_PARAMETERS) | own
    assert set(yaml.safe_load((ROOT / "params" / f"{path.stem}.yaml").read_text())) == declared


def test_the_report_params_file() -> None:
    doc = pack.load_params(ROOT / "params" / "quarterly.yaml")
    assert set(pack.NOTEBOOK_PARAMETERS) <= set(doc) and doc["notebooks"] == list(pack.TITLES)
    assert (ROOT / "params" / doc["notebooks_dir"]).resolve() == ROOT / "notebooks"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "engagement: DEMO\nperiod_start: '2026-07-01'\nperiod_end: '2026-09-30'\nnotebook: [x]\n",
            "notebook: unknown key; did you mean 'notebooks'",
        ),
        ("engagement: DEMO\nperiod_start: '2026-07-01'\n", "period_end: required"),
        (
            "engagement: DEMO\nperiod_start: '2026-07-01'\nperiod_end: '2026-09-30'\nnotebooks: [explorer]\n",
            "notebooks: unknown notebook 'explorer'",
        ),
        ("- a list\n", "expected a mapping"),
        (
            "engagement: DEMO\nperiod_start: '2026-07-01'\nperiod_end: '2026-09-30'\n"
            "thresholds: {open_criticals: {target: 1}}\n",
            "bad.yaml: thresholds: unknown figure 'open_criticals' \\(did you mean 'open_critical'",
        ),
        (
            "engagement: DEMO\nperiod_start: '2026-07-01'\nperiod_end: '2026-09-30'\n"
            "thresholds: {kev_overdue: {target: none}}\n",
            "kev_overdue.target: expected a number",
        ),
    ],
)
def test_bad_report_params_are_refused(tmp_path: Path, text: str, message: str) -> None:
    from handoffkit.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        pack.load_params(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_each_notebook_opens_on_the_kernel_the_makefile_registers(path: Path) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    registered = re.search(r"ipykernel install --sys-prefix --name (\S+) --display-name \"([^\"]+)\"", makefile)
    assert registered is not None, "the Makefile no longer registers the project's kernel"
    spec = nbformat.read(path, as_version=4).metadata["kernelspec"]
    assert (spec["name"], spec["display_name"]) == registered.groups()
