"""Benchmark: ``handoffkit report`` (the quarterly evidence pack) on a 1,000,000-finding record.

The record is the demo programme replicated set-based (``bench/store.py``: same tables, a valid hash
chain), built once and cached. The report runs as a scheduler would run it —
the ``handoffkit report`` command in a child process — and the figures are its wall time and the
peak resident set size of the largest process involved (``resource.getrusage`` of this process and
of its waited-for children: the CLI and the notebook kernels). Goal: <= 120 s wall, <= 4 GiB.

    .venv/bin/python bench/report.py [--findings 1000000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import sqlite_store

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 120
GOAL_BYTES = 4 * 1024**3
PARAMS = """\
db: sqlite:///{db}
engagement: DEMO
period_start: "2026-07-01"
period_end: "2026-09-30"
as_of: "2026-09-30"
notebooks_dir: {notebooks}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    args = parser.parse_args()
    db = sqlite_store(args.findings)
    events = _count(db)
    work = Path(tempfile.mkdtemp(prefix="hk-bench-report-"))
    params = work / "quarterly.yaml"
    params.write_text(PARAMS.format(db=db, notebooks=REPO / "notebooks"), encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "handoffkit"),
        "report",
        "--params",
        str(params),
        "--out",
        str(work / "out"),
        "--actor",
        "bench",
    ]
    print(f"record: {db} ({db.stat().st_size / 1e9:.1f} GB, {args.findings:,} findings, {events:,} events)")
    print("running:", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = max(children, own)
    print(f"wall {wall:.1f} s (goal <= {GOAL_SECONDS} s: {'met' if wall <= GOAL_SECONDS else 'MISSED'})")
    print(
        f"peak RSS {peak / 1024**3:.2f} GiB (largest child {children / 1024**3:.2f} GiB, this process "
        f"{own / 1024**3:.2f} GiB; goal <= 4 GiB: {'met' if peak <= GOAL_BYTES else 'MISSED'})"
    )
    print(f"evidence pack: {work / 'out'}")


def _count(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT seq FROM chain_head").fetchone()[0]


if __name__ == "__main__":
    main()
