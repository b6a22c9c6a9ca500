"""Benchmark: the fixed cost of one ingest — a one-result SARIF file through the CLI, in a new process.

Alternates, in one run, the whole command (``handoffkit ingest scan``: imports, the Great Expectations
gate, one transaction) with its floor, a process that only imports pandas and SQLAlchemy. Each round
times the command twice: *warm*, with the gate process (:mod:`handoffkit.ingest.gate_server`) serving,
as every ingest after a user's first finds it; and *cold*, with the gate stopped first, as a user's first
ingest (or one with ``HANDOFFKIT_GATE=inprocess``) finds it: Great Expectations loads in the command's
own process. Prints every round, the best and the median of each, and their ratios. Goal: the ingest
<= 3x the floor.

Each round also times what a cold ingest waits for, in its own process or in the gate it starts: a process
that imports Great Expectations as the gate does and builds its suite (``quality.prepare``), nothing else.

    .venv/bin/python bench/fixed_cost.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
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
# gc.freeze at the end as the CLI's own exit does (its last collection skipped, see handoffkit.cli.main).
GX = [sys.executable, "-c", "import gc; from handoffkit.ingest import quality; quality.prepare(); gc.freeze()"]


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
        gate_dir = work / "gate"
        gate_dir.mkdir(mode=0o700)
        env = {
            **os.environ,
            "HANDOFFKIT_DB": f"sqlite:///{work / 'hk.db'}",
            "HANDOFFKIT_ACTOR": "Bench Runner",
            "HANDOFFKIT_GATE_DIR": str(gate_dir),  # this run's own gate, never the user's
            "HANDOFFKIT_GATE": "served",
        }
        cli = [sys.executable, "-m", "handoffkit"]
        subprocess.run(
            [*cli, "init", "-e", "B", "--policy", str(ROOT / "params" / "policy.yaml"),
             "--owners", str(ROOT / "params" / "owners.csv")],
            env=env, cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        times: dict[str, list[float]] = {"warm": [], "cold": [], "floor": [], "gx": []}
        try:
            for i in range(args.rounds + 1):  # round 0 warms the page cache and is not counted
                stop_gate(cli, env, work)
                cold = timed([*cli, "ingest", "scan", str(scan(work, f"c{i}")), "-e", "B"], env, work)
                wait_for_gate(cli, env, work)
                warm = timed([*cli, "ingest", "scan", str(scan(work, f"w{i}")), "-e", "B"], env, work)
                base = timed(FLOOR, env, work)
                gx = timed(GX, env, work)
                if i:
                    for name, value in (("warm", warm), ("cold", cold), ("floor", base), ("gx", gx)):
                        times[name].append(value)
                    print(
                        f"round {i}: ingest warm {warm:.2f} s ({warm / base:.2f}x), cold {cold:.2f} s "
                        f"({cold / base:.2f}x), floor {base:.2f} s, Great Expectations alone {gx:.2f} s "
                        f"({gx / base:.2f}x)"
                    )
        finally:
            stop_gate(cli, env, work)
        best, median = {k: min(v) for k, v in times.items()}, {k: statistics.median(v) for k, v in times.items()}
        for label, pick in (("best", best), ("median", median)):
            print(
                f"{label + ':':8}ingest warm {pick['warm']:.2f} s ({pick['warm'] / pick['floor']:.2f}x), "
                f"cold {pick['cold']:.2f} s ({pick['cold'] / pick['floor']:.2f}x), floor {pick['floor']:.2f} s "
                f"(goal <= 3x); Great Expectations alone {pick['gx']:.2f} s ({pick['gx'] / pick['floor']:.2f}x)"
            )


def scan(work: Path, name: str) -> Path:
    path = work / f"one-{name}.sarif"
    path.write_bytes(
        formats.sarif(
            [{"tool": "semgrep", "version": "1", "repo": "https://github.com/b/r", "results": [
                {"rule": "r1", "title": "t", "level": "warning", "score": 5.0, "cwe": "CWE-79",
                 "message": "m", "uri": "a.py", "line": 1, "fingerprint": name.encode().hex().rjust(16, "0")}]}]
        )
    )  # fmt: skip
    return path


def stop_gate(cli: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run([*cli, "gate", "stop"], env=env, cwd=cwd, check=True, capture_output=True)
    while gate_state(cli, env, cwd)["running"]:
        time.sleep(0.05)


def wait_for_gate(cli: list[str], env: dict[str, str], cwd: Path) -> None:
    """Until the gate the cold ingest started serves (it loads in the background)."""
    while True:
        state = gate_state(cli, env, cwd)
        if state["running"] and not state["gate"].get("loading"):
            return
        time.sleep(0.1)


def gate_state(cli: list[str], env: dict[str, str], cwd: Path) -> dict:
    done = subprocess.run(
        [*cli, "gate", "status", "--format", "json"], env=env, cwd=cwd, check=True, capture_output=True
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    main()
