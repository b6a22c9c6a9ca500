"""Turn a parameterised notebook into a self-contained, script-free HTML evidence report.

Two steps, each a function, so schedulers can archive the executed notebook between them:

1. :func:`execute` runs the notebook with papermill (the executed copy keeps code and tracebacks:
   it is the analysts' record of the run);
2. :func:`to_html` renders it for readers with the ``handoffkit_report`` nbconvert template: code,
   prompts, the parameters cells, error traces and stderr are left out; the page loads nothing from
   anywhere and runs no JavaScript. :func:`check_offline` is the guard that proves the last point,
   and ``to_html`` refuses to write a page that fails it.

Header and footer (title, engagement, as-of instant, activity-log chain head) are passed to the
template through the exporter's ``resources["handoffkit"]``, not through notebook metadata: the
caller that knows the store's chain head is the one rendering, and the executed notebook stays
exactly what papermill wrote.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

# isort: split
import handoffkit.record._jsonschema  # noqa: F401 - before nbformat, which imports jsonschema

# isort: split
import nbformat
import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbconvert import HTMLExporter
from traitlets.config import Config

from handoffkit.errors import ConfigError, HandoffkitError, InputError, located
from handoffkit.report.display import minute
from handoffkit.report.output import plain

TEMPLATE_NAME = "handoffkit_report"

#: Header fields every evidence report carries, in display order, with their labels.
REQUIRED_META = {
    "engagement": "Engagement",
    "as_of": "As of",
    "chain_head_seq": "Activity log head (seq)",
    "chain_head_hash": "Activity log head (SHA-256)",
}

#: Cells readers never see: the parameters papermill injected (and their defaults), and the
#: red "an exception was encountered" banner papermill adds to a failed run.
HIDDEN_CELL_TAGS = frozenset({"parameters", "injected-parameters", "papermill-error-cell-tag"})


def template_dir() -> Path:
    """The nbconvert template directory shipped in the package.

    Raises:
        ConfigError: the package was installed without its templates (package data missing).
    """
    directory = Path(str(files("handoffkit.report") / "templates" / TEMPLATE_NAME))
    index = directory / "index.html.j2"
    if not index.is_file():
        raise ConfigError(
            f"{index}: report template not found; expected the package data "
            f"handoffkit/report/templates/{TEMPLATE_NAME}/index.html.j2 (reinstall handoffkit)"
        )
    return directory


def execute(
    notebook_path: str | Path,
    output_ipynb: str | Path,
    parameters: Mapping[str, Any],
    kernel_name: str = "python3",
    cwd: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Run a parameterised notebook with papermill and write the executed copy.

    Args:
        notebook_path: the source notebook (one cell tagged ``parameters``).
        output_ipynb: where the executed notebook goes (parent directories are created).
        parameters: values for names declared in the parameters cell.
        kernel_name: the Jupyter kernel to run it in.
        cwd: working directory of the kernel (papermill's default, the current one, when None).
        progress: called with a one-line status before and after the run (e.g. ``click.echo``).

    Returns:
        The path of the executed notebook.

    Raises:
        InputError: the notebook does not exist.
        ConfigError: a parameter is not declared in the notebook, or the kernel is not installed.
        HandoffkitError: a cell raised; the message names it and the executed copy holds the traceback.
    """
    notebook, output = Path(notebook_path), Path(output_ipynb)
    if not notebook.is_file():
        raise InputError(located(str(notebook), None, "notebook not found; expected an .ipynb file"))
    _check_parameters(notebook, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    _tell(progress, f"executing {notebook} -> {output}")
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters),
            kernel_name=kernel_name,
            cwd=None if cwd is None else str(cwd),
            progress_bar=False,
            log_output=False,
            # The kernel's own log is not the reader's concern: its start-up chatter (the TCP-transport
            # notice), and the "KeyboardInterrupt caught in kernel" it logs at ERROR, now and then, when
            # jupyter_client interrupts it on shutdown while it is still inside a message handler. A cell's
            # error comes back through papermill, and a kernel that dies through nbclient, either way.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except papermill.PapermillExecutionError as exc:
        raise HandoffkitError(
            f"{notebook}: cell In [{exc.exec_count}] raised {exc.ename}: {exc.evalue} "
            f"(the executed copy {output} holds the traceback)"
        ) from exc
    except NoSuchKernel as exc:
        installed = sorted(KernelSpecManager().find_kernel_specs())
        raise ConfigError(
            f"{notebook}: Jupyter kernel {kernel_name!r} is not installed; installed: {', '.join(installed)}"
        ) from exc
    _tell(progress, f"executed {notebook} in {time.perf_counter() - started:.1f} s")
    return output


