"""One PDF of an evidence pack, printed by Chromium: the index, then the pages in reading order.

:func:`write_pdf` joins the pack's pages into one print document (each page's ``<main>`` as a section
that starts on a new sheet, links between pages turned into links inside the document), styles it for
print (a running header with the engagement and the as-of instant, the page number and count in the
margin, tables and charts kept whole where they fit) and has headless Chromium print it
(``--print-to-pdf``). The print document is written to a temporary directory, never into the pack, and
loads nothing: it is the pages' own self-contained markup.

Chromium is found as ``HANDOFFKIT_CHROMIUM``, else ``chromium``, ``chromium-browser`` or
``google-chrome`` on the ``PATH``; without it, :class:`~handoffkit.errors.ConfigError` says how to install it.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from handoffkit.errors import ConfigError, HandoffkitError

CHROMIUM_ENV = "HANDOFFKIT_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PDF = "evidence_pack.pdf"
#: Seconds Chromium may take to print a pack.
TIMEOUT = 600

_MAIN = re.compile(r"<main>(.*)</main>", re.DOTALL)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)

#: Print rules added to the pages' stylesheet: sheet size and margins, the running header and page
#: numbers (CSS page-margin boxes), and a new sheet for each page of the pack.
PRINT_CSS = """
@page {
  size: A4 landscape;
  margin: 18mm 12mm 14mm;
  @top-left { content: var(--hk-running); font: 8pt system-ui, sans-serif; color: #5b6474; }
  @top-right { content: "page " counter(page) " of " counter(pages); font: 8pt system-ui, sans-serif; color: #5b6474; }
}
section.hk-print-page { break-before: page; }
section.hk-print-page:first-of-type { break-before: auto; }
.hk-nav { display: none; }
"""


def chromium() -> str:
    """The Chromium executable to print with.

    Raises:
        ConfigError: none is installed (the message says how to install one).
    """
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        if Path(given).is_file() and os.access(given, os.X_OK):
            return given
        raise ConfigError(f"{CHROMIUM_ENV}={given}: not an executable file; expected the path of Chromium")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(
        "Chromium not found: the PDF is printed with headless Chromium; install it "
        f"(Debian/Ubuntu: apt-get install -y chromium) or set {CHROMIUM_ENV} to its path"
    )


def write_pdf(out: Path, pages: Sequence[str], *, running_header: str, target: Path | None = None) -> Path:
    """Print the pack's ``pages`` (file names in reading order, e.g. ``index.html`` first) to one PDF.

    Args:
        out: the pack's directory.
        pages: the HTML files of the pack to print, in order.
        running_header: the text at the top of every sheet (engagement and as-of instant).
        target: the PDF to write (default ``out / evidence_pack.pdf``).

    Returns:
        The PDF's path.

    Raises:
        ConfigError: Chromium is not installed.
        HandoffkitError: Chromium failed to print (its message is included).
    """
    executable = chromium()
    target = (target or out / PDF).resolve()
    document = print_document(out, pages, running_header)
    with tempfile.TemporaryDirectory(prefix="hk-pdf-") as work:
        source = Path(work) / "pack.html"
        source.write_text(document, encoding="utf-8")
        command = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={Path(work) / 'profile'}",
            "--no-pdf-header-footer",
            "--generate-pdf-document-outline",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0 or not target.is_file():
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise HandoffkitError(
            f"{executable}: printing {out} to PDF failed: {detail[-1] if detail else done.returncode}"
        )
    return target


def print_document(out: Path, pages: Sequence[str], running_header: str) -> str:
    """The pages' ``<main>`` sections joined into one HTML document, with the first page's stylesheet
    and :data:`PRINT_CSS`; links to another page of the pack point at its section.

    Raises:
        HandoffkitError: a page is missing or is not a page of a pack (no ``<main>``).
    """
    sections, style = [], ""
    for name in pages:
        path = out / name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise HandoffkitError(f"{path}: cannot read the page to print: {exc.strerror}") from exc
        main = _MAIN.search(text)
        if main is None:
            raise HandoffkitError(f"{path}: not a page of an evidence pack (no <main> element)")
        style = style or "\n".join(_STYLE.findall(text))
        sections.append(f'<section class="hk-print-page" id="{_anchor(name)}">{main.group(1)}</section>')
    body = "\n".join(sections)
    for name in pages:  # a link to another page of the pack now leads to its section
        body = body.replace(f'href="{html.escape(name)}"', f'href="#{_anchor(name)}"')
    header = running_header.replace("\\", "\\\\").replace('"', '\\"')
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Evidence pack</title>'
        f'<style type="text/css">{style}\n:root {{ --hk-running: "{header}"; }}\n{PRINT_CSS}</style>'
        f'</head><body class="hk-report"><main>{body}</main></body></html>'
    )


def _anchor(name: str) -> str:
    return "page-" + re.sub(r"[^A-Za-z0-9_-]", "-", Path(name).stem)
