"""Session fixtures: the report set rendered once for a copy of the demo, once for the hostile engagement.

Rendering executes six notebooks (a kernel each), so each pack is rendered once per test run, by the
first xdist worker that needs it (``once_per_run``), and the tests of every worker read it. The demo
pack is rendered through the CLI (``handoffkit --db … report``), with a parameter file whose own ``db``
names a file that does not exist: the ``--db`` override is exercised by every test that reads the pack.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import copy_sqlite

from . import hostile
from .packs import Pack, params_file, render


@pytest.fixture(scope="session")
def demo_pack(demo_sqlite: tuple[str, dict], once_per_run) -> Pack:
    def build(work: Path) -> Pack:
        url = copy_sqlite(demo_sqlite[0], work / "demo.db")
        params = params_file(work / "quarterly.yaml", "DEMO")
        output = render(url, params, work / "out")
        return Pack(url, "DEMO", params, work / "out", output)

    return once_per_run("demo-pack", build)


@pytest.fixture(scope="session")
def hostile_pack(once_per_run) -> Pack:
    def build(work: Path) -> Pack:
        url = f"sqlite:///{work / 'hostile.db'}"
        engagement = hostile.build(url, work / "inputs")
        params = params_file(work / "quarterly.yaml", engagement)
        output = render(url, params, work / "out")
        return Pack(url, engagement, params, work / "out", output)

    return once_per_run("hostile-pack", build)
