"""Each rendered page, demo and hostile, opened in headless Chromium with the network off."""

from __future__ import annotations

import pytest

from handoffkit.report.pack import TITLES
from tests.browser import CHROMIUM, SCREENSHOTS, open_offline

from .test_pack import CHARTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Chromium unavailable at {CHROMIUM} (apt-get install -y chromium); CI fails on this skip",
    ),
]


@pytest.mark.parametrize("name", list(TITLES))
def test_the_demo_pages_draw_their_charts_and_ask_nothing(demo_pack, name: str) -> None:
    screenshot = SCREENSHOTS / f"demo-{name}.png"
    seen = open_offline(demo_pack.out / f"{name}.html", screenshot)
    assert (seen.requests_blocked, seen.dialogs, seen.page_errors, seen.console_errors) == ([], [], [], [])
    assert seen.svg_count >= CHARTS[name]
    assert screenshot.stat().st_size > 20_000


@pytest.mark.parametrize("name", list(TITLES))
def test_the_hostile_pages_run_no_script(hostile_pack, name: str) -> None:
    seen = open_offline(hostile_pack.out / f"{name}.html", SCREENSHOTS / f"hostile-{name}.png")
    assert (seen.requests_blocked, seen.dialogs, seen.page_errors, seen.console_errors) == ([], [], [], [])
