"""The portfolio: one leadership page across every engagement of the record, as of an instant.

:func:`figures` gives one row per engagement that existed at the instant ``T`` — open findings by band,
SLA compliance, KEV findings past their due date, governance checklist items passing, the last
reconciliation and whether it is overdue — then a totals row. Each figure is the one the engagement's
own leadership page shows (:func:`handoffkit.report.facts.standing`, :func:`handoffkit.report.checklist.evaluate`,
the reconciliation of :func:`handoffkit.report.metrics.gaps`): a function of the activity log up to ``T``
and of the policy each engagement had in force at ``T``. The totals are the same functions over every
engagement's findings together (a compliance percentage is never averaged); their last reconciliation
is the stalest.

:func:`render` writes the page (``portfolio.html``, the pack's look: header, navigation, footer, no
script, nothing loaded), its figures (``portfolio.csv``, formula-safe, instants whole) and a manifest
(``manifest.json``: every file's SHA-256 and the log's head as of ``T``, an anchor ``handoffkit log
verify --anchor`` accepts), and logs ``portfolio_rendered``. Rendered again as of the same instant after
any later activity, the CSV is the same bytes and the page reads the same; an engagement created after
``T`` is not on it. An engagement's name links to its evidence pack when one as of the same instant sits
beside the portfolio (``<out>/<KEY>/`` or ``<out>/../<KEY>-<day>/``, the pack's default directory).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from handoffkit.record import csvsafe, replay, schema
from handoffkit.record.canonical import sha256_bytes, sha256_file
from handoffkit.record.log import Event, Source, event_data, log_event
from handoffkit.record.model import SEVERITIES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.report import checklist, contents, display, facts, metrics

PAGE = "portfolio.html"
CSV = "portfolio.csv"
MANIFEST = contents.MANIFEST
TITLE = "Portfolio: handoff posture across engagements"
TOTAL = "all engagements"
COLUMNS = (
    "engagement",
    "name",
    *(f"open_{band}" for band in SEVERITIES),
    "open_findings",
    "sla_compliance_pct",
    "kev_overdue",
    "checklist_passing",
    "checklist_items",
    "last_reconciliation",
    "reconciliation_overdue",
)
"""The columns of :func:`figures` and of ``portfolio.csv``."""


def engagements_at(store: Store, when: str) -> list[tuple[str, str]]:
    """``(key, name)`` of every engagement created at or before ``when``, by key; the name as it stood
    then (its creation's, or its last rename's at or before ``when``)."""
    ev = schema.events.c
    with store.read() as conn:
        rows = conn.execute(
            select(ev.engagement, ev.payload)
            .where(
                ev.type.in_(("engagement_created", "engagement_renamed")),
                ev.outcome == "success",
                ev.occurred_at <= when,
            )
            .order_by(ev.seq)
        ).all()
    names: dict[str, str] = {}
    for key, payload in rows:  # one or two events per engagement, not per finding
        data = event_data(payload)
        names[key] = data.get("to") or data.get("name") or key
    return sorted(names.items())


def figures(store: Store, as_of: datetime | date | str | None = None) -> pd.DataFrame:
    """One row per engagement as of ``as_of`` (default now), then the totals row (``engagement`` is
    :data:`TOTAL`); columns :data:`COLUMNS` (see the module docstring). ``sla_compliance_pct`` is NaN where
    no finding carries an SLA; ``last_reconciliation`` (UTC text) is missing where none has run by then."""
    when = replay.instant(as_of if as_of is not None else store.now())
    rows, frames = [], []
    for key, name in engagements_at(store, when):
        items = checklist.evaluate(store, key, schema.parse_ts(when))
        with store.read() as conn:
            frame = replay.state_frame(conn, key, when)
            gaps = metrics.gaps(conn, key, when)
        frames.append(frame)
        runs = next(item.numbers.get("runs", 0) for item in items if item.number == 10)
        rows.append(
            _row(key, name, facts.standing(frame, when), items)
            | {
                "last_reconciliation": gaps.last_reconciled if runs else None,
                "reconciliation_overdue": bool(gaps.counts["reconciliation_overdue"]),
            }
        )
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    every = pd.concat(frames, ignore_index=True)
    passing, total = sum(r["checklist_passing"] for r in rows), sum(r["checklist_items"] for r in rows)
    runs_known = [r["last_reconciliation"] for r in rows]
    stalest = None if None in runs_known else min(runs_known)
    totals = _row(TOTAL, f"{len(rows)} engagements", facts.standing(every, when), [])
    totals |= {
        "checklist_passing": passing,
        "checklist_items": total,
        "last_reconciliation": stalest,
        "reconciliation_overdue": any(r["reconciliation_overdue"] for r in rows),
    }
    return pd.DataFrame([*rows, totals], columns=list(COLUMNS))


def _row(key: str, name: str, standing: dict[str, Any], items: list[checklist.Item]) -> dict[str, Any]:
    return {
        "engagement": key,
        "name": name,
        **{f"open_{band}": standing["open_by_severity"][band] for band in SEVERITIES},
        "open_findings": standing["open_findings"],
        "sla_compliance_pct": standing["sla_compliance_pct"],
        "kev_overdue": standing["kev_breached"],
        "checklist_passing": sum(item.status == "pass" for item in items),
        "checklist_items": len(items),
    }


# ------------------------------------------------------------------------------------------ rendering


@dataclass
class RenderedPortfolio:
    """What :func:`render` wrote."""

    out_dir: Path
    as_of: str
    chain_head: dict[str, Any]
    engagements: list[str]
    page: Path
    csv: Path
    manifest: Path
    manifest_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "as_of": self.as_of,
            "chain_head": self.chain_head,
            "engagements": self.engagements,
            "page": str(self.page),
            "csv": str(self.csv),
            "manifest": str(self.manifest),
            "manifest_sha256": self.manifest_sha256,
        }


def render(
    store: Store,
    *,
    as_of: datetime | date | str | None = None,
    out_dir: str | Path | None = None,
    actor: str,
) -> RenderedPortfolio:
    """Write the portfolio page, its CSV and manifest as of ``as_of`` (default now) into ``out_dir``
    (default ``outputs/portfolio-<as-of day>/``) and log ``portfolio_rendered``."""
    actor = require_actor(actor)
    when = replay.instant(as_of if as_of is not None else store.now())
    out = (Path(out_dir) if out_dir else Path("outputs") / f"portfolio-{when[:10]}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with store.read() as conn:
        seq, row_hash = replay.head(conn, when)
    chain_head = {"seq": seq, "row_hash": row_hash}
    table = figures(store, when)
    keys = [k for k in table["engagement"] if k != TOTAL]
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    (out / CSV).write_text(csvsafe.to_csv(records, list(COLUMNS)), encoding="utf-8")
    fields = [
        ("Engagements", f"{len(keys):,}"),
        ("As of", display.minute(when)),
        ("Activity log head (seq)", f"{seq}"),
        ("Activity log head (SHA-256)", row_hash),
    ]
    packs = {key: _pack_link(out, key, when) for key in keys}
    body = (
        _tiles(table.iloc[-1]) + _table(table, packs, when)
        if keys
        else f"<p>No engagement on the record as of {html.escape(display.minute(when))}.</p>"
    )
    nav = [(PAGE, "Portfolio"), (MANIFEST, "Manifest")]
    contents.write_page(out / PAGE, title=TITLE, fields=fields, nav=nav, body=body)
    manifest = _manifest(out, store.safe_url, when, chain_head, keys)
    digest = sha256_bytes(manifest.read_bytes())
    log_event(
        store,
        Event(
            type="portfolio_rendered",
            actor=actor,
            source=Source(str(manifest), digest),
            data={
                "as_of": when,
                "engagements": keys,
                "out": str(out),
                "manifest_sha256": digest,
                "chain_head": chain_head,
            },
        ),
    )
    return RenderedPortfolio(out, when, chain_head, keys, out / PAGE, out / CSV, manifest, digest)


def _pack_link(out: Path, key: str, when: str) -> str | None:
    """The relative link to ``key``'s evidence pack as of ``when`` beside the portfolio, if there is one."""
    for relative in (f"{key}/", f"../{key}-{when[:10]}/"):
        manifest = out / relative / MANIFEST
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("engagement") == key and doc.get("as_of") == when:
            return relative + contents.INDEX
    return None


