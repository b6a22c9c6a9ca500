"""Benchmark: ``handoffkit reconcile`` end to end on a 1,000,000-finding / ~600,000-ticket store.

In the same run it times a direct query computing the three headline counts (routing misses, closure
misses, severity drift) on the same database: Python's sqlite3 on the SQLite file, ``psql`` on the
PostgreSQL copy. Goal: <= 5 s wall and <= 2x the direct query.

Warm: one run of each first (printed, left out of the medians), then ``--runs`` rounds alternating
the two, so drift in the machine (page cache, the other core) falls on both alike; it prints the
medians, their ratio and each round's ratio. Cold (``--cold``, SQLite, needs root): before every
run the kernel's page cache is dropped (``/proc/sys/vm/drop_caches``), so each side reads the store
from disk, as the first run after something else filled the memory would.

    .venv/bin/python bench/reconcile.py [--findings 1000000] [--runs 5] [--cold]
        [--postgres postgresql+psycopg://root@127.0.0.1/test]
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


def rounds(ours, direct, runs: int, before=lambda: None) -> tuple[list[float], list[float], object, object]:
    """``runs`` rounds alternating ``ours`` and ``direct`` (``before`` ahead of each run): both lists
    of times, and each side's last result."""
    times: tuple[list[float], list[float]] = ([], [])
    out: list[object] = [None, None]
    for _ in range(runs):
        for side, fn in enumerate((ours, direct)):
            before()
            start = time.perf_counter()
            out[side] = fn()
            times[side].append(time.perf_counter() - start)
    return times[0], times[1], out[0], out[1]


def warm_up(name: str, ours, direct) -> None:
    """One run of each side, left out of the medians: the first run after anything else reads the
    store from disk (the machine may have paged it out), and shows what that costs."""
    mine, theirs, _, _ = rounds(ours, direct, 1)
    print(
        f"{name}: first runs (warm-up, not in the medians): handoffkit {mine[0]:.2f} s, direct query {theirs[0]:.2f} s"
    )


def drop_page_cache() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


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


def report(name: str, ours: list[float], direct: list[float], counts: dict, row: tuple) -> None:
    headline = (counts["routing_misses"], counts["closure_misses"], counts["severity_drift"])
    mine, theirs = statistics.median(ours), statistics.median(direct)
    each = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, direct, strict=True))
    print(
        f"{name}: handoffkit reconcile {mine:6.2f} s | direct query {theirs:6.2f} s | ratio {mine / theirs:5.2f}x "
        f"| goal <= 5 s and <= 2x | headline counts {headline} {'==' if headline == tuple(row) else '!='} "
        f"direct {tuple(row)}\n  medians of {len(ours)} alternating rounds; handoffkit "
        f"{', '.join(f'{t:.2f}' for t in ours)} s; direct {', '.join(f'{t:.2f}' for t in direct)} s; "
        f"ratio per round {each}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="also run against a PostgreSQL copy on this server")
    parser.add_argument("--runs", type=int, default=5, help="alternating rounds per measurement (default 5)")
    parser.add_argument("--cold", action="store_true", help="also time SQLite with the page cache dropped (root)")
    args = parser.parse_args()
    path = sqlite_store(args.findings)
    with sqlite3.connect(path) as conn:
        sizes = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("findings", "events")]
        sizes.append(conn.execute("SELECT count(*) FROM tickets WHERE current").fetchone()[0])
    print(f"store: {path} — {sizes[0]:,} findings, {sizes[2]:,} tickets, {sizes[1]:,} events")
    url = f"sqlite:///{path}"
    ours, direct = (lambda: handoffkit_reconcile(url)), (lambda: direct_sqlite(path))
    if args.cold:
        report("sqlite, cold", *rounds(ours, direct, args.runs, drop_page_cache))
    warm_up("sqlite", ours, direct)
    report("sqlite, warm", *rounds(ours, direct, args.runs))
    if args.postgres:
        pg = postgres_copy(path, args.postgres, progress=lambda m: None)
        ours, direct = (lambda: handoffkit_reconcile(pg)), (lambda: direct_psql(pg))
        warm_up("postgresql", ours, direct)
        report("postgresql, warm", *rounds(ours, direct, args.runs))


if __name__ == "__main__":
    main()
