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
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.dom import minidom

# isort: split
import handoffkit.record._jsonschema  # noqa: F401 - before Altair, which imports jsonschema

# isort: split
import altair as alt
import pandas as pd
import vl_convert
from IPython.display import HTML, SVG

from handoffkit.tickets import batches

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


#: Column labels readers see, for the record's column names; others are spelt out by :func:`label`.
LABELS = {
    "seq": "Seq",
    "occurred_at": "Time",
    "finding_id": "Finding",
    "finding_ids": "Findings",
    "ticket_key": "Ticket",
    "asset_ref": "Asset",
    "sla_due": "SLA due",
    "first_seen": "First seen",
    "last_seen": "Last seen",
    "mean_days": "Mean days",
    "compliance_pct": "Compliance %",
    "not_breached_pct": "Not in breach %",
    "routing_miss_rate_pct": "Routing miss rate %",
    "as_of": "As of",
    "subject": "Finding / ticket",
    "base_vector": "Base vector",
    "iso27001": "ISO 27001",
    "soc2": "SOC 2",
    "pci_dss": "PCI DSS",
    "nist_800_53": "NIST 800-53",
}
#: Words kept in capitals when a column name is spelt out.
#: Numeric columns that are identifiers, shown without thousands separators.
IDENTIFIERS = frozenset({"seq", "number", "#"})
_ACRONYMS = {"id": "ID", "ids": "IDs", "sla": "SLA", "kev": "KEV", "mttr": "MTTR", "cvss": "CVSS", "pct": "%"}
#: A cell that is one token (an id, a date, an instant, a number, a key): it must never wrap.
_TOKEN = re.compile(rf"^(?:[^\s]{{1,24}}|{batches.PATTERN})$")  # a batch id runs to GitHub's 50-character label
#: An ISO 8601 instant as the record writes it (``2026-09-30T23:59:59.999999Z`` or with an offset).
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")


def label(column: Any) -> str:
    """The heading a reader sees for a column name: ``finding_id`` → ``Finding``, ``sla_breached`` →
    ``SLA breached``."""
    name = str(column)
    if name in LABELS:
        return LABELS[name]
    words = [_ACRONYMS.get(word.lower(), word) for word in name.replace("_", " ").split()]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else name


