"""handoffkit.report.pages: the offline guard, rendering for readers, and running notebooks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from handoffkit.errors import ConfigError, HandoffkitError, InputError
from handoffkit.report import pages

from .fixture_notebook import CANARY, META, write_fixture_notebook

# --- check_offline ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ('<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>', "<script src="),
        ("<SCRIPT/SRC=//cdnjs.cloudflare.com/require.js></SCRIPT>", "<script src='//cdnjs"),
        ("<script>alert(1)</script>", "inline JavaScript"),
        ('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Inter">', "<link href="),
        ("<style>@import url(https://cdn.example/x.css);</style>", "@import"),
        ("<style>body { background: url( 'http://cdn.example/bg.png' ) }</style>", "url('http://cdn.example/bg.png')"),
        ('<div style="background-image:url(https://t.example/pixel.gif)">', "<div style>: url("),
        ('<img src="https://t.example/pixel.gif">', "<img src="),
        ('<img src="x" onerror="alert(2)">', "<img onerror=…>: event handler"),
        ("<iframe srcdoc='<p>hi</p>'></iframe>", "<iframe>"),
        ('<svg><image href="http://t.example/a.png"/></svg>', "<image href="),
        ('<a href="&#106;avascript:alert(1)">x</a>', "javascript: URL"),
    ],
)
def test_check_offline_finds(page: str, problem: str) -> None:
    assert [found for found in pages.check_offline(page) if problem in found]


@pytest.mark.parametrize(
    "page",
    [
        "<p>&lt;script src=https://cdn.example/x.js&gt;&lt;/script&gt;</p>",  # escaped text is text
        "<!-- <script src=https://cdn.example/x.js></script> -->",
        '<a href="https://nvd.nist.gov/vuln/detail/CVE-2024-3094">CVE-2024-3094</a>',
        '<a class="anchor-link" href="#Headline">¶</a>',
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="chart">',
        '<svg><clipPath id="hk1-clip1"/><g clip-path="url(#hk1-clip1)"></g></svg>',
        "<style>.hk-tile { border-left: 4px solid #1f4e8c; }</style>",
    ],
)
def test_check_offline_passes(page: str) -> None:
    assert pages.check_offline(page) == []


def test_the_stock_lab_template_is_not_offline(tmp_path: Path) -> None:
    """What the template exists for: nbconvert's own lab page pulls scripts from CDNs."""
    page, _ = HTMLExporter(template_name="lab").from_notebook_node(new_notebook(cells=[new_markdown_cell("x")]))
    assert any("require" in problem for problem in pages.check_offline(page))


# --- to_html ---------------------------------------------------------------------------------------


def executed_notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    """An 'executed' notebook written by hand, so rendering tests need no kernel."""
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


