"""The hostile fixture notebook: every text value it shows is :data:`CANARY`.

The canary arrives as a papermill parameter, so the tests prove that record strings reach the page
as text and never as markup, through the same path real parameters take.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from handoffkit.report import pages

CANARY = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"

META = {
    "engagement": CANARY,
    "as_of": "2026-09-30T23:59:59.000000Z",
    "chain_head_seq": 4242,
    "chain_head_hash": "9f" * 32,
}

# The cells after the parameters cell: each helper in handoffkit.report.display, fed only the canary.
FIXTURE_CELLS = [
    """import altair as alt
import pandas as pd
from handoffkit.report import display

counts = pd.DataFrame({"label": [canary, canary + " (2)"], "count": [3, 5]})
display.tiles({canary: canary, "open findings": 1234})""",
    """display.chart(
    alt.Chart(counts, title=canary)
    .mark_bar()
    .encode(x=alt.X("label:N", title=canary), y=alt.Y("count:Q", title=canary), tooltip=["label"])
)""",
    """trend = pd.DataFrame({"week": list(range(8)), "open": [5, 7, 6, 9, 4, 3, 6, 2]})
display.chart(alt.Chart(trend, title=canary).mark_line(clip=True).encode(
    x=alt.X("week:Q", scale=alt.Scale(domain=[1, 6])), y="open:Q"))""",
    "display.table(pd.DataFrame({canary: [canary] * 60, 'n': range(60)}), max_rows=5)",
    "display.narrative([canary, 'Second paragraph: ' + canary])",
    """display.checklist([
    {"item": canary, "status": "pass", "evidence": canary},
    {"item": canary, "status": "fail", "evidence": canary},
    {"item": canary, "status": "not-yet-measurable", "evidence": canary},
])""",
    # stderr is for the analyst: it must not reach the readers' page
    "import sys\nprint('stderr-only diagnostic', file=sys.stderr)",
]


def write_fixture_notebook(path: Path) -> Path:
    """The fixture notebook: a heading, a ``parameters`` cell, then :data:`FIXTURE_CELLS`."""
    notebook = new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    parameters = new_code_cell('canary = "placeholder-default"  # the text every output shows')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        new_markdown_cell("# Fixture evidence report"),
        parameters,
        *(new_code_cell(source) for source in FIXTURE_CELLS),
    ]
    nbformat.write(notebook, path)
    return path


@dataclass(frozen=True)
class Rendered:
    """The fixture notebook after :func:`pages.execute` and :func:`pages.to_html`."""

    executed: Path
    html_path: Path
    html: str
    execute_seconds: float
    to_html_seconds: float


def render(workdir: Path) -> Rendered:
    """Write, execute and render the fixture notebook under ``workdir``, timing both steps."""
    source = write_fixture_notebook(workdir / "fixture.ipynb")
    started = time.perf_counter()
    executed = pages.execute(source, workdir / "out" / "fixture.ipynb", {"canary": CANARY}, cwd=workdir)
    executed_at = time.perf_counter()
    html_path = pages.to_html(executed, workdir / "out" / "fixture.html", title=f"Quarterly {CANARY}", meta=META)
    finished = time.perf_counter()
    return Rendered(
        executed=executed,
        html_path=html_path,
        html=html_path.read_text(encoding="utf-8"),
        execute_seconds=executed_at - started,
        to_html_seconds=finished - executed_at,
    )
