"""Display helpers the report notebooks call: charts, tables, tiles, narrative, checklist.

Every helper returns an IPython display object whose markup is built here, with every string that
came from the record HTML-escaped: finding titles, ticket summaries and asset names are attacker-
influenced (a scanner reports whatever a target says about itself), and the rendered report is
opened by security leaders. Nothing here emits JavaScript or refers to a URL, so the pages stay
readable offline for years. The CSS classes (``hk-*``) are styled once, in the report template
``handoffkit/report/templates/handoffkit_report``.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any
from xml.dom import minidom

# isort: split
import handoffkit.record._jsonschema  # noqa: F401 - before Altair, which imports jsonschema

# isort: split
import altair as alt
import pandas as pd
import vl_convert
from IPython.display import HTML, SVG

#: Charts draw aggregates; more rows than this means the notebook forgot to aggregate.
MAX_CHART_ROWS = 5_000

#: Checklist statuses and the badge class each one gets (classes never come from the data).
STATUS_BADGES = {
    "pass": "hk-badge-pass",
    "fail": "hk-badge-fail",
    "not-yet-measurable": "hk-badge-pending",
}

CHECKLIST_KEYS = ("item", "status", "evidence")


def chart(altair_chart: alt.TopLevelMixin) -> SVG:
    """Render an Altair chart to inline SVG with vl-convert: no JavaScript, no CDN, no network.

    Args:
        altair_chart: any top-level Altair chart (single, layered, concatenated, faceted) whose
            data are in-memory frames of at most :data:`MAX_CHART_ROWS` rows.

    Returns:
        An ``IPython.display.SVG`` (mime type ``image/svg+xml``); the report template inlines it.

    Raises:
        TypeError: ``altair_chart`` is not an Altair chart.
        ValueError: a dataset has more than :data:`MAX_CHART_ROWS` rows, or the chart reads data
            from a URL (the report must not depend on the network).
    """
    if not isinstance(altair_chart, alt.TopLevelMixin):
        raise TypeError(f"chart() expects an Altair chart, got {type(altair_chart).__name__}")
    # Count rows ourselves instead of relying on Altair's own limit, which a notebook may have
    # switched off (alt.data_transformers.disable_max_rows()): the message then says what to do.
    with alt.data_transformers.disable_max_rows():
        spec = altair_chart.to_dict()
    _check_chart_data(spec)
    svg = vl_convert.vegalite_to_svg(
        json.dumps(spec),
        vl_version=_vegalite_version(spec),
        allowed_base_urls=[],  # belt and braces: vl-convert may fetch nothing at all
    )
    return SVG(data=_scope_svg_ids(svg))


def _check_chart_data(spec: dict[str, Any]) -> None:
    """Refuse URL data and datasets larger than :data:`MAX_CHART_ROWS` anywhere in a chart spec."""
    for name, rows in spec.get("datasets", {}).items():
        _check_row_count(f"dataset {name}", len(rows))
    for data in _data_entries(spec):
        if "url" in data:
            raise ValueError(
                f"chart data comes from the URL {data['url']!r}; pass an aggregated DataFrame instead "
                "(the report is rendered and read offline)"
            )
        if isinstance(data.get("values"), list):
            _check_row_count("inline data", len(data["values"]))


def _check_row_count(what: str, rows: int) -> None:
    if rows > MAX_CHART_ROWS:
        raise ValueError(
            f"chart {what} has {rows:,} rows, more than {MAX_CHART_ROWS:,}: aggregate first "
            "(group and count in the library view or with DataFrame.groupby) and chart the aggregate"
        )


def _data_entries(node: Any) -> Iterable[dict[str, Any]]:
    """Every ``data`` object in a (possibly nested: layer, concat, facet, lookup) Vega-Lite spec."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, dict):
                yield value
            yield from _data_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _data_entries(value)


def _vegalite_version(spec: dict[str, Any]) -> str | None:
    """``"6.4"`` from the spec's ``$schema`` URL, so vl-convert renders the version Altair wrote."""
    match = re.search(r"/v(\d+)\.(\d+)", spec.get("$schema", ""))
    return f"{match[1]}.{match[2]}" if match else None


