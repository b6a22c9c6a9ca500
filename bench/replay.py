"""``handoffkit log verify --replay`` against ``handoffkit log verify`` alone, on the bench store.

    .venv/bin/python bench/replay.py [--findings 100000] [--runs 3] [--postgres URL]

The store is ``bench/store.py``'s (the demo replicated set-based, cached in outputs/bench/; ``--postgres``
copies it into a schema of its own). Each round runs both commands end to end in a child process
(``handoffkit --db URL log verify --actor …``, then the same with ``--replay``), alternating, after one
warm-up of each left out; it prints every run and the medians. Both commands append one ``log_verified``
event when they pass, so every run verifies a log one or two events longer than the one before.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import postgres_copy, sqlite_store

HANDOFFKIT = Path(sys.executable).with_name("handoffkit")


def timed(url: str, *extra: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(HANDOFFKIT), "--db", url, "log", "verify", *extra, "--actor", "bench"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"log verify {' '.join(extra)} failed: {done.stderr.strip()}")
    return seconds, done.stdout.strip()


def measure(name: str, url: str, runs: int) -> None:
    for extra in ((), ("--replay",)):
        seconds, out = timed(url, *extra)
        print(f"{name}: warm-up log verify {' '.join(extra)}: {seconds:.2f} s — {out[:160]}")
    plain, replay = [], []
    for _ in range(runs):
        plain.append(timed(url)[0])
        replay.append(timed(url, "--replay")[0])
    print(f"{name}: log verify          runs {', '.join(f'{s:.2f}' for s in plain)} s")
    print(f"{name}: log verify --replay runs {', '.join(f'{s:.2f}' for s in replay)} s")
    a, b = statistics.median(plain), statistics.median(replay)
    print(f"{name}: medians {a:.2f} s vs {b:.2f} s with --replay ({b / a:.2f}x; the replay adds {b - a:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="also run against a PostgreSQL copy on this server")
    args = parser.parse_args()
    path = sqlite_store(args.findings)
    measure("sqlite", f"sqlite:///{path}", args.runs)
    if args.postgres:
        measure("postgres", postgres_copy(path, args.postgres), args.runs)


if __name__ == "__main__":
    main()
