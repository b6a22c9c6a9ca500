"""Each rendered page, demo and hostile, opened in headless Chromium with the network off."""

from __future__ import annotations

import pytest

from handoffkit.report.pack import TITLES
from tests.browser import CHROMIUM, SCREENSHOTS, open_offline, visit_pack, wrapped_cells

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


PACK_PAGES = ["index", *TITLES, "data_quality"]


def test_every_page_of_the_pack_links_its_neighbours_and_wraps_no_id_date_or_number(demo_pack) -> None:
    """The done-when of issue 21: every navigation link resolves, no id/date/number cell wraps, and the
    screenshots of every page at 1280x800 are written under outputs/test-screenshots/pack/."""
    screenshots = SCREENSHOTS / "pack"
    seen = visit_pack(demo_pack.out, PACK_PAGES, screenshots)
    assert seen.broken_links == {}
    for page in seen.pages:
        assert page.requests_blocked == [], page.name
        assert page.wrapped == [], page.name
        targets = [href.rsplit("/", 1)[-1] for href in page.nav]
        assert targets == ["index.html", *(f"{n}.html" for n in TITLES), "data_quality.html", "manifest.json"]
    for name in PACK_PAGES:
        assert (screenshots / f"{name}.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "style",
    ["td { overflow-wrap: anywhere; }", "td { word-break: break-all; }", "td { white-space: normal; }"],
)
def test_the_wrap_check_sees_a_wrapped_cell(style: str) -> None:
    """The check itself can fail: squeezed cells that do wrap are reported, whatever the cause."""
    page = (
        f"<style>table {{ width: 60px; }} {style}</style><table><tr>"
        "<td>HK-123456789</td><td>2026-09-30 23:59 UTC</td><td>1,234,567,890</td></tr></table>"
    )
    assert "2026-09-30 23:59 UTC" in wrapped_cells(page)
    unwrapped = page.replace(style, "td { white-space: nowrap; }")
    assert wrapped_cells(unwrapped) == []


def test_an_id_in_the_decisions_box_never_breaks_and_the_check_sees_one_that_does() -> None:
    """The ids listed under "needs a decision" run on in prose; squeezed to a few characters a line, each
    stays whole with the pack's style sheet, and without it the check reports the broken ones."""
    from pathlib import Path

    from handoffkit.report import display

    css = (Path(display.__file__).parent / "templates" / "handoffkit_report" / "report.css").read_text()
    box = display.decisions([{"what": "Open critical findings with no owner", "ids": ["HK-123456"] * 3}]).data
    squeeze = "ul { width: 60px; padding: 0; } .hk-ids { word-break: break-all; }"  # as a notebook's output may
    assert wrapped_cells(f"<style>{squeeze}</style>{box}") == ["HK-123456"] * 3
    assert wrapped_cells(f"<style>{css} {squeeze}</style>{box}") == []


def test_the_pdf_has_a_section_per_page_each_on_new_sheets(demo_pack, tmp_path) -> None:
    import pypdf

    from handoffkit.report import pdf

    order = [f"{name}.html" for name in PACK_PAGES]
    printed = pdf.write_pdf(
        demo_pack.out, order, running_header="DEMO · as of 2026-09-30 23:59 UTC", target=tmp_path / "p.pdf"
    )
    reader = pypdf.PdfReader(str(printed))
    sections = [entry for entry in reader.outline if not isinstance(entry, list)]  # the pages' titles (h1)
    titles = [section.title for section in sections]
    assert titles[1:-1] == list(TITLES.values())
    assert titles[0].startswith("Evidence pack: ") and titles[-1] == "Data quality of the record"
    starts = [reader.get_destination_page_number(section) for section in sections]
    assert starts == sorted(set(starts)) and starts[0] == 0  # one section per page of the pack, in order
    first = reader.pages[0].extract_text()
    assert "DEMO · as of 2026-09-30 23:59 UTC" in first and f"page 1 of {len(reader.pages)}" in first


def test_report_pdf_through_the_cli(demo_pack, tmp_path) -> None:
    import pypdf

    from .packs import params_file, private_copy, render_args

    params = params_file(tmp_path / "one.yaml", "DEMO", notebooks=["routing_decisions"])
    output = render_args(private_copy(demo_pack, tmp_path), params, tmp_path / "pack", "--pdf")
    printed = tmp_path / "pack" / "evidence_pack.pdf"
    assert str(printed) in output
    assert "evidence_pack.pdf" in (tmp_path / "pack" / "manifest.json").read_text(encoding="utf-8")
    titles = [e.title for e in pypdf.PdfReader(str(printed)).outline if not isinstance(e, list)]
    assert titles[1:] == ["Routing decisions over time", "Data quality of the record"]
