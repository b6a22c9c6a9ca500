"""Open a rendered report in headless Chromium with the network off and report what happened.

Kept test-side (playwright is a dev dependency) so the report tests (a fixture notebook) and the
notebook tests (the real pack) share it: ``open_offline(html_path, screenshot_path)``. Uses Debian's
Chromium rather than a downloaded browser; callers skip with a reason when :data:`CHROMIUM` is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Dialog, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")

#: Where report tests keep their screenshots (outputs/ is git-ignored).
SCREENSHOTS = Path(__file__).resolve().parents[1] / "outputs" / "test-screenshots"

#: Flags that keep the browser itself quiet on the network (no sync, updates, QUIC probing).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Per SVG, the drawn data marks (Vega's ``role-mark`` groups) with a non-empty box on screen.
_COUNT_CHARTS_WITH_MARKS = """
() => [...document.querySelectorAll("svg")].filter((svg) =>
  [...svg.querySelectorAll("g.role-mark > *")].some((mark) => {
    const box = mark.getBoundingClientRect();
    return box.width > 0 || box.height > 0;
  })
).length
"""


@dataclass(frozen=True)
class BrowserReport:
    """What the page did while it loaded (every list empty for a safe, self-contained report)."""

    requests_blocked: list[str]  # every URL the page asked for besides itself (all were aborted)
    console_errors: list[str]
    page_errors: list[str]  # uncaught JavaScript exceptions
    dialogs: list[str]  # alert/confirm/prompt messages: any one is script that ran
    svg_count: int  # inline SVG charts with at least one drawn data mark


def open_offline(html_path: Path, screenshot_path: Path) -> BrowserReport:
    """Load ``html_path`` from disk with every other request aborted, screenshot it, report.

    The context is also set offline, so a request that escaped routing still could not leave.
    """
    page_url = html_path.resolve().as_uri()
    blocked: list[str] = []
    console_errors: list[str] = []
    page_errors: list[str] = []
    dialogs: list[str] = []

    def route(route: Route) -> None:
        if route.request.url == page_url:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    def dialog(opened: Dialog) -> None:
        dialogs.append(opened.message)
        opened.dismiss()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_offline(True)
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("dialog", dialog)
            page.goto(page_url, wait_until="load")
            page.wait_for_load_state("networkidle")
            svg_count = page.evaluate(_COUNT_CHARTS_WITH_MARKS)
            screenshot_path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot_path), full_page=True)
        finally:
            browser.close()
    return BrowserReport(blocked, console_errors, page_errors, dialogs, svg_count)


#: Table cells whose text is one id, date, instant or number (or that the page marks as never wrapping)
#: and whose text is laid out on more than one line: a text node split over lines has several boxes.
_WRAPPED_CELLS = r"""
() => {
  const token = /^(?:[A-Za-z][A-Za-z0-9]*-\d+|\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2} UTC)?|[+-]?[\d,]+(?:\.\d+)?%?)$/;
  const split = (cell) => {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      if ([...range.getClientRects()].filter((box) => box.width > 0).length > 1) return true;
    }
    return false;
  };
  return [...document.querySelectorAll("td, .hk-ids .hk-id")]
    .filter((cell) => token.test(cell.textContent.trim()) || cell.classList.contains("hk-nowrap")
      || cell.classList.contains("hk-id"))
    .filter(split)
    .map((cell) => cell.textContent.trim());
}
"""


@dataclass(frozen=True)
class PackPage:
    """One page of a pack as the browser showed it."""

    name: str
    nav: list[str]  # the navigation's links, as absolute URLs
    wrapped: list[str]  # id, date and number cells laid out on more than one line
    requests_blocked: list[str]  # anything outside the pack the page asked for


@dataclass(frozen=True)
class PackVisit:
    pages: list[PackPage]
    broken_links: dict[str, str]  # link → why it did not open


def visit_pack(out: Path, names: list[str], screenshots: Path) -> PackVisit:
    """Open each page ``<name>.html`` of the pack in ``out`` at 1280×800 with the network off (only files
    of the pack may load), screenshot it (``<name>.png``, the first screen; ``<name>-full.png``, the
    whole page), read its navigation and wrapped cells, then follow every navigation link."""
    root = out.resolve().as_uri() + "/"
    visited: list[PackPage] = []
    broken: dict[str, str] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_offline(True)
            blocked: list[str] = []

            def route(route: Route) -> None:
                if route.request.url.startswith(root):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", route)
            page = context.new_page()
            screenshots.mkdir(parents=True, exist_ok=True)
            for name in names:
                blocked.clear()
                page.goto(root + f"{name}.html", wait_until="load")
                page.screenshot(path=str(screenshots / f"{name}.png"))
                page.screenshot(path=str(screenshots / f"{name}-full.png"), full_page=True)
                nav = page.eval_on_selector_all("nav.hk-nav a", "(links) => links.map((a) => a.href)")
                visited.append(PackPage(name, nav, page.evaluate(_WRAPPED_CELLS), list(blocked)))
            for link in sorted({href for seen in visited for href in seen.nav}):
                if not link.startswith(root):
                    broken[link] = "outside the pack"
                    continue
                try:
                    response = page.goto(link, wait_until="load")
                except Exception as exc:  # any failure to open is the finding
                    broken[link] = str(exc).splitlines()[0]
                    continue
                if response is not None and not response.ok:
                    broken[link] = f"status {response.status}"
        finally:
            browser.close()
    return PackVisit(visited, broken)


def wrapped_cells(html_text: str, width: int = 1280) -> list[str]:
    """The wrapped id/date/number cells of a page given as text (for testing the check itself)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
            page.set_content(html_text)
            return page.evaluate(_WRAPPED_CELLS)
        finally:
            browser.close()
