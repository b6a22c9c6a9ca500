"""The demo engagement: seeded and deterministic, and (at the default size) a whole programme."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from handoffkit import demo
from handoffkit.cli import cli
from handoffkit.record import findings, schema
from handoffkit.record.model import SEVERITIES, STATES
from handoffkit.record.store import Store
from tests.builders import ACTOR, drop_append_only

DRIFT_PATTERNS = (
    "severity_drift",
    "evidence_copied",
    "closure_misses",
    "tickets_outside_policy",
    "shared_queue_tickets",
    "tickets_without_id",
)


def normalised(payload: str, workdir: str) -> dict[str, Any]:
    """A payload with the build's workdir replaced; a rescan closure's evidence is a text naming the
    rescan file by its path (under the workdir), so its SHA-256 differs between workdirs: masked too. The
    principal in the origin is the backend's own (PostgreSQL's session_user, the OS user on SQLite): masked
    once its source is checked to be the backend's."""
    doc = json.loads(payload.replace(workdir, "<work>"))
    assert doc["origin"].pop("principal")["source"] in ("postgresql session_user", "os user")
    if doc["type"] == "finding_verified_closed" and doc["data"].get("kind") == "rescan":
        doc["data"]["evidence_sha256"] = "<sha256 of a text naming the workdir>"
    return doc


def record_of(url: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Everything a build wrote that must not depend on the run: the findings table and the log
    (paths of the generated input files, which live in each build's own workdir, normalised)."""
    workdir = str(Path(summary["inputs"]).parent)
    store = Store(url)
    try:
        with store.read() as conn:
            rows = [
                findings.canonical_row(r._mapping)
                for r in conn.execute(select(schema.findings).order_by(schema.findings.c.number))
            ]
            ev = schema.events.c
            log = [
                (
                    r.seq,
                    r.event_id,
                    r.occurred_at,
                    r.type,
                    r.actor,
                    r.outcome,
                    r.finding_id,
                    normalised(r.payload, workdir),
                )
                for r in conn.execute(
                    select(
                        ev.seq, ev.event_id, ev.occurred_at, ev.type, ev.actor, ev.outcome, ev.finding_id, ev.payload
                    )
                    .where(ev.type != "log_verified")
                    .order_by(ev.seq)
                )
            ]
    finally:
        store.dispose()
    return {
        "findings": rows,
        "log": log,
        "summary": {k: v for k, v in summary.items() if k not in ("database", "inputs")},
    }


def assert_same_record(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours["summary"] == theirs["summary"]
    assert len(ours["findings"]) == len(theirs["findings"])
    for a, b in zip(ours["findings"], theirs["findings"], strict=True):
        assert a == b, a["finding_id"]
    assert len(ours["log"]) == len(theirs["log"])
    for a, b in zip(ours["log"], theirs["log"], strict=True):
        assert a == b, f"seq {a[0]}"


@pytest.mark.postgres
def test_two_builds_with_the_same_seed_and_size_are_identical(
    demo_sqlite: tuple[str, dict], demo_postgres: tuple[str, dict]
) -> None:
    """The session's two demo builds (seed 7, size 300; one on SQLite, one on PostgreSQL, each in its
    own workdir): the same planted ids, the same findings table, the same activity log payloads."""
    assert demo_postgres[1]["planted"] == demo_sqlite[1]["planted"]
    assert any(demo_sqlite[1]["planted"][k] for k in DRIFT_PATTERNS)
    assert_same_record(record_of(*demo_postgres), record_of(*demo_sqlite))


@pytest.mark.slow
def test_the_default_demo_is_a_whole_programme_and_its_log_proves_tampering(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    summary = demo.build(url, workdir=tmp_path / "work")  # the default size, as `handoffkit demo` builds it

    store = Store(url)
    with store.read() as conn:
        f = schema.findings.c
        df = findings.frame(conn, "DEMO", ["finding_id", "state", "severity", "tool", "kev", "owner_name"])
        exceptions = conn.execute(select(func.count()).select_from(schema.exceptions)).scalar()
        tickets = conn.execute(select(func.count(func.distinct(schema.tickets.c.key)))).scalar()
        closures = conn.execute(
            select(func.count())
            .select_from(schema.evidence)
            .where(schema.evidence.c.kind.in_(("rescan", "retest", "commit", "attestation")))
        ).scalar()
        awaiting_owned = conn.execute(
            select(func.count()).where(f.state == "awaiting_verification", f.owner_name.is_not(None))
        ).scalar()
    assert len(df) >= 2000 and summary["findings"] == len(df)
    assert set(df["state"]) == set(STATES)
    assert set(df["severity"]) == set(SEVERITIES)
    assert df["tool"].nunique() >= 4
    assert df["kev"].sum() > 0
    assert df["owner_name"].isna().any() and df["owner_name"].notna().any()
    assert exceptions > 0 and tickets > 0 and closures > 0 and awaiting_owned > 0
    assert all(
        summary["planted"][k] for k in (*DRIFT_PATTERNS, "findings_not_referenced", "orphan_tickets", "routing_misses")
    )

    runner = CliRunner()
    ok = runner.invoke(cli, ["--db", url, "log", "verify", "--actor", ACTOR])
    assert ok.exit_code == 0, ok.output
    assert f"ok: {summary['events']} events verified" in ok.output

    # flip one byte of one payload in the middle of the log, as an attacker with write access would
    seq = summary["events"] // 2
    drop_append_only(store)
    with store.engine.begin() as conn:
        payload = conn.execute(select(schema.events.c.payload).where(schema.events.c.seq == seq)).scalar()
        i = payload.index('"actor":"') + len('"actor":"')
        tampered = payload[:i] + chr(ord(payload[i]) ^ 0x01) + payload[i + 1 :]
        conn.execute(schema.events.update().where(schema.events.c.seq == seq).values(payload=tampered))
    store.dispose()
    bad = runner.invoke(cli, ["--db", url, "log", "verify", "--actor", ACTOR])
    assert bad.exit_code == 7
    assert bad.stdout == ""
    assert bad.stderr.startswith(f"handoffkit: error: activity log fails verification at seq {seq}: ")
    assert bad.stderr.count("\n") == 1
    assert json.loads(payload)["seq"] == seq