def _check_parameters(notebook: Path, parameters: Mapping[str, Any]) -> None:
    """Refuse parameters the notebook does not declare (papermill would only log a warning)."""
    declared = papermill.inspect_notebook(str(notebook))
    for name in parameters:
        if name in declared:
            continue
        if not declared:
            raise ConfigError(
                located(str(notebook), None, f"parameter {name!r} given but no cell is tagged 'parameters'")
            )
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            located(
                str(notebook),
                "parameters cell",
                f"unknown parameter {name!r}; declared: {', '.join(declared)}{hint}",
            )
        )


def _tell(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def to_html(
    executed_ipynb: str | Path,
    output_html: str | Path,
    *,
    title: str,
    meta: Mapping[str, Any],
    nav: Sequence[tuple[str, str]] = (),
) -> Path:
    """Render an executed notebook as the readers' report: one UTF-8 HTML file, code hidden, offline.

    Args:
        executed_ipynb: a notebook written by :func:`execute`.
        output_html: the page to write (parent directories are created).
        title: the report title (page header and ``<title>``).
        meta: header fields; must hold ``engagement``, ``as_of``, ``chain_head_seq`` and
            ``chain_head_hash``; further keys are shown after them, labelled from the key.
        nav: the pack's navigation, ``[(href, label)]`` (the pages beside this one); none by default.

    Returns:
        The path of the written page.

    Raises:
        InputError: the notebook is missing or unreadable, or the page would not be self-contained
            (an output loads a URL, or carries script); nothing is written then.
        ConfigError: a required ``meta`` key is missing, or the template is not installed.
    """
    source, output = Path(executed_ipynb), Path(output_html)
    fields = header_fields(meta, source)
    notebook = _read_notebook(source)
    _strip_for_readers(notebook)
    notebook.metadata["title"] = title  # the lab template's <title>
    resources = {
        "metadata": {"name": title, "path": str(source.parent)},
        "handoffkit": {"title": title, "fields": fields, "nav": list(nav), "current": output.name},
    }
    page, _ = _exporter().from_notebook_node(notebook, resources=resources)
    problems = check_offline(page)
    if problems:
        raise InputError(
            located(
                str(source),
                None,
                f"the rendered report would not be self-contained ({len(problems)} problem(s)): "
                + "; ".join(problems[:5])
                + " — show record data only through handoffkit.report.display (escaping text and draws charts as SVG)",
            )
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output


def _exporter() -> HTMLExporter:
    """nbconvert's HTML exporter on the handoffkit template, with code and prompts hidden (``--no-input``)."""
    return HTMLExporter(
        # the template is found by name under the package's templates/ directory only (not the cwd)
        extra_template_basedirs=[str(template_dir().parent)],
        template_name=TEMPLATE_NAME,
        # the code-highlighting stylesheet serves code cells, and readers see none
        config=Config({"CSSHTMLHeaderPreprocessor": {"enabled": False}}),
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,  # Markdown images become data: URIs, so the page is one file
    )


def header_fields(meta: Mapping[str, Any], source: Path | str = "report") -> list[tuple[str, str]]:
    """``[(label, text)]`` for the header: the required fields first, then any extra ones.

    Raises:
        ConfigError: a required key of :data:`REQUIRED_META` is missing (``source`` names the page).
    """
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        extra = [key for key in meta if key not in REQUIRED_META]
        raise ConfigError(
            f"report for {source}: meta lacks {', '.join(_with_hint(key, extra) for key in missing)}; "
            f"expected keys {', '.join(REQUIRED_META)}"
        )
    ordered = list(REQUIRED_META) + [key for key in meta if key not in REQUIRED_META]
    return [(REQUIRED_META.get(key) or key.replace("_", " ").capitalize(), _text(meta[key])) for key in ordered]


def _with_hint(key: str, given: list[str]) -> str:
    close = difflib.get_close_matches(key, given, n=1)
    return f"{key!r} (is {close[0]!r} a misspelling?)" if close else repr(key)


def _text(value: Any) -> str:
    """Header text for a value: instants to the minute in UTC (the manifest keeps them whole), missing
    values as a dash."""
    value = plain(value)
    return "—" if value is None else minute(str(value))


def _read_notebook(source: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(source, as_version=4)
    except FileNotFoundError as exc:
        raise InputError(located(str(source), None, "executed notebook not found; run execute() first")) from exc
    except (ValueError, nbformat.ValidationError) as exc:
        raise InputError(located(str(source), None, f"not a readable notebook: {exc}")) from exc


def _strip_for_readers(notebook: nbformat.NotebookNode) -> None:
    """Drop what only the notebook's author needs: parameter cells, error traces and stderr; and the
    notebook's own top-level heading, since the page header carries the title (one title per page).

    A failed run never gets here through :func:`execute` (it raises); stderr is dropped because it
    carries warnings and log lines addressed to the analyst, not to the report's readers.
    """
    notebook.cells = [
        cell for cell in notebook.cells if not HIDDEN_CELL_TAGS & set(cell.get("metadata", {}).get("tags", []))
    ]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if not _is_trace(output)]
        elif cell.cell_type == "markdown":
            cell.source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("# ")).strip()


def _is_trace(output: nbformat.NotebookNode) -> bool:
    return output.output_type == "error" or (output.output_type == "stream" and output.name == "stderr")


#: Attributes through which an element loads (or navigates to) another resource.
_RESOURCE_ATTRIBUTES = frozenset(
    {"src", "href", "xlink:href", "srcset", "poster", "data", "background", "action", "formaction"}
)
#: ``<a>`` navigates only when clicked; ``<script>`` is reported whatever its ``src``.
_REPORTED_ELSEWHERE = frozenset({"a", "script"})
#: Elements that embed another document whatever their attributes say.
_EMBEDDING_ELEMENTS = frozenset({"iframe", "frame", "frameset", "object", "embed", "portal"})


def check_offline(html_text: str) -> list[str]:
    """Problems that would make a report page fetch anything or run code; ``[]`` when it is clean.

    Found: any ``<script>`` (with ``src`` or inline: reports carry no JavaScript), ``<iframe>`` and
    other embedding elements, event-handler attributes (``onerror=``…), ``javascript:`` URLs, any
    ``src``/``href``/``srcset``… that is not a ``data:`` URI or an in-page ``#fragment`` (links in
    ``<a>`` are allowed: following one is the reader's choice), and ``@import`` or ``url(...)`` to
    anything but ``data:``/``#`` in a ``<style>`` element or ``style`` attribute. Text and comments
    are not markup, so an escaped ``&lt;script&gt;`` in a finding title is not a problem.
    """
    scan = _OfflineScan()
    scan.feed(html_text)
    scan.close()
    return scan.problems


class _OfflineScan(HTMLParser):
    """Collects :func:`check_offline` problems while parsing (stdlib parser: no extra runtime dependency)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._in_style = True
        if tag == "script":
            src = dict(attrs).get("src")
            self._add(f"<script src={src!r}>: loads a script" if src else "<script>: inline JavaScript")
        if tag in _EMBEDDING_ELEMENTS:
            self._add(f"<{tag}>: embeds another document")
        for name, value in attrs:
            self._check_attribute(tag, name, value or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._check_css("<style>", data)

    def _check_attribute(self, tag: str, name: str, value: str) -> None:
        stripped = value.strip()
        if name.startswith("on"):
            self._add(f"<{tag} {name}=…>: event handler runs JavaScript")
        elif stripped.lower().startswith("javascript:"):
            self._add(f"<{tag} {name}={_short(stripped)}>: javascript: URL")
        elif name == "style":
            self._check_css(f"<{tag} style>", value)
        elif name in _RESOURCE_ATTRIBUTES and tag not in _REPORTED_ELSEWHERE and not _self_contained(stripped):
            self._add(f"<{tag} {name}={_short(stripped)}>: loads a resource from outside the page")

    def _check_css(self, where: str, css: str) -> None:
        lowered = css.lower()
        if "@import" in lowered:
            self._add(f"{where}: @import loads a stylesheet")
        start = lowered.find("url(")
        while start != -1:
            target = css[start + 4 :].split(")")[0].strip(" \t\n'\"")
            if not _self_contained(target):
                self._add(f"{where}: url({_short(target)}) loads a resource")
            start = lowered.find("url(", start + 4)

    def _add(self, problem: str) -> None:
        self.problems.append(problem)


def _self_contained(target: str) -> bool:
    """True for an empty reference, an in-page ``#fragment`` or a ``data:`` URI."""
    return not target or target.startswith("#") or target.lower().startswith("data:")


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
