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
