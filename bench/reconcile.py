"""Benchmark: ``handoffkit reconcile`` end to end on a 1,000,000-finding / ~600,000-ticket store.

In the same run it times a direct query computing the three headline counts (routing misses, closure
misses, severity drift) on the same database: Python's sqlite3 on the SQLite file, ``psql`` on the
PostgreSQL copy. Goal: <= 5 s wall and <= 2x the direct query. Each figure is the median of 3 runs.

    .venv/bin/python bench/reconcile.py [--findings 1000000] [--postgres postgresql+psycopg://root@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

from store import postgres_copy, sqlite_store

HEADLINE_SQL = """
SELECT
 (SELECT count(*) FROM findings f WHERE f.engagement = 'DEMO' AND f.disposition = 'ticket' AND f.state = 'routed'
    AND NOT EXISTS (SELECT 1 FROM links l WHERE l.finding_id = f.finding_id AND l.active = TRUE)) AS routing_misses,
 (SELECT count(DISTINCT l.finding_id) FROM links l
    JOIN tickets t ON t.engagement = l.engagement AND t."current" = TRUE
     AND t.system = l.system AND t.key = l.ticket_key
    JOIN findings f ON f.finding_id = l.finding_id
  WHERE l.engagement = 'DEMO' AND l.active = TRUE AND t.status_category = 'done' AND f.state <> 'verified_closed')
    AS closure_misses,
 (SELECT count(DISTINCT l.finding_id) FROM links l
    JOIN tickets t ON t.engagement = l.engagement AND t."current" = TRUE
     AND t.system = l.system AND t.key = l.ticket_key
    JOIN findings f ON f.finding_id = l.finding_id
  WHERE l.engagement = 'DEMO' AND l.active = TRUE AND t.priority_band IS NOT NULL AND t.priority_band <> f.severity
    AND f.state NOT IN ('verified_closed', 'false_positive', 'duplicate')) AS severity_drift
"""
HANDOFFKIT = str(Path(sys.executable).parent / "handoffkit")


def timed(fn, runs: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def handoffkit_reconcile(url: str) -> dict:
    done = subprocess.run(
        [HANDOFFKIT, "--db", url, "reconcile", "-e", "DEMO", "--actor", "Bench Runner", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["counts"]


def direct_sqlite(path: Path) -> tuple:
    conn = sqlite3.connect(path)
    row = conn.execute(HEADLINE_SQL).fetchone()
    conn.close()
    return row


def direct_psql(url: str) -> tuple:
    base, _, options = url.partition("?options=")
    schema = unquote(options).removeprefix("-csearch_path=")
    dsn = base.replace("postgresql+psycopg://", "postgresql://")
    done = subprocess.run(
        ["psql", dsn, "-XAtq", "-c", f"SET search_path TO {schema}", "-c", HEADLINE_SQL],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(int(v) for v in done.stdout.strip().splitlines()[-1].split("|"))


def report(name: str, ours: float, counts: dict, direct: float, row: tuple) -> None:
    headline = (counts["routing_misses"], counts["closure_misses"], counts["severity_drift"])
    print(
        f"{name}: handoffkit reconcile {ours:6.2f} s | direct query {direct:6.2f} s | ratio {ours / direct:5.2f}x "
        f"| goal <= 5 s and <= 2x | headline counts {headline} {'==' if headline == tuple(row) else '!='} "
        f"direct {tuple(row)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="also run against a PostgreSQL copy on this server")
    args = parser.parse_args()
    path = sqlite_store(args.findings)
    with sqlite3.connect(path) as conn:
        sizes = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("findings", "events")]
        sizes.append(conn.execute("SELECT count(*) FROM tickets WHERE current").fetchone()[0])
    print(f"store: {path} — {sizes[0]:,} findings, {sizes[2]:,} tickets, {sizes[1]:,} events")
    url = f"sqlite:///{path}"
    ours, counts = timed(lambda: handoffkit_reconcile(url))
    direct, row = timed(lambda: direct_sqlite(path))
    report("sqlite", ours, counts, direct, row)
    if args.postgres:
        pg = postgres_copy(path, args.postgres, progress=lambda m: None)
        ours, counts = timed(lambda: handoffkit_reconcile(pg))
        direct, row = timed(lambda: direct_psql(pg))
        report("postgresql", ours, counts, direct, row)


if __name__ == "__main__":
    main()
