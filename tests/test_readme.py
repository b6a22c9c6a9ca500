"""The README's Python example runs as written, in a folder set up as its comments say."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_the_readme_has_a_python_example() -> None:
    assert len(_python_blocks()) == 1


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    # What the example's comments assume: ACME made by `handoffkit init`, a week48.sarif beside it.
    shutil.copy(ROOT / "tests" / "data" / "scans" / "sarif_two_runs.sarif", tmp_path / "week48.sarif")
    init = [
        sys.executable,
        "-m",
        "handoffkit",
        "init",
        "--engagement",
        "ACME",
        "--policy",
        str(ROOT / "params" / "policy.yaml"),
        "--owners",
        str(ROOT / "params" / "owners.csv"),
        "--actor",
        "Ana Silva",
    ]
    subprocess.run(init, cwd=tmp_path, check=True, capture_output=True)
    example = _python_blocks()[0]
    ran = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
