"""A small, fully known programme on the ``ACME`` engagement, for exact metric expectations, and the
demo's reporting period (shared with the notebook tests).

Timeline (UTC, 2026): three ZAP findings on https://shop.test appear on 1 March, are validated on
2 March and routed on 3 March; HK-1 is verified by retest on 10 March, HK-2 by commit on 12 March; the
rescan of 20 March finds HK-1 again (it reopens). Nothing else happens.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from handoffkit.demo import formats
from handoffkit.ingest import pipeline
from handoffkit.record.store import Store
from handoffkit.workflow import routing, triage, verification

ACTOR = "Ana Silva"

#: The demo's last quarter, and the instant the view tests read it as of.
AS_OF = "2026-09-30"
START, END = "2026-07-01", "2026-09-30"
ORIGIN = "https://shop.test"
ALERTS = [(1, "Reflected XSS", 3), (2, "Missing CSP header", 2), (3, "Cookie without Secure flag", 1)]


def at(store: Store, day: int, hour: int = 9) -> datetime:
    store.clock.fixed = datetime(2026, 3, day, hour, tzinfo=UTC)
    return store.clock.fixed


def zap_scan(path: Path, plugins: list[int], generated: str) -> Path:
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
    """Play the timeline in the module docstring against ``engagement``."""
    at(store, 1)
    pipeline.ingest_scan(store, engagement, [zap_scan(workdir / "scan1.json", [1, 2, 3], "2026-03-01")], actor=ACTOR)
    at(store, 2)
    triage.triage(store, ["HK-1", "HK-2", "HK-3"], "validated", reason="confirmed", actor=ACTOR)
    at(store, 3)
    routing.route(store, engagement, actor=ACTOR)
    at(store, 10)
    verification.verify(store, "HK-1", kind="retest", evidence="retested: fixed", actor=ACTOR)
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