def _tiles(totals: pd.Series) -> str:
    """The totals as the leadership page's tiles, judged against the same default thresholds."""
    limits = facts.THRESHOLDS
    pct, critical, kev = totals["sla_compliance_pct"], int(totals["open_critical"]), int(totals["kev_overdue"])
    pct = None if pd.isna(pct) else float(pct)
    failing = int(totals["checklist_items"] - totals["checklist_passing"])
    shown = {
        "SLA compliance": display.Tile(
            "not measurable" if pct is None else f"{pct:.1f}%", limits["sla_compliance_pct"].status(pct)
        ),
        "open critical findings": display.Tile(critical, limits["open_critical"].status(critical)),
        "KEV findings past due": display.Tile(kev, limits["kev_overdue"].status(kev)),
        "checklist items passing": display.Tile(
            f"{int(totals['checklist_passing'])} of {int(totals['checklist_items'])}",
            limits["checklist_failing"].status(failing),
        ),
        "open findings": int(totals["open_findings"]),
    }
    return str(display.tiles(shown).data)


HEADINGS = (
    ("Engagement", False),
    *((band.capitalize(), True) for band in SEVERITIES),
    ("Open", True),
    ("SLA compliance", True),
    ("KEV past due", True),
    ("Checklist passing", True),
    ("Last reconciliation", False),
)


