"""The pack's own pages: its navigation, the index a reader opens first, and the data-quality page.

Every page of a pack carries the same navigation bar (:func:`navigation`): the index, the report pages in
reading order, the data-quality page and the manifest. The index (:func:`index_page`) says what the pack
is (title, engagement, as-of instant, the activity log's head, whether the manifest is signed) and links
to everything in it; the data-quality page (:func:`quality_page`) shows the Great Expectations results of
``data_quality.json`` as a table a person reads. Both use the notebook pages' header, footer and
stylesheet (``templates/handoffkit_report/chrome.html.j2`` and ``report.css``), carry no script and load
nothing (:func:`handoffkit.report.pages.check_offline` is run on them as on the notebook pages).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from handoffkit.errors import InputError, located
from handoffkit.report import pages
from handoffkit.report.display import cell_text

INDEX = "index.html"
QUALITY = "data_quality.html"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"

#: How the navigation names each report page (the page itself carries the full title).
SHORT = {
    "quarterly_leadership": "Leadership",
    "routing_decisions": "Routing",
    "ticket_mapping": "Ticket mapping",
    "severity_calibration": "Severity calibration",
    "closure_verification": "Closure verification",
    "activity_log": "Activity log",
}


def navigation(names: Sequence[str]) -> list[tuple[str, str]]:
    """``[(href, label)]`` of a pack holding the report pages ``names`` (in reading order)."""
    return [
        (INDEX, "Index"),
        *((f"{name}.html", SHORT.get(name, name.replace("_", " ").capitalize())) for name in names),
        (QUALITY, "Data quality"),
        (MANIFEST, "Manifest"),
    ]


def index_page(
    out: Path,
    *,
    title: str,
    fields: Sequence[tuple[str, str]],
    pages_: Mapping[str, str],
    signed: bool = False,
    files: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``index.html``: what the pack is and a link to every page of it.

    Args:
        out: the pack's directory.
        title: the pack's title (the leadership page's).
        fields: the header fields every page shows (engagement, as of, log head, period).
        pages_: page name → title, in reading order.
        signed: whether ``manifest.json.sig`` is written beside the manifest (said as "signed" only then).
        files: further files of the pack to list, ``[(file name, what it holds)]``.
    """
    rows = "".join(
        f'<li><a href="{html.escape(name)}.html">{html.escape(page_title)}</a></li>'
        for name, page_title in pages_.items()
    )
    signature = (
        f'signed: the manifest\'s signature is <a href="{SIGNATURE}">{SIGNATURE}</a>'
        if signed
        else "not signed: the manifest's SHA-256 digests and the log head are the integrity evidence"
    )
    listed = "".join(
        f'<li><a href="{html.escape(name)}">{html.escape(name)}</a>: {html.escape(what)}</li>' for name, what in files
    )
    body = (
        "<h2>Report pages</h2>"
        f'<ol class="hk-contents">{rows}</ol>'
        "<h2>Evidence files</h2>"
        '<ul class="hk-contents">'
        f'<li><a href="{QUALITY}">Data quality</a>: the Great Expectations checks of the findings as of then '
        '(raw results: <a href="data_quality.json">data_quality.json</a>)</li>'
        f'<li><a href="{MANIFEST}">{MANIFEST}</a>: the SHA-256 of every file in the pack, the activity log\'s '
        f"head, the parameters; manifest {signature}</li>"
        f"{listed}</ul>"
    )
    extra = [*fields, ("Manifest signature", "signed" if signed else "not signed")]
    return write_page(out / INDEX, title=title, fields=extra, nav=navigation(list(pages_)), body=body)