def code(source: str, *outputs: nbformat.NotebookNode, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(source, outputs=list(outputs), execution_count=1)
    cell.metadata["tags"] = list(tags)
    return cell


def html_output(markup: str) -> nbformat.NotebookNode:
    return new_output("display_data", data={"text/html": markup})


def test_to_html_keeps_results_and_drops_what_readers_need_not_see(tmp_path: Path) -> None:
    source = executed_notebook(
        tmp_path / "run.ipynb",
        code("engagement = 'ACME-Q3'", tags=("injected-parameters",)),
        code("print('visible result')", new_output("stream", name="stdout", text="visible result\n")),
        code(
            "warn_then_fail()",
            new_output("stream", name="stderr", text="DeprecationWarning: analyst-only\n"),
            new_output("error", ename="KeyError", evalue="'secret'", traceback=["Traceback: secret-frame"]),
        ),
        code("x", html_output("<p>shown</p>"), tags=("papermill-error-cell-tag",)),
    )
    page = pages.to_html(source, tmp_path / "out" / "run.html", title="Q3", meta=META).read_text("utf-8")
    assert "visible result" in page
    for hidden in ("ACME-Q3", "engagement =", "print(", "analyst-only", "KeyError", "secret-frame", "shown"):
        assert hidden not in page


def test_to_html_refuses_a_page_that_would_load_a_cdn(tmp_path: Path) -> None:
    vega_embed = '<div id="vis"></div><script src="https://cdn.jsdelivr.net/npm/vega-embed@6"></script>'
    source = executed_notebook(tmp_path / "run.ipynb", code("chart", html_output(vega_embed)))
    target = tmp_path / "run.html"
    with pytest.raises(InputError, match=r"run\.ipynb: the rendered report would not be self-contained.*vega-embed"):
        pages.to_html(source, target, title="Q3", meta=META)
    assert not target.exists()


@pytest.mark.parametrize(
    "as_of",
    [datetime(2026, 9, 30, 23, 59, 59, tzinfo=UTC), "2026-09-30T23:59:59.999999Z", "2026-10-01T01:59:00+02:00"],
)
def test_to_html_shows_instants_to_the_minute_in_utc(tmp_path: Path, as_of) -> None:
    source = executed_notebook(tmp_path / "run.ipynb", code("pass"))
    meta = {**META, "as_of": as_of, "scope": "internet-facing"}
    page = pages.to_html(source, tmp_path / "run.html", title="Q3", meta=meta).read_text("utf-8")
    assert "<dt>As of</dt><dd>2026-09-30 23:59 UTC</dd>" in page
    assert "<dt>Scope</dt><dd>internet-facing</dd>" in page  # extra keys follow, labelled from the key


def test_to_html_names_a_missing_meta_key_and_its_likely_misspelling(tmp_path: Path) -> None:
    source = executed_notebook(tmp_path / "run.ipynb", code("pass"))
    meta = {key: value for key, value in META.items() if key != "chain_head_seq"} | {"chain_head_sq": 1}
    with pytest.raises(ConfigError, match=r"meta lacks 'chain_head_seq' \(is 'chain_head_sq' a misspelling\?\)"):
        pages.to_html(source, tmp_path / "run.html", title="Q3", meta=meta)


def test_to_html_names_a_missing_notebook(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere\.ipynb: executed notebook not found"):
        pages.to_html(tmp_path / "nowhere.ipynb", tmp_path / "x.html", title="Q3", meta=META)


def test_the_template_ships_with_the_package() -> None:
    assert (pages.template_dir() / "index.html.j2").is_file()


# --- execute ---------------------------------------------------------------------------------------


def test_execute_names_a_missing_notebook(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent\.ipynb: notebook not found"):
        pages.execute(tmp_path / "absent.ipynb", tmp_path / "out.ipynb", {})


def test_execute_refuses_an_undeclared_parameter_with_a_suggestion(tmp_path: Path) -> None:
    source = write_fixture_notebook(tmp_path / "fixture.ipynb")
    with pytest.raises(ConfigError, match=r"unknown parameter 'canery'; declared: canary; did you mean 'canary'\?"):
        pages.execute(source, tmp_path / "out.ipynb", {"canery": "x"})
    assert not (tmp_path / "out.ipynb").exists()


def test_execute_refuses_parameters_for_a_notebook_without_a_parameters_cell(tmp_path: Path) -> None:
    source = executed_notebook(tmp_path / "plain.ipynb", code("1 + 1"))
    with pytest.raises(ConfigError, match="no cell is tagged 'parameters'"):
        pages.execute(source, tmp_path / "out.ipynb", {"as_of": "2026-09-30"})


@pytest.mark.slow
def test_execute_names_the_failing_cell_and_keeps_the_traceback(tmp_path: Path) -> None:
    source = executed_notebook(tmp_path / "broken.ipynb", code("x = 1"), code("raise KeyError('no such view')"))
    output = tmp_path / "out" / "broken.ipynb"
    messages: list[str] = []
    with pytest.raises(HandoffkitError, match=r"broken\.ipynb: cell In \[2\] raised KeyError: 'no such view'"):
        pages.execute(source, output, {}, cwd=tmp_path, progress=messages.append)
    assert "no such view" in output.read_text(encoding="utf-8")
    assert messages == [f"executing {source} -> {output}"]


@pytest.mark.slow
def test_execute_keeps_the_kernels_own_log_off_the_terminal(tmp_path: Path, capfd) -> None:
    """A report's reader sees handoffkit's lines, not the kernel's log: jupyter_client interrupts the kernel
    as it shuts it down, and a kernel still inside a message handler then logs "KeyboardInterrupt caught in
    kernel" at ERROR, now and then. A cell's failure still reaches the reader (the test above)."""
    source = executed_notebook(tmp_path / "log.ipynb", code("get_ipython().kernel.log.error('a kernel log line')"))
    pages.execute(source, tmp_path / "out.ipynb", {}, cwd=tmp_path)
    assert "a kernel log line" not in capfd.readouterr().err


@pytest.mark.slow
def test_execute_names_a_kernel_that_is_not_installed(tmp_path: Path) -> None:
    source = executed_notebook(tmp_path / "plain.ipynb", code("1 + 1"))
    with pytest.raises(ConfigError, match=r"kernel 'python9' is not installed; installed: .*python3"):
        pages.execute(source, tmp_path / "out.ipynb", {}, kernel_name="python9")


def test_to_html_catches_a_helper_that_forgot_to_escape(tmp_path: Path) -> None:
    """The last guard: record text that reached the page as markup is refused, not written."""
    source = executed_notebook(tmp_path / "run.ipynb", code("tiles", html_output(f"<p>{CANARY}</p>")))
    with pytest.raises(InputError, match=r"\(3 problem\(s\)\)") as refused:
        pages.to_html(source, tmp_path / "run.html", title="Q3", meta=META)
    for problem in ("<script>: inline JavaScript", "<img onerror=…>", "<img src='x'>"):
        assert problem in str(refused.value)
    assert not (tmp_path / "run.html").exists()
