"""``handoffkit log verify --replay`` against ``handoffkit log verify`` alone, on the bench store.

    .venv/bin/python bench/replay.py [--findings 100000] [--runs 3] [--postgres URL]

The store is ``bench/store.py``'s (the demo replicated set-based, cached in outputs/bench/; ``--postgres``
copies it into a schema of its own). Each round runs both commands end to end in a child process
(``handoffkit --db URL log verify --actor …``, then the same with ``--replay``), alternating, after one
warm-up of each left out; it prints every run's wall time and CPU time (user + system of the child, which
other work on a shared machine disturbs less) and the medians of both. Both commands append one ``log_verified``
event when they pass, so every run verifies a log one or two events longer than the one before.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import postgres_copy, sqlite_store

HANDOFFKIT = Path(sys.executable).with_name("handoffkit")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(url: str, *extra: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of one ``log verify`` in a child process, and what it printed."""
    start, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(
        [str(HANDOFFKIT), "--db", url, "log", "verify", *extra, "--actor", "bench"],
        capture_output=True,
        text=True,
    )
    seconds, cpu_seconds = time.perf_counter() - start, _cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"log verify {' '.join(extra)} failed: {done.stderr.strip()}")
    return seconds, cpu_seconds, done.stdout.strip()


def measure(name: str, url: str, runs: int) -> None:
    for extra in ((), ("--replay",)):
        seconds, cpu, out = timed(url, *extra)
        print(
            f"{name}: warm-up log verify {' '.join(extra)}: {seconds:.2f} s (CPU {cpu:.2f} s) — {out[:160]}", flush=True
        )
    plain, replay = [], []
    for _ in range(runs):
        plain.append(timed(url)[:2])
        replay.append(timed(url, "--replay")[:2])
        print(f"{name}: round {len(plain)}: {plain[-1][0]:.2f} s vs {replay[-1][0]:.2f} s", flush=True)
    for label, values in (("log verify", plain), ("log verify --replay", replay)):
        walls, cpus = (", ".join(f"{v[i]:.2f}" for v in values) for i in (0, 1))
        print(f"{name}: {label:<20} wall {walls} s; CPU {cpus} s")
    for i, what in ((0, "wall"), (1, "CPU")):
        a, b = statistics.median(v[i] for v in plain), statistics.median(v[i] for v in replay)
        print(
            f"{name}: median {what} {a:.2f} s vs {b:.2f} s with --replay ({b / a:.2f}x; the replay adds {b - a:.2f} s)"
        )


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