def minute(value: Any) -> str:
    """An instant as pages show it, to the minute in UTC: ``2026-09-30 23:59 UTC`` (CSV files keep the
    full precision). Text that is not an instant is returned unchanged; a missing value is a dash."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, str):
        if not _INSTANT.match(value):
            return value
        value = pd.Timestamp(value)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def cell_text(value: Any) -> str:
    """A value as a table cell shows it: thousands separators, one decimal, instants to the minute."""
    if value is None or (not isinstance(value, (str, list, tuple, dict)) and pd.isna(value)):
        return "—"
    if isinstance(value, (datetime, pd.Timestamp)):
        return minute(value)
    if isinstance(value, str):
        return minute(value) if _INSTANT.match(value) else value
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(item) for item in value) or "—"
    return _figure(value)


def table(df: pd.DataFrame, max_rows: int = 50, *, csv: str | None = None, caption: str | None = None) -> HTML:
    """An escaped HTML table of the first ``max_rows`` rows a person reads: headings spelt out
    (:func:`label`), numbers with thousands separators and right-aligned, instants to the minute; cells
    holding one token (ids, dates, numbers) never wrap, and no cell breaks inside a word.

    Args:
        df: the frame to show (values and column names are escaped).
        max_rows: how many rows a reader sees; the caption gives the full count.
        csv: a file beside the page holding every row (linked from the caption when rows are left off).
        caption: a sentence said under the table.

    Returns:
        An ``IPython.display.HTML`` object.
    """
    if max_rows < 1:
        raise ValueError(f"table(max_rows={max_rows}): expected at least 1")
    shown = df.head(max_rows)
    # from the values, not the dtype: the same numbers may arrive as int64 or object (a frame read back
    # from the shared memo), and the page must not change with that
    numeric = [_numbers_only(df.iloc[:, i]) for i in range(df.shape[1])]
    head = "".join(
        ('<th class="hk-num">' if num else "<th>") + f"{html.escape(label(column))}</th>"
        for column, num in zip(df.columns, numeric, strict=True)
    )
    ids = [str(column) in IDENTIFIERS for column in df.columns]
    rows = "".join(
        "<tr>" + "".join(_cell(value, num, i) for value, num, i in zip(row, numeric, ids, strict=True)) + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    markup = f'<table class="hk-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    return HTML(f'<div class="hk-table-wrap">{markup}{_table_caption(len(shown), len(df), csv, caption)}</div>')


def _numbers_only(column: pd.Series) -> bool:
    """Every present value is a number (booleans are not)."""
    present = column.dropna()
    return not present.empty and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in present.tolist())


def _cell(value: Any, numeric: bool, identifier: bool) -> str:
    text = str(value) if identifier and not pd.isna(value) else cell_text(value)
    classes = ["hk-nowrap"] if numeric or _TOKEN.match(text) or _is_instant_text(text) else []
    if numeric:
        classes.append("hk-num")
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}>{html.escape(text)}</td>"


def _is_instant_text(text: str) -> bool:
    return text.endswith(" UTC") and len(text) == 20


def _table_caption(shown: int, total: int, csv: str | None = None, caption: str | None = None) -> str:
    said = [html.escape(caption)] if caption else []
    if total == 0:
        said.append("no rows")
    elif shown < total:
        said.append(f"showing {shown:,} of {total:,} rows")
        if csv:
            said.append(f'every row: <a class="hk-csv-link" href="{html.escape(csv)}">{html.escape(csv)}</a>')
    return f'<p class="hk-caption">{"; ".join(said)}</p>' if said else ""


def tiles(mapping: Mapping[str, Any]) -> HTML:
    """Headline-figure tiles: one tile per ``label: value`` pair, in the mapping's order.

    A value may be a :class:`Tile` (status against a target, change since the previous period);
    integers get thousands separators and floats one decimal; everything is escaped.
    """
    return HTML(f'<div class="hk-tiles">{"".join(_tile(label, value) for label, value in mapping.items())}</div>')


@dataclass(frozen=True)
class Tile:
    """A headline figure with its standing: ``status`` one of :data:`TILE_STATUSES` (or None), the
    target in words, and the change since the previous period in words."""

    value: Any
    status: str | None = None
    target: str | None = None
    change: str | None = None


#: Tile statuses and the class each gets (classes never come from the data).
TILE_STATUSES = {"on target": "hk-on-target", "at risk": "hk-at-risk", "off target": "hk-off-target"}


def _tile(name: Any, value: Any) -> str:
    tile = value if isinstance(value, Tile) else Tile(value)
    if tile.status is not None and tile.status not in TILE_STATUSES:
        raise ValueError(f"tile {name!r}: status {tile.status!r} is not one of {', '.join(TILE_STATUSES)}")
    kind = f" {TILE_STATUSES[tile.status]}" if tile.status else ""
    status = f'<div class="hk-tile-status">{html.escape(tile.status)}</div>' if tile.status else ""
    details = "".join(
        f'<div class="hk-tile-detail">{html.escape(text)}</div>' for text in (tile.target, tile.change) if text
    )
    return (
        f'<div class="hk-tile{kind}"><div class="hk-tile-value">{html.escape(_figure(tile.value))}</div>'
        f'<div class="hk-tile-label">{html.escape(str(name))}</div>{status}{details}</div>'
    )


def _figure(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    return f"{value:,.1f}"


def decisions(items: Iterable[Mapping[str, Any]], max_ids: int = 8) -> HTML:
    """The "needs a decision" box: one line per item (``what`` and its ``ids``, the first ``max_ids``
    shown with how many more), or a line saying nothing needs a decision. Everything is escaped."""
    lines = []
    for item in items:
        ids = [str(i) for i in item.get("ids") or []]
        more = f" … (+{len(ids) - max_ids:,})" if len(ids) > max_ids else ""
        # Each id its own unbreakable span: a browser would otherwise break "HK-195" at its hyphen.
        shown = ", ".join(f'<span class="hk-id">{html.escape(i)}</span>' for i in ids[:max_ids])
        listed = f' <span class="hk-ids">{shown}{html.escape(more)}</span>' if ids else ""
        count = f" ({len(ids):,})" if ids else ""
        lines.append(
            f"<li>{html.escape(str(item['what']))}{count}:{listed}</li>"
            if ids
            else f"<li>{html.escape(str(item['what']))}</li>"
        )
    if not lines:
        return HTML(
            '<div class="hk-decisions hk-none"><h2>Needs a decision</h2><p>Nothing: no overdue KEV finding, '
            "expired exception, owner-less critical finding or failing checklist item.</p></div>"
        )
    return HTML(f'<div class="hk-decisions"><h2>Needs a decision</h2><ul>{"".join(lines)}</ul></div>')


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
        f'<tr><td class="hk-nowrap hk-num">{number}</td>'
        f"<td>{html.escape(str(entry['item']))}</td>"
        f'<td class="hk-nowrap">{badge}</td><td>{html.escape(str(entry["evidence"]))}</td></tr>'
    )