def _scope_svg_ids(svg: str) -> str:
    """Prefix the SVG's ids (clip paths, gradients) so several charts inlined in one page don't clash.

    Vega numbers its clip paths ``clip1``, ``clip2``… in every chart; inlined side by side, a later
    chart would be clipped by an earlier chart's rectangle. The prefix is a content hash, so the
    output stays deterministic (identical charts share identical definitions, which is harmless).
    Only attributes are rewritten, through a parser: chart text (record strings) is left as it is.
    """
    prefix = "hk" + hashlib.sha256(svg.encode("utf-8")).hexdigest()[:10] + "-"
    document = minidom.parseString(svg)
    for element in document.getElementsByTagName("*"):
        for name, value in list(element.attributes.items()):
            if name == "id":
                element.setAttribute(name, prefix + value)
            elif name in ("href", "xlink:href") and value.startswith("#"):
                element.setAttribute(name, f"#{prefix}{value[1:]}")
            elif "url(#" in value:
                element.setAttribute(name, value.replace("url(#", f"url(#{prefix}"))
    return document.documentElement.toxml()


def table(df: pd.DataFrame, max_rows: int = 50) -> HTML:
    """An escaped HTML table of the first ``max_rows`` rows, with a caption saying when it is clipped.

    Args:
        df: the frame to show (values and column names are escaped).
        max_rows: how many rows a reader sees; the caption gives the full count.

    Returns:
        An ``IPython.display.HTML`` object.
    """
    if max_rows < 1:
        raise ValueError(f"table(max_rows={max_rows}): expected at least 1")
    shown = df.head(max_rows)
    markup = shown.to_html(escape=True, index=False, border=0, classes="hk-table", na_rep="—")
    caption = _table_caption(len(shown), len(df))
    return HTML(f'<div class="hk-table-wrap">{markup}{caption}</div>')


def _table_caption(shown: int, total: int) -> str:
    if total == 0:
        return '<p class="hk-caption">no rows</p>'
    if shown < total:
        return f'<p class="hk-caption">showing {shown:,} of {total:,} rows</p>'
    return ""


def tiles(mapping: Mapping[str, Any]) -> HTML:
    """Headline-figure tiles: one tile per ``label: value`` pair, in the mapping's order.

    Integers get thousands separators and floats one decimal; everything is escaped.
    """
    parts = [
        f'<div class="hk-tile"><div class="hk-tile-value">{html.escape(_figure(value))}</div>'
        f'<div class="hk-tile-label">{html.escape(str(label))}</div></div>'
        for label, value in mapping.items()
    ]
    return HTML(f'<div class="hk-tiles">{"".join(parts)}</div>')


def _figure(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    return f"{value:,.1f}"


def narrative(paragraphs: list[str]) -> HTML:
    """Narrative paragraphs, each escaped as plain text.

    Deliberately not Markdown: Markdown passes raw HTML through, and the narrative quotes the record.
    """
    if isinstance(paragraphs, str):
        raise TypeError("narrative() expects a list of paragraphs, got one string; wrap it: [text]")
    body = "".join(f"<p>{html.escape(str(paragraph))}</p>" for paragraph in paragraphs)
    return HTML(f'<div class="hk-narrative">{body}</div>')


def checklist(items: Iterable[Mapping[str, Any]]) -> HTML:
    """The governance checklist: a table of item, status badge and evidence, all escaped.

    Args:
        items: mappings with ``item``, ``status`` (one of ``pass``, ``fail``, ``not-yet-measurable``)
            and ``evidence``.

    Raises:
        ValueError: an item lacks a key or has an unknown status (the message names the row).
    """
    rows = [_checklist_row(number, entry) for number, entry in enumerate(items, start=1)]
    head = "<tr><th>#</th><th>Item</th><th>Status</th><th>Evidence</th></tr>"
    return HTML(f'<table class="hk-table hk-checklist"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>')


def _checklist_row(number: int, entry: Mapping[str, Any]) -> str:
    missing = [key for key in CHECKLIST_KEYS if key not in entry]
    if missing:
        raise ValueError(f"checklist item {number}: missing {', '.join(missing)}; expected keys {CHECKLIST_KEYS}")
    status = str(entry["status"])
    if status not in STATUS_BADGES:
        close = difflib.get_close_matches(status, STATUS_BADGES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"checklist item {number}: status {status!r} is not one of {', '.join(STATUS_BADGES)}{hint}")
    badge = f'<span class="hk-badge {STATUS_BADGES[status]}">{html.escape(status)}</span>'
    return (
        f"<tr><td>{number}</td><td>{html.escape(str(entry['item']))}</td>"
        f"<td>{badge}</td><td>{html.escape(str(entry['evidence']))}</td></tr>"
    )
