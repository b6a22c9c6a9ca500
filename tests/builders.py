"""Builders the whole suite shares: who acts, where the test data lives, records made through the real
code paths, and small readers of what a test wrote.

- Findings without a scanner (:func:`add_findings`) and a short varied activity log (:func:`write_log`),
  for the record's own tests.
- Real scanner files (``handoffkit.demo.formats``) ingested through the real pipeline (:class:`Record`),
  and real ticket exports ingested through ``snapshots.ingest_tickets`` (:class:`Exports`, :func:`ticket`),
  into the ``engagement`` fixture: ACME, with ``tests/data/policy.yaml`` and ``owners.csv``.
- A small, fully known programme (:func:`small_programme`) for exact metric expectations, and the demo's
  reporting period (:data:`START`, :data:`END`, :data:`AS_OF`).
- An attacker with write access to the database (:func:`drop_append_only`, :func:`set_events`).

The fixtures that hand these out live in ``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import make_url

from handoffkit.demo import formats
from handoffkit.ingest import kev, pipeline
from handoffkit.record import findings, ids, schema
from handoffkit.record.log import Event, append
from handoffkit.record.store import Store
from handoffkit.tickets import snapshots
from handoffkit.workflow import routing, triage, verification

#: The named person every test acts as, unless it is about who acts.
ACTOR = "Ana Silva"
#: Who runs the scanners whose files :class:`Record` ingests.
SCANNER = "scanner-bot operator Eve Marsh"

ROOT = Path(__file__).resolve().parents[1]
#: Hand-written test data: the policy, the owners map, scans and ticket exports.
DATA = ROOT / "tests" / "data"
#: The shared corpus of real public samples, never copied into the repository.
CORPUS = Path(os.environ.get("HANDOFFKIT_CORPUS", ROOT.parent / "shared" / "corpus"))

#: Assets of the owners map: one owned by Priya Raman, one being decommissioned, one a shared queue.
SHOP, LEGACY, QUEUE = "https://shop.test", "https://legacy.test", "https://queue.test"
GENERATED = "Mon, 2 Mar 2026 08:00:00"

#: The demo's last quarter, and the instant the view tests read it as of.
AS_OF = "2026-09-30"
START, END = "2026-07-01", "2026-09-30"


def corpus_path(relative: str) -> Path:
    """``corpus_path("cisa_kev/x.json")`` → that file of the shared corpus; the test is skipped (and CI
    fails) when it is absent."""
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"corpus unavailable: {path} (set HANDOFFKIT_CORPUS)")
    return path


#: Corpus folders that hold no scanner output (ticket exports, the KEV catalog, JSON schemas).
NOT_SCANS = frozenset({"jira", "github_issues", "cisa_kev", "schemas"})
_SOURCES_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<bytes>\d+) \| \*\*(?P<count>\d+|n/a)\*\* \|")


@dataclass(frozen=True)
class CorpusScan:
    """One scanner file SOURCES.md lists: its path in the corpus, its size and its expected count."""

    file: str
    size: int
    count: int


def corpus_scans() -> list[CorpusScan]:
    """Every scanner file of the corpus with the count SOURCES.md gives it (read from SOURCES.md itself,
    so the expectation is written once); empty when the corpus is absent."""
    sources = CORPUS / "SOURCES.md"
    if not sources.is_file():
        return []
    rows = (_SOURCES_ROW.match(line) for line in sources.read_text(encoding="utf-8").splitlines())
    return [
        CorpusScan(m["file"], int(m["bytes"]), int(m["count"]))
        for m in rows
        if m and m["count"] != "n/a" and m["file"].split("/", 1)[0] not in NOT_SCANS
    ]


# ---------------------------------------------------------------------------- findings without a scanner

CHAIN_LENGTH = 30


def finding_row(engagement: str, number: int, when: datetime, **overrides: Any) -> dict[str, Any]:
    """A complete findings row as an ingest would write it (every column present)."""
    row = {c: None for c in findings.FIELDS if c != "row_version"}
    row.update(
        {
            "finding_id": ids.make(number),
            "number": number,
            "engagement": engagement,
            "fingerprint": f"fp-{number:04d}",
            "kind": "web",
            "title": f"Reflected XSS in search {number}",
            "asset_ref": "https://shop.test",
            "tool": "OWASP ZAP",
            "tool_version": "2.15.0",
            "rule_ref": "40012",
            "location": "https://shop.test/search?q=",
            "cves": "",
            "cwes": "CWE-79",
            "raw_severity": "High",
            "scanner_severity": "high",
            "cvss_vector": None,
            "cvss_score": None,
            "description": "Input is reflected unescaped.",
            "references": "https://owasp.org/xss",
            "suppressed": False,
            "external_id": None,
            "severity": "high",
            "kev": False,
            "kev_due": None,
            "triage": "validated",
            "state": "validated",
            "validated_at": when,
            "first_seen": when,
            "last_seen": when,
            "last_scan_id": None,
        }
    )
    row.update(overrides)
    return row


def add_findings(store: Store, engagement: str, count: int = 1, **overrides: Any) -> list[str]:
    """Create ``count`` validated findings (one ``finding_created`` event each); returns their ids."""
    with store.write() as conn:
        first = findings.next_number(conn)
        rows = [finding_row(engagement, n, store.now(), **overrides) for n in range(first, first + count)]
        findings.create_many(conn, store, rows, actor=ACTOR)
    return [r["finding_id"] for r in rows]


def write_log(store: Store, length: int = CHAIN_LENGTH) -> None:
    """Append ``length`` varied events in a few transactions, the clock moving between them."""
    start = store.clock.fixed or datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    done = 0
    for batch in range(3):
        store.clock.fixed = start + timedelta(hours=batch, microseconds=batch * 7)
        size = (length - done) if batch == 2 else length // 3
        with store.write() as conn:
            append(
                conn,
                store,
                [
                    Event(
                        type="note",
                        actor=("Ana Silva", "Ben Okoro", "Chen Wei")[i % 3],
                        engagement="ACME",
                        finding_id=f"HK-{i}" if i % 2 else None,
                        ticket_key=f"SEC-{i}" if i % 5 == 0 else None,
                        outcome=("success", "denied", "failure")[i % 3],
                        data={
                            "n": i,
                            "due": date(2026, 4, 1) + timedelta(days=i),
                            "score": i / 4,
                            "tags": ["b", "a"],
                            "nested": {"z": 1, "a": [None, True]},
                        },
                    )
                    for i in range(done, done + size)
                ],
            )
        done += size
    store.clock.fixed = start


# ------------------------------------------------------------------------------- scanner files, ingested


@dataclass
class Record:
    """Writes scanner files, ingests them and returns the new finding ids in file order."""

    store: Store
    engagement: str
    workdir: Path
    _n: itertools.count = field(default_factory=lambda: itertools.count(1))

    def ingest(self, name: str, data: bytes) -> pipeline.FileResult:
        path = self.workdir / name
        path.write_bytes(data)
        [result] = pipeline.ingest_scan(self.store, self.engagement, [path], actor=SCANNER)
        assert result.status == "ok", result.error
        return result

    def ids(self, asset_prefix: str, titles: Iterable[str]) -> list[str]:
        """Finding ids by title (titles are unique within a test), in the order given."""
        f = schema.findings.c
        titles = list(titles)
        with self.store.read() as conn:
            found = dict(
                conn.execute(
                    select(f.title, f.finding_id).where(
                        f.engagement == self.engagement,
                        f.title.in_(titles),
                        func.lower(f.asset_ref).startswith(asset_prefix.lower(), autoescape=True),
                    )
                ).all()
            )
        return [found[t] for t in titles]

    def web(self, origin: str, *alerts: tuple[str, int], generated: str = GENERATED) -> list[str]:
        """A ZAP report of one site with alerts ``(name, risk 0-3)``, one instance each.

        The same name always gives the same plugin and URI, so a later report with a different
        ``generated`` stamp is a rescan of the same findings (and omitting one makes it absent).
        """
        items = []
        for name, risk in alerts:
            n = zlib.crc32(name.encode()) % 50_000
            items.append(
                {
                    "plugin": 40000 + n,
                    "name": name,
                    "risk": risk,
                    "cwe": 79,
                    "wasc": 8,
                    "desc": f"{name} description",
                    "solution": "Encode output.",
                    "instances": [
                        {
                            "uri": f"{origin}/page{n}",
                            "method": "GET",
                            "param": "q",
                            "evidence": f"<script>evidence-{n}</script>",
                        }
                    ],
                }
            )
        self.ingest(f"zap-{next(self._n)}.json", formats.zap([{"origin": origin, "alerts": items}], generated))
        return self.ids(origin, [name for name, _ in alerts])

    def host(self, host: str, *items: dict[str, Any], scan: str = "weekly") -> list[str]:
        """A Nessus report of one host with items ``{"name", "severity" 0-4, "cves", "vector", "score",
        "port"}``; plugin ids derive from the name (see :meth:`web`)."""
        rows = []
        for it in items:
            sev = it["severity"]
            rows.append(
                {
                    "port": it.get("port", 0),
                    "protocol": "tcp",
                    "svc": "www",
                    "severity": sev,
                    "plugin": 100000 + zlib.crc32(it["name"].encode()) % 50_000,
                    "name": it["name"],
                    "family": "General",
                    "cves": it.get("cves", []),
                    "vector": it.get("vector"),
                    "score": it.get("score"),
                    "output": f"output of {scan}",
                    "description": f"{it['name']}.",
                    "solution": "Apply the vendor patch.",
                    "risk": ["None", "Low", "Medium", "High", "Critical"][sev],
                }
            )
        hosts = [{"name": host, "ip": "10.0.0.1", "items": rows}]
        self.ingest(f"nessus-{next(self._n)}.nessus", formats.nessus(hosts, scan))
        prefix = host if "://" not in host else "/".join(host.split("/")[:3])  # a URL host is its origin
        return self.ids(prefix, [it["name"] for it in items])

    def kev(self, *entries: tuple[str, str]) -> None:
        """Load a KEV catalog (CISA's layout) listing ``(cve, due date)``."""
        doc = formats.kev_catalog(
            [
                {
                    "cve": cve,
                    "vendor": "Example",
                    "product": "lib",
                    "name": f"{cve} flaw",
                    "added": "2026-02-20",
                    "due": due,
                }
                for cve, due in entries
            ],
            "2026.03.01",
            "2026-03-01T12:00:00.000Z",
        )
        path = self.workdir / f"kev-{next(self._n)}.json"
        path.write_bytes(doc)
        kev.load(self.store, path, actor=ACTOR)


def validate(store: Store, ids: Iterable[str]) -> None:
    triage.triage(store, list(ids), "validated", reason="confirmed by hand", actor=ACTOR)


def route(store: Store, engagement: str = "ACME", **kwargs: Any) -> routing.RoutingResult:
    return routing.route(store, engagement, actor=ACTOR, **kwargs)


# --------------------------------------------------------------------------------- ticket exports, ingested

STAMP = "2026-03-02T10:00:00.000+0000"
WRITERS = {"jira": formats.jira_csv, "github": formats.github_issues, "servicenow": formats.servicenow}
PRIORITY = {
    "jira": {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low", "info": "Lowest"},
    "github": {b: f"severity:{b}" for b in ("critical", "high", "medium", "low", "info")},
    "servicenow": {
        "critical": "1 - Critical",
        "high": "2 - High",
        "medium": "3 - Moderate",
        "low": "4 - Low",
        "info": "5 - Planning",
    },
}
DONE = {"category": "done", "status": "Done", "resolution": "Done"}
IN_PROGRESS = {"category": "in_progress", "status": "In Progress", "resolution": None}


def ticket(
    system: str,
    number: int,
    finding_ids: list[str],
    *,
    band: str = "high",
    title: str | None = None,
    assignee: str | None = "Priya Raman",
    labels: list[str] | None = None,
    with_token: bool = True,
    finding_field: bool = True,
    **state: Any,
) -> dict[str, Any]:
    """One ticket row for :data:`WRITERS` (keys per system: SEC-n, example/shop#n, INC000000n)."""
    key = {"jira": f"SEC-{number}", "github": f"example/shop#{number}", "servicenow": f"INC{number:07d}"}[system]
    tokens = " ".join(f"[{f}]" for f in finding_ids) if with_token else ""
    row = {
        "key": key,
        "id": str(number),
        "title": title or f"{tokens} Fix it".strip(),
        "status": "To Do",
        "category": "todo",
        "priority": PRIORITY[system][band],
        "resolution": None,
        "assignee": assignee,
        "created": STAMP,
        "updated": STAMP,
        "description": "See the record.\n" + tokens,
        "labels": labels if labels is not None else [*finding_ids, "security"],
        "finding_field": " ".join(finding_ids) if finding_field else "",
    }
    if system == "github":
        row["labels"] = [*row["labels"], row["priority"]]
    row.update(state)
    return row


@dataclass
class Exports:
    """Writes one export file per call and ingests it; returns the file's result."""

    store: Store
    engagement: str
    workdir: Path
    _n: itertools.count = field(default_factory=lambda: itertools.count(1))

    def write(self, system: str, rows: list[dict[str, Any]]) -> Path:
        suffix = ".csv" if system == "jira" else ".json"
        path = self.workdir / f"{system}-export-{next(self._n)}{suffix}"
        path.write_bytes(WRITERS[system](rows))
        return path

    def ingest(self, system: str, *rows: dict[str, Any], expect: str = "ok") -> snapshots.TicketFileResult:
        """``expect="duplicate"`` for an export whose bytes were imported already."""
        [result] = snapshots.ingest_tickets(
            self.store, self.engagement, [self.write(system, list(rows))], system=system, actor=ACTOR
        )
        assert result.status == expect, result.error
        return result


# ---------------------------------------------------------------------------------- the small programme

ORIGIN = "https://shop.test"
ALERTS = [(1, "Reflected XSS", 3), (2, "Missing CSP header", 2), (3, "Cookie without Secure flag", 1)]


def at(store: Store, day: int, hour: int = 9) -> datetime:
    """Set the store's clock to ``day`` March 2026, ``hour``:00 UTC."""
    store.clock.fixed = datetime(2026, 3, day, hour, tzinfo=UTC)
    return store.clock.fixed


def zap_scan(path: Path, plugins: list[int], generated: str) -> Path:
    """A ZAP report of :data:`ORIGIN` with the :data:`ALERTS` numbered ``plugins``."""
    alerts = [
        {
            "plugin": 10_000 + n,
            "name": name,
            "risk": risk,
            "cwe": "79",
            "wasc": 8,
            "desc": name,
            "solution": "Fix it.",
            "instances": [{"uri": f"{ORIGIN}/p{n}", "method": "GET", "param": "q", "attack": "", "evidence": "x"}],
        }
        for n, name, risk in ALERTS
        if n in plugins
    ]
    path.write_bytes(formats.zap([{"origin": ORIGIN, "alerts": alerts}], generated))
    return path


def small_programme(store: Store, engagement: str, workdir: Path) -> None:
    """A small, fully known programme on ``engagement``.

    Timeline (UTC, 2026): three ZAP findings on https://shop.test appear on 1 March, are validated on
    2 March and routed on 3 March; HK-1 is verified by retest on 10 March, HK-2 by commit on 12 March;
    the rescan of 20 March finds HK-1 again (it reopens). Nothing else happens.
    """
    at(store, 1)
    pipeline.ingest_scan(store, engagement, [zap_scan(workdir / "scan1.json", [1, 2, 3], "2026-03-01")], actor=ACTOR)
    at(store, 2)
    triage.triage(store, ["HK-1", "HK-2", "HK-3"], "validated", reason="confirmed", actor=ACTOR)
    at(store, 3)
    routing.route(store, engagement, actor=ACTOR)
    at(store, 10)
    verification.verify(store, "HK-1", kind="retest", evidence="run:retest-1 fixed", actor=ACTOR)
    at(store, 12)
    verification.verify(store, "HK-2", kind="commit", evidence="shop/web@0123abcd", actor=ACTOR)
    at(store, 20)
    pipeline.ingest_scan(store, engagement, [zap_scan(workdir / "scan2.json", [1, 3], "2026-03-20")], actor=ACTOR)


def copy_sqlite(url: str, target: Path) -> str:
    """A consistent copy of a SQLite record (the backup API also carries what is still in the WAL)."""
    source = sqlite3.connect(make_url(url).database)
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{target}"


# --------------------------------------------------------------------------------------------- readers


def finding(store: Store, fid: str) -> dict[str, Any]:
    with store.read() as conn:
        return dict(conn.execute(select(schema.findings).where(schema.findings.c.finding_id == fid)).one()._mapping)


def events(
    store: Store, type_: str | None = None, *, finding_id: str | None = None, outcome: str | None = None
) -> list[dict[str, Any]]:
    """Events (payload decoded) in seq order, optionally filtered."""
    ev = schema.events.c
    stmt = select(ev.payload).order_by(ev.seq)
    if type_:
        stmt = stmt.where(ev.type == type_)
    if finding_id:
        stmt = stmt.where(ev.finding_id == finding_id)
    if outcome:
        stmt = stmt.where(ev.outcome == outcome)
    with store.read() as conn:
        return [json.loads(p) for p in conn.execute(stmt).scalars()]


def event_rows(store: Store) -> list[dict[str, Any]]:
    """Every row of the events table (all columns), in seq order."""
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(schema.events).order_by(schema.events.c.seq))]


