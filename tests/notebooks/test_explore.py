"""The analysts' notebook runs end to end with papermill, and its drill-downs agree with the figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from handoffkit.report import pages

from .packs import NOTEBOOKS, Pack

pytestmark = [pytest.mark.slow]


def test_explore_runs_and_its_chart_is_interactive(demo_pack: Pack, tmp_path: Path) -> None:
    values = {
        "db": demo_pack.url,
        "engagement": "DEMO",
        "period_start": "2026-07-01",
        "period_end": "2026-09-30",
        "as_of": "2026-09-30",
    }
    executed = pages.execute(NOTEBOOKS / "explore.ipynb", tmp_path / "explore.ipynb", values, cwd=NOTEBOOKS)
    cells = nbformat.read(executed, as_version=4).cells
    outputs = [o for c in cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Altair's renderer for JupyterLab: the spec, with the legend-bound selection, embedded for vega-embed
    charts = [o["data"]["text/html"] for o in outputs if "vegaEmbed" in o.get("data", {}).get("text/html", "")]
    assert len(charts) == 1 and '"bind": "legend"' in charts[0]
    assert any("'routing misses'" in o.get("data", {}).get("text/plain", "") for o in outputs)  # the headline dict