def quality_page(out: Path, *, fields: Sequence[tuple[str, str]], names: Sequence[str], quality_json: Path) -> Path:
    """Write ``data_quality.html`` from ``data_quality.json``: one row per expectation.

    Raises:
        InputError: ``quality_json`` is missing or not the document the pack writes.
    """
    try:
        doc = json.loads(quality_json.read_text(encoding="utf-8"))
        results = doc["great_expectations"]["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(located(str(quality_json), None, f"not a data-quality result file: {exc}")) from exc
    failed = sum(1 for item in results if not item.get("success"))
    subject = " ".join(cell_text(word) for word in str(doc.get("subject", "")).split(" "))
    verdict = (
        f"All {len(results):,} expectations hold" if not failed else f"{failed:,} of {len(results):,} expectations fail"
    )
    rows = "".join(_quality_row(item) for item in results)
    body = (
        f"<p>{html.escape(verdict)} for the {int(doc.get('rows', 0)):,} {html.escape(subject)}. "
        'The raw results are in <a href="data_quality.json">data_quality.json</a>.</p>'
        '<div class="hk-table-wrap"><table class="hk-table hk-quality"><thead><tr>'
        '<th>Expectation</th><th>Column</th><th>Result</th><th class="hk-num">Unexpected</th><th>Sample</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )
    return write_page(
        out / QUALITY, title="Data quality of the record", fields=fields, nav=navigation(names), body=body
    )


#: Great Expectations expectation types in words (the kwargs fill the blanks).
EXPECTATIONS = {
    "expect_column_values_to_not_be_null": "never empty",
    "expect_column_values_to_be_unique": "unique",
    "expect_column_values_to_be_in_set": "one of {value_set}",
    "expect_column_values_to_match_regex": "matches {regex}",
    "expect_column_value_lengths_to_be_between": "length between {min_value} and {max_value}",
}
#: For a range with one bound only.
_BOUNDS = {
    ("min_value",): "length at least {min_value}",
    ("max_value",): "length at most {max_value}",
}


def expectation_words(item: Mapping[str, Any]) -> str:
    """An expectation in words (``"one of critical, high, medium, low, info"``); unknown types by name."""
    config = item.get("expectation_config", {})
    kind, kwargs = config.get("type", ""), config.get("kwargs", {})
    words = EXPECTATIONS.get(kind)
    if words is None:
        return kind.removeprefix("expect_column_").replace("_", " ")
    values = {
        key: ", ".join(map(str, value)) if isinstance(value, list) else cell_text(value)
        for key, value in kwargs.items()
    }
    bounds = tuple(key for key in ("min_value", "max_value") if kwargs.get(key) is not None)
    words = _BOUNDS.get(bounds, words) if kind.endswith("_to_be_between") else words
    try:
        return words.format(**values)
    except KeyError:
        return kind.removeprefix("expect_column_").replace("_", " ")


def _quality_row(item: Mapping[str, Any], sample_size: int = 5) -> str:
    config, result = item.get("expectation_config", {}), item.get("result", {})
    passed = bool(item.get("success"))
    badge = (
        '<span class="hk-badge hk-badge-pass">pass</span>'
        if passed
        else '<span class="hk-badge hk-badge-fail">fail</span>'
    )
    where = [
        str(ref.get("source_ref", ref)) if isinstance(ref, dict) else str(ref)
        for ref in result.get("unexpected_index_list") or []
    ]
    values = [cell_text(value) for value in result.get("partial_unexpected_list") or []]
    sample = [f"{ref}: {value}" for ref, value in zip(where, values, strict=False)] or values or where
    shown = "; ".join(sample[:sample_size]) + (" …" if len(sample) > sample_size else "")
    return (
        f"<tr><td>{html.escape(expectation_words(item))}</td>"
        f'<td class="hk-nowrap">{html.escape(str(config.get("kwargs", {}).get("column", "—")))}</td>'
        f'<td class="hk-nowrap">{badge}</td>'
        f'<td class="hk-nowrap hk-num">{int(result.get("unexpected_count") or 0):,}</td>'
        f"<td>{html.escape(shown) or '—'}</td></tr>"
    )


def write_page(
    target: Path, *, title: str, fields: Sequence[tuple[str, str]], nav: list[tuple[str, str]], body: str
) -> Path:
    """Render one pack page on the shared template and write it, refusing a page that is not offline."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(pages.template_dir())), autoescape=True, keep_trailing_newline=True
    )
    report = {"title": title, "fields": list(fields), "nav": nav, "current": target.name}
    page = environment.get_template("pack_page.html.j2").render(
        report=report, body=jinja2.utils.markupsafe.Markup(body)
    )
    problems = pages.check_offline(page)
    if problems:
        raise InputError(located(str(target), None, f"the page would not be self-contained: {'; '.join(problems[:5])}"))
    target.write_text(page, encoding="utf-8")
    return target