def chain_head(store: Store) -> tuple[int, str]:
    with store.read() as conn:
        row = conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.row_hash)).one()
    return row.seq, row.row_hash


def snapshot(store: Store) -> dict[str, Any]:
    """Row count of every table plus the chain head: equal snapshots mean nothing was written."""
    with store.read() as conn:
        out: dict[str, Any] = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in schema.metadata.sorted_tables
        }
        out["chain_head"] = tuple(conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.row_hash)).one())
        out["findings_versions"] = conn.execute(select(func.sum(schema.findings.c.row_version))).scalar()
    return out


# ------------------------------------------------------------------------------------------- the attacker


def drop_append_only(store: Store) -> None:
    """What an attacker with write access does first: drop the triggers that refuse UPDATE/DELETE."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER events_no_update")
            conn.exec_driver_sql("DROP TRIGGER events_no_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER events_no_update_delete ON events")
            conn.exec_driver_sql("DROP TRIGGER events_no_truncate ON events")


def set_events(store: Store, rows: list[dict[str, Any]], head: tuple[int, str] | None = None) -> None:
    """Replace the whole events table (and, if given, the chain head) — the attacker's rewrite."""
    with store.engine.begin() as conn:
        conn.execute(delete(schema.events))
        if rows:
            conn.execute(insert(schema.events), rows)
        if head is not None:
            conn.execute(update(schema.chain_head).values(seq=head[0], row_hash=head[1]))
