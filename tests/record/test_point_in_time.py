"""Point in time: the whole demo record rebuilt from the activity log equals the stored record, and
the record as of an earlier instant is what the log said then."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from handoffkit.record import findings, schema
from handoffkit.record.store import Store
from handoffkit.report.output import records

MID_PERIOD = datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)


def stored_rows(store: Store) -> dict[str, dict]:
    with store.read() as conn:
        rows = conn.execute(select(schema.findings).where(schema.findings.c.engagement == "DEMO"))
        return {r.finding_id: findings.canonical_row(r._mapping) for r in rows}


def test_replaying_the_log_rebuilds_every_column_of_every_finding(demo_store: Store) -> None:
    stored = stored_rows(demo_store)
    rebuilt = findings.rebuild(demo_store, "DEMO")
    assert len(stored) >= 300
    assert sorted(rebuilt) == sorted(stored)
    differing = {
        fid: {
            c: (stored[fid][c], rebuilt[fid].get(c, "<missing>"))
            for c in stored[fid]
            if rebuilt[fid].get(c, "<missing>") != stored[fid][c]
        }
        for fid in stored
        if rebuilt[fid] != stored[fid]
    }
    assert not differing, f"{len(differing)} findings differ, e.g. {list(differing.items())[:3]}"


def test_the_record_as_of_now_is_the_stored_record(demo_store: Store) -> None:
    now = records(findings.current(demo_store, "DEMO"))
    then = records(findings.as_of(demo_store, "DEMO", datetime(2100, 1, 1, tzinfo=UTC)))
    assert then == now
    assert any(r["ticket_keys"] for r in now)


def test_the_record_mid_period_is_what_the_log_said_then(demo_store: Store) -> None:
    """Checked against the log independently of ``replay``: the finding set is what had been created by
    then, and each finding's state/severity/disposition is the one its last event before then carried."""
    mid = findings.as_of(demo_store, "DEMO", MID_PERIOD)
    now = findings.current(demo_store, "DEMO")
    assert 0 < len(mid) < len(now)

    ev = schema.events.c
    cutoff = schema.format_ts(MID_PERIOD)
    with demo_store.read() as conn:
        created = set(
            conn.execute(
                select(ev.finding_id).where(
                    ev.engagement == "DEMO", ev.type == "finding_created", ev.occurred_at <= cutoff
                )
            ).scalars()
        )
        last: dict[str, tuple] = {}
        for fid, state, severity, disposition in conn.execute(
            select(ev.finding_id, ev.state, ev.severity, ev.disposition)
            .where(
                ev.engagement == "DEMO", ev.finding_id.is_not(None), ev.outcome == "success", ev.occurred_at <= cutoff
            )
            .order_by(ev.seq)
        ):
            last[fid] = (state, severity, disposition)
    assert set(mid["finding_id"]) == created
    got = {r["finding_id"]: (r["state"], r["severity"], r["disposition"]) for r in records(mid)}
    assert got == {fid: last[fid] for fid in created}
    # something really changed after the cut-off, so the comparison above is not a copy of "now"
    current = {r["finding_id"]: (r["state"], r["severity"], r["disposition"]) for r in records(now)}
    assert any(current[fid] != got[fid] for fid in got)


def test_nothing_existed_before_the_first_event(demo_store: Store) -> None:
    assert len(findings.as_of(demo_store, "DEMO", datetime(2025, 9, 30, tzinfo=UTC))) == 0


def test_every_finding_event_carries_the_state_after_it(demo_store: Store) -> None:
    """Walking the whole demo log in seq order: each successful finding event's state, severity and
    disposition columns are the finding's values once the changes logged so far are applied."""
    ev = schema.events.c
    state: dict[str, dict] = {}
    wrong = []
    with demo_store.read() as conn:
        for row in conn.execute(
            select(ev.seq, ev.type, ev.finding_id, ev.state, ev.severity, ev.disposition, ev.payload)
            .where(ev.finding_id.is_not(None), ev.outcome == "success")
            .order_by(ev.seq)
        ):
            doc = json.loads(row.payload)
            assert doc["seq"] == row.seq
            current = state.setdefault(row.finding_id, {})
            current.update(doc["data"].get("set") or {})
            expected = (current.get("state"), current.get("severity"), current.get("disposition"))
            if (row.state, row.severity, row.disposition) != expected:
                wrong.append((row.seq, row.type, row.finding_id, (row.state, row.severity, row.disposition), expected))
    assert len(state) >= 300
    assert not wrong, f"{len(wrong)} events, e.g. {wrong[:3]}"
