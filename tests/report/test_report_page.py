"""End to end: the hostile fixture notebook, executed and rendered, read as a parser and a browser would."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import html5lib
import pytest

from handoffkit.report.pages import check_offline
from tests.browser import CHROMIUM, SCREENSHOTS, open_offline

from .fixture_notebook import CANARY, META, Rendered

pytestmark = pytest.mark.slow

SVG = "{http://www.w3.org/2000/svg}"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Chromium unavailable: Debian's chromium is not installed at {CHROMIUM} "
    "(apt-get install -y chromium); CI fails on this skip",
)


def parse(rendered: Rendered) -> ET.Element:
    return html5lib.parse(rendered.html, namespaceHTMLElements=False)


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def test_the_canary_never_becomes_markup(rendered: Rendered) -> None:
    document = parse(rendered)
    elements = list(document.iter())
    scripts = [element for element in elements if local(element.tag) == "script"]
    assert not [script for script in scripts if "alert(" in "".join(script.itertext())]
    assert not [element for element in elements if "onerror" in element.attrib]
    assert not [element for element in elements if local(element.tag) == "img" and element.get("src") == "x"]
    assert check_offline(rendered.html) == []


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("page title", ".//head/title"),
        ("report header", ".//header[@class='hk-report-header']/h1"),
        ("header field", ".//dl[@class='hk-report-meta']/dd"),
        ("tile", ".//div[@class='hk-tile-value']"),
        ("table cell", ".//div[@class='hk-table-wrap']/table/tbody/tr/td"),
        ("table heading", ".//div[@class='hk-table-wrap']/table/thead/tr/th"),
        ("narrative", ".//div[@class='hk-narrative']/p"),
        ("checklist", ".//table[@class='hk-table hk-checklist']/tbody/tr/td"),
        ("chart title", f".//{SVG}text"),
    ],
)
def test_the_canary_reads_as_text(rendered: Rendered, where: str, path: str) -> None:
    texts = ["".join(element.itertext()) for element in parse(rendered).iterfind(path)]
    assert any(CANARY in text for text in texts), f"the canary is not shown as text in the {where}"


def test_readers_see_no_code_parameters_or_stderr(rendered: Rendered) -> None:
    assert "display.tiles" not in rendered.html
    assert "placeholder-default" not in rendered.html
    assert "injected-parameters" not in rendered.html
    assert "stderr-only diagnostic" not in rendered.html
    assert "stderr-only diagnostic" in rendered.executed.read_text(encoding="utf-8")  # kept for analysts


def test_the_header_carries_the_chain_head(rendered: Rendered) -> None:
    header = parse(rendered).find(".//header[@class='hk-report-header']")
    shown = {dt.text: dd.text for dt, dd in zip(header.iterfind(".//dt"), header.iterfind(".//dd"), strict=True)}
    assert shown["As of"] == "2026-09-30 23:59 UTC" and META["as_of"].startswith("2026-09-30T23:59:")
    assert shown["Activity log head (seq)"] == "4242"
    assert shown["Activity log head (SHA-256)"] == META["chain_head_hash"]


def test_the_table_says_it_is_clipped(rendered: Rendered) -> None:
    captions = ["".join(p.itertext()) for p in parse(rendered).iterfind(".//p[@class='hk-caption']")]
    assert "showing 5 of 60 rows" in captions


def test_the_page_is_one_file_without_scripts(rendered: Rendered) -> None:
    document = parse(rendered)
    tags = {local(element.tag) for element in document.iter()}
    assert not tags & {"script", "link", "iframe", "img"}
    assert len(document.findall(f".//{SVG}svg")) == 2


@pytest.mark.browser
@needs_chromium
def test_an_offline_browser_draws_the_charts_and_runs_nothing(rendered: Rendered) -> None:
    screenshot = SCREENSHOTS / "fixture-report.png"
    report = open_offline(rendered.html_path, screenshot)
    assert report.requests_blocked == []
    assert report.dialogs == []
    assert report.page_errors == []
    assert report.console_errors == []
    assert report.svg_count == 2
    assert screenshot.stat().st_size > 10_000


@pytest.mark.browser
@needs_chromium
def test_the_browser_check_catches_an_unsafe_page(tmp_path) -> None:
    """The harness itself can fail: a page with live markup fires a dialog and asks the network."""
    page = tmp_path / "unsafe.html"
    page.write_text(
        f"<!DOCTYPE html><title>unsafe</title><p>{CANARY}</p>"
        '<script src="https://cdn.example.invalid/require.js"></script><script>null.boom</script>',
        encoding="utf-8",
    )
    report = open_offline(page, tmp_path / "unsafe.png")
    assert report.dialogs == ["1", "2"]
    assert "https://cdn.example.invalid/require.js" in report.requests_blocked
    assert page.with_name("x").as_uri() in report.requests_blocked
    assert report.page_errors
    assert report.svg_count == 0


def test_a_plain_nbconvert_with_the_installed_template_is_offline_and_styled(rendered: Rendered, tmp_path) -> None:
    """`jupyter nbconvert --to html --no-input --template handoffkit_report` (the template the install puts in
    the environment's nbconvert templates) renders an executed notebook without the network, styled as the pack."""
    import subprocess
    import sys
    from pathlib import Path

    jupyter = Path(sys.executable).with_name("jupyter")
    target = tmp_path / "plain.html"
    done = subprocess.run(
        [str(jupyter), "nbconvert", "--to", "html", "--no-input", "--template", "handoffkit_report",
         str(rendered.executed), "--output", str(target)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = target.read_text(encoding="utf-8")
    assert check_offline(page) == []
    assert 'class="hk-report"' in page and "--hk-accent" in page  # the pack's stylesheet
    assert (
        '<header class="hk-report-header">' not in page
    )  # no pack header without a pack: the notebook's heading is the title
