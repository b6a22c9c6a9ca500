"""Benchmark: the fixed cost of one ingest — a one-result SARIF file through the CLI, in a new process.

Alternates, in one run, the whole command (``handoffkit ingest scan``: imports, the Great Expectations
gate, one transaction) with its floor, a process that only imports pandas and SQLAlchemy. Prints every
round, the best and the median of each, and their ratio. Goal: the ingest <= 3x the floor.

    .venv/bin/python bench/fixed_cost.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handoffkit.demo import formats

ROOT = Path(__file__).resolve().parents[1]
FLOOR = [sys.executable, "-c", "import pandas, sqlalchemy"]


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "HANDOFFKIT_DB": f"sqlite:///{work / 'hk.db'}", "HANDOFFKIT_ACTOR": "Bench Runner"}
        cli = [sys.executable, "-m", "handoffkit"]
        subprocess.run(
            [*cli, "init", "-e", "B", "--policy", str(ROOT / "params" / "policy.yaml"),
             "--owners", str(ROOT / "params" / "owners.csv")],
            env=env, cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        ingest, floor = [], []
        for i in range(args.rounds + 1):  # round 0 warms the page cache and is not counted
            scan = work / f"one-{i}.sarif"
            scan.write_bytes(
                formats.sarif(
                    [{"tool": "semgrep", "version": "1", "repo": "https://github.com/b/r", "results": [
                        {"rule": "r1", "title": "t", "level": "warning", "score": 5.0, "cwe": "CWE-79",
                         "message": "m", "uri": "a.py", "line": 1, "fingerprint": f"{i:016x}"}]}]
                )
            )  # fmt: skip
            one = timed([*cli, "ingest", "scan", str(scan), "-e", "B"], env, work)
            base = timed(FLOOR, env, work)
            if i:
                ingest.append(one)
                floor.append(base)
                print(f"round {i}: ingest {one:.2f} s, floor {base:.2f} s, ratio {one / base:.2f}x")
        print(f"best:   ingest {min(ingest):.2f} s, floor {min(floor):.2f} s, ratio {min(ingest) / min(floor):.2f}x")
        med_i, med_f = statistics.median(ingest), statistics.median(floor)
        print(f"median: ingest {med_i:.2f} s, floor {med_f:.2f} s, ratio {med_i / med_f:.2f}x (goal <= 3x)")


if __name__ == "__main__":
    main()
