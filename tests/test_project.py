"""The project frame a newcomer relies on: the two README commands, CI, the conda mirror, notebooks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_exactly_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```[a-z]*\n(.*?)```", text, re.S).group(1)
    assert [line.strip() for line in first_block.strip().splitlines()] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command_and_refuses_skips():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    for reason in ("PostgreSQL unavailable", "Chromium unavailable", "corpus unavailable"):
        assert reason in ci


def _name(requirement: str) -> str:
    return re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {_name(r) for r in pip if not r.startswith("-e")} == wanted


def test_notebooks_are_stored_without_outputs_and_have_one_parameters_cell():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged parameters"
        assert (ROOT / "params" / f"{path.stem}.yaml").exists(), f"params/{path.stem}.yaml missing"


def test_outputs_are_ignored_except_gitkeep():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "outputs/*" in ignore and "!outputs/.gitkeep" in ignore


def test_commands_that_build_no_frame_start_without_pandas():
    # The CLI loads each command's module on use; pandas alone costs about half a second per call.
    code = "import sys, handoffkit.cli, handoffkit.reconcile, handoffkit.record.log; print('pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_package_api_loads_on_use():
    import handoffkit

    assert callable(handoffkit.reconcile.reconcile) and callable(handoffkit.facts.compute)
    assert handoffkit.Store.__name__ == "Store"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        handoffkit.nothing  # noqa: B018


@pytest.mark.slow  # a fresh interpreter importing Altair, nbformat or jsonschema each: 3-5 s
@pytest.mark.parametrize(
    "module",
    [
        "handoffkit.report.charts",
        "handoffkit.report.display",
        "handoffkit.report.pack",
        "handoffkit.ingest.kev",
        "handoffkit.tickets.payload",
    ],
)
def test_jsonschema_comes_without_the_iri_grammar_which_stays_importable(module: str) -> None:
    """Modules that bring in jsonschema (Altair, nbformat, our own validators) skip its iri checker,
    2 to 3 s per process; only that import: the process can still import rfc3987_syntax afterwards."""
    code = (
        f"import sys, {module}, jsonschema;"
        "print('rfc3987_syntax' in sys.modules);"
        "import rfc3987_syntax; print(rfc3987_syntax.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "rfc3987_syntax"]