def _table(table: pd.DataFrame, packs: dict[str, str | None], when: str) -> str:
    head = "".join(
        f'<th class="hk-num">{html.escape(h)}</th>' if n else f"<th>{html.escape(h)}</th>" for h, n in HEADINGS
    )
    body = "".join(_tr(row, packs.get(row["engagement"])) for row in table.iloc[:-1].to_dict("records"))
    total = _tr(table.iloc[-1].to_dict(), None)
    said = (
        f"Each row is the engagement's record as of {display.minute(when)} under the policy it had in force "
        "then: the figures its own leadership page shows. Open findings by calibrated severity; SLA compliance "
        "over the findings carrying an SLA; KEV findings open past their due date; governance checklist items "
        "passing of those evaluated; the last reconciliation run (overdue when older than the policy's cadence). "
        "The totals row computes the same figures over every engagement's findings; its reconciliation is the "
        "stalest."
    )
    return (
        "<h2>Engagements</h2>"
        f'<div class="hk-table-wrap"><table class="hk-table hk-portfolio"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody><tfoot>{total}</tfoot></table>"
        f'<p class="hk-caption">{html.escape(said)} Every figure: <a class="hk-csv-link" href="{CSV}">{CSV}</a>.</p>'
        "</div>"
    )


def _tr(row: dict[str, Any], pack: str | None) -> str:
    key, name = html.escape(str(row["engagement"])), html.escape(str(row["name"]))
    if row["engagement"] == TOTAL:
        engagement = "All engagements"
    else:
        label = f'<a href="{html.escape(pack)}">{key}</a>' if pack else key
        engagement = f'<span class="hk-nowrap">{label}</span>' + (
            f'<span class="hk-engagement-name">{name}</span>' if name != key else ""
        )
    pct = row["sla_compliance_pct"]
    cells = [
        *(display.cell_text(int(row[f"open_{band}"])) for band in SEVERITIES),
        display.cell_text(int(row["open_findings"])),
        "not measurable" if pct is None or pd.isna(pct) else f"{float(pct):.1f}%",
        display.cell_text(int(row["kev_overdue"])),
        f"{int(row['checklist_passing'])} of {int(row['checklist_items'])}",
    ]
    numbers = "".join(f'<td class="hk-nowrap hk-num">{html.escape(c)}</td>' for c in cells)
    last = "never" if pd.isna(row["last_reconciliation"]) else display.minute(row["last_reconciliation"])
    overdue = ' <span class="hk-badge hk-badge-fail">overdue</span>' if row["reconciliation_overdue"] else ""
    tag = "th" if row["engagement"] == TOTAL else "td"
    return (
        f'<tr><{tag} scope="row">{engagement}</{tag}>{numbers}'
        # The instant never breaks; the badge may go under it, so the table fits a laptop screen.
        f'<td><span class="hk-nowrap">{html.escape(last)}</span>{overdue}</td></tr>'
    )


def _manifest(out: Path, safe_url: str, when: str, chain_head: dict[str, Any], keys: list[str]) -> Path:
    """``manifest.json``: the portfolio's files with their SHA-256, the log's head as of then, the
    engagements it covers and the database it read (without secrets)."""
    target = out / MANIFEST
    files = {
        name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size} for name in sorted((PAGE, CSV))
    }
    doc = {
        "kind": "portfolio",
        "as_of": when,
        "chain_head": chain_head,
        "engagements": keys,
        "parameters": {"db": safe_url, "as_of": when},
        "files": files,
    }
    target.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target
