"""The record as of an instant, in SQL, against the log replayed in Python (the reference)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from handoffkit.record import _memo, findings, frames, replay, schema
from handoffkit.record.store import Store

INSTANTS = ["2025-10-03T12:00:00Z", "2026-01-20T00:00:00Z", "2026-03-31T23:59:59Z", "2026-09-30T23:59:59Z"]


@pytest.mark.parametrize("when", INSTANTS)
def test_the_sql_rebuild_equals_the_python_replay(demo_store: Store, when: str) -> None:
    """The record as of each instant in SQL: rebuilt from the log, except at the last instant, after which
    nothing changed, where the current tables answer (the next test holds them to the rebuild)."""
    with demo_store.read() as conn:
        sql = replay.state_frame(conn, "DEMO", when)
    reference = findings.as_of(demo_store, "DEMO", schema.parse_ts(when))
    assert list(sql["finding_id"]) == list(reference["finding_id"])
    for column in ("state", "disposition", "severity"):
        assert sql[column].fillna("").tolist() == reference[column].fillna("").tolist(), column
    assert sql["kev"].tolist() == reference["kev"].astype(bool).tolist()
    assert sql["sla_due"].tolist() == pd.to_datetime(reference["sla_due"]).tolist()


def test_the_current_tables_are_the_record_as_of_the_last_event(demo_store: Store) -> None:
    """The shortcut :func:`replay.state_frame` takes when nothing changed since, against its twin."""
    with demo_store.read() as conn:
        current = replay._typed(replay._current(conn, "DEMO"))
        rebuilt = replay._typed(replay._replayed(conn, "DEMO", "2099-01-01T00:00:00.000000Z"))
    pd.testing.assert_frame_equal(current, rebuilt, check_dtype=False)


def test_settled_reads_the_current_tables_only_when_nothing_changed_since(demo_store: Store) -> None:
    with demo_store.read() as conn:
        assert replay.settled(conn, "DEMO", replay.instant("2026-09-30"))
        assert not replay.settled(conn, "DEMO", replay.instant("2026-03-31"))
        assert replay.settled(conn, "DEMO", None)


def test_a_finding_not_yet_seen_is_not_in_the_record(demo_store: Store) -> None:
    with demo_store.read() as conn:
        early = replay.state_frame(conn, "DEMO", "2025-10-01T09:00:00Z")  # before the first scan
        later = replay.state_frame(conn, "DEMO", "2025-12-31")
    assert early.empty and not later.empty


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-09-30", "2026-09-30T23:59:59.999999Z"),
        ("2026-09-30T12:00:00+02:00", "2026-09-30T10:00:00.000000Z"),
        (None, None),
    ],
)
def test_instants_are_canonical_utc_text(value, expected) -> None:
    assert replay.instant(value) == expected


def test_json_fields_read_the_same_on_both_backends(demo_store: Store) -> None:
    ev = schema.events.c
    with demo_store.read() as conn:
        stmt = (
            select(
                replay.json_text(conn, ev.payload, "data", "kind"),
                replay.json_text(conn, ev.payload, "data", "set", "state"),
            )
            .where(ev.type == "finding_verified_closed", ev.outcome == "success")
            .order_by(ev.seq)
            .limit(3)
        )
        rows = conn.execute(stmt).all()
    assert rows and all(kind in ("rescan", "retest", "commit", "attestation") for kind, _ in rows)
    assert {state for _, state in rows} == {"verified_closed"}


def test_the_head_as_of_an_instant_is_an_existing_event(demo_store: Store) -> None:
    with demo_store.read() as conn:
        seq, row_hash = replay.head(conn, replay.instant("2026-03-31"))
        row = conn.execute(
            select(schema.events.c.occurred_at, schema.events.c.row_hash).where(schema.events.c.seq == seq)
        ).one()
        after = conn.execute(select(schema.events.c.occurred_at).where(schema.events.c.seq == seq + 1)).scalar()
    assert row.row_hash == row_hash and row.occurred_at <= "2026-03-31T23:59:59.999999Z" < after


def test_memo_entries_are_shared_through_the_folder_until_the_log_moves(
    demo_copy: Store, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HANDOFFKIT_MEMO_DIR set, a second process (here: an emptied in-process memo) reads what the
    first computed; an event appended (the log head moves) makes every entry stale."""
    from handoffkit.record.log import Event, log_event

    folder = tmp_path / "memo"
    folder.mkdir()
    monkeypatch.setenv(_memo.SHARED_MEMO_ENV, str(folder))
    monkeypatch.setattr(_memo, "_MEMO", {})
    calls: list[str] = []

    def compute(label: str):
        return lambda: calls.append(label) or {"computed": label}

    with demo_copy.read() as conn:
        assert _memo.memo(conn, "test", ("DEMO", "k"), compute("first")) == {"computed": "first"}
    _memo._MEMO.clear()  # what another process starts with
    with demo_copy.read() as conn:
        assert _memo.remembered(conn, "test", ("DEMO", "k")) == {"computed": "first"}
        assert _memo.memo(conn, "test", ("DEMO", "k"), compute("again")) == {"computed": "first"}
        assert _memo.memo(conn, "test", ("DEMO", "other"), compute("other")) == {"computed": "other"}
    log_event(demo_copy, Event(type="reconciliation_run", actor="Test Person", engagement="DEMO"))
    _memo._MEMO.clear()
    with demo_copy.read() as conn:
        assert _memo.remembered(conn, "test", ("DEMO", "k")) is None
        assert _memo.memo(conn, "test", ("DEMO", "k"), compute("moved")) == {"computed": "moved"}
    assert calls == ["first", "other", "moved"]
    assert len(list(folder.glob("*.pickle"))) == 3 and not list(folder.glob("*.partial"))


def test_without_the_folder_nothing_is_written(demo_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_memo.SHARED_MEMO_ENV, raising=False)
    monkeypatch.setattr(_memo, "_MEMO", {})
    with demo_store.read() as conn:
        assert _memo.memo(conn, "test", ("DEMO",), lambda: 1) == 1
        assert _memo._shared_path("test", ("DEMO",)) is None


def test_a_driver_frame_has_every_row_also_after_the_connection_streamed(demo_store: Store) -> None:
    """Execution options stick to a connection; a streamed read before must not cost the frame a row."""
    from handoffkit.record.log import iter_events

    stmt = select(schema.findings.c.finding_id).order_by(schema.findings.c.number)
    with demo_store.read() as conn:
        expected = conn.execute(stmt).scalars().all()
        next(iter_events(conn))  # sets yield_per on this connection
        assert frames.driver_frame(conn, stmt)["finding_id"].tolist() == expected
