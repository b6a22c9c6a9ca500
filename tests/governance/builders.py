"""Builders shared by the governance and closure tests: real scanner files (``handoffkit.demo.formats``)
ingested through the real pipeline into the ``engagement`` fixture (ACME, tests/data/policy.yaml +
owners.csv), and small readers for the record and its activity log.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from handoffkit.demo import formats
from handoffkit.ingest import kev, pipeline
from handoffkit.record import schema
from handoffkit.record.store import Store
from handoffkit.workflow import routing, triage

ACTOR = "Ana Silva"
SCANNER = "scanner-bot operator Eve Marsh"
GENERATED = "Mon, 2 Mar 2026 08:00:00"
SHOP, LEGACY, QUEUE = "https://shop.test", "https://legacy.test", "https://queue.test"


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


# ----------------------------------------------------------------------------------------- readers


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


def snapshot(store: Store) -> dict[str, Any]:
    """Row count of every table plus the chain head: equal snapshots mean nothing was written."""
    with store.read() as conn:
        out: dict[str, Any] = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in schema.metadata.sorted_tables
        }
        out["chain_head"] = tuple(conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.row_hash)).one())
        out["findings_versions"] = conn.execute(select(func.sum(schema.findings.c.row_version))).scalar()
    return out


def validate(store: Store, ids: Iterable[str]) -> None:
    triage.triage(store, list(ids), "validated", reason="confirmed by hand", actor=ACTOR)


def route(store: Store, engagement: str = "ACME", **kwargs: Any) -> routing.RoutingResult:
    return routing.route(store, engagement, actor=ACTOR, **kwargs)
