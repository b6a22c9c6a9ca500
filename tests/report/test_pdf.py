"""handoffkit.report.pdf: one PDF of the pack, printed by Chromium; a clear error without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.errors import ConfigError, HandoffkitError
from handoffkit.report import pdf
from tests.builders import ACTOR


def page(path: Path, title: str, body: str = "") -> Path:
    path.write_text(
        f"<html><head><style>h1 {{ color: red; }}</style></head><body><main><nav class='hk-nav'>"
        f"<a href='index.html'>Index</a></nav><h1>{title}</h1>{body}</main></body></html>".replace("'", '"'),
        encoding="utf-8",
    )
    return path


def test_the_print_document_holds_one_section_per_page_in_order_with_links_inside(tmp_path: Path) -> None:
    page(tmp_path / "index.html", "Pack", '<a href="b.html">B</a>')
    page(tmp_path / "b.html", "Page B")
    document = pdf.print_document(tmp_path, ["index.html", "b.html"], 'ACME · as of "then"')
    assert document.index('id="page-index"') < document.index('id="page-b"')
    assert 'href="#page-b"' in document and 'href="b.html"' not in document
    assert '--hk-running: "ACME · as of \\"then\\""' in document
    assert "h1 { color: red; }" in document  # the pages' own stylesheet


def test_a_page_that_is_not_from_a_pack_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.html").write_text("<html><body>no main</body></html>", encoding="utf-8")
    with pytest.raises(HandoffkitError, match=r"x\.html: not a page of an evidence pack \(no <main> element\)"):
        pdf.print_document(tmp_path, ["x.html"], "ACME")
    with pytest.raises(HandoffkitError, match=r"missing\.html: cannot read the page to print"):
        pdf.print_document(tmp_path, ["missing.html"], "ACME")


def test_without_chromium_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(pdf.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"Chromium not found: .*apt-get install -y chromium"):
        pdf.chromium()
    monkeypatch.setenv(pdf.CHROMIUM_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"HANDOFFKIT_CHROMIUM=.*nope: not an executable file"):
        pdf.chromium()


def test_report_pdf_without_chromium_is_one_line_and_renders_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(pdf.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    params = tmp_path / "q.yaml"
    params.write_text("engagement: ACME\nperiod_start: '2026-07-01'\nperiod_end: '2026-09-30'\n", encoding="utf-8")
    out = tmp_path / "pack"
    result = CliRunner().invoke(
        cli,
        ["--db", f"sqlite:///{tmp_path / 'x.db'}", "report", "--params", str(params), "--out", str(out), "--pdf",
         "--actor", ACTOR],
    )  # fmt: skip
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "apt-get install -y chromium" in lines[0]
    assert not out.exists()
