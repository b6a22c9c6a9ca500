"""One transaction per mutation: state and its event together, a refusal writes only its ``denied``
event, and an empty actor is refused before anything is written."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest
from sqlalchemy import func, select

from handoffkit.errors import HandoffkitError, RefusedError
from handoffkit.record import findings, log, schema
from handoffkit.record import store as store_module
from handoffkit.record.store import Store
from handoffkit.workflow import calibration, exceptions
from tests.builders import add_findings, chain_head, event_rows


def snapshot(store: Store) -> dict[str, object]:
    with store.read() as conn:
        rows = conn.execute(select(schema.findings).order_by(schema.findings.c.number))
        return {
            "findings": [dict(r._mapping) for r in rows],
            "exceptions": conn.execute(select(func.count()).select_from(schema.exceptions)).scalar(),
        }


def test_a_self_approved_exception_changes_nothing_but_one_denied_event(store: Store, engagement: str) -> None:
    [fid] = add_findings(store, engagement)
    before, head = snapshot(store), chain_head(store)
    with pytest.raises(RefusedError, match="same person"):
        exceptions.grant(
            store, fid, approver="  ana   SILVA ", reason="accepted risk", expires=date(2026, 6, 30), actor="Ana Silva"
        )
    assert snapshot(store) == before
    new = event_rows(store)[head[0] :]
    assert [(r["seq"], r["type"], r["outcome"], r["actor"], r["finding_id"], r["engagement"]) for r in new] == [
        (head[0] + 1, "exception_granted", "denied", "Ana Silva", fid, engagement)
    ]
    data = json.loads(new[0]["payload"])["data"]
    assert "same person" in data["reason"] and data["approver"] == "  ana   SILVA "
    assert log.verify(store).ok


def test_a_different_approver_is_granted_in_one_transaction(store: Store, engagement: str) -> None:
    """The positive control for the refusal above: the exception row, the finding's state and the event."""
    [fid] = add_findings(store, engagement)
    head = chain_head(store)
    exceptions.grant(
        store, fid, approver="Dana Whitfield", reason="WAF rule", expires=date(2026, 6, 30), actor="Ana Silva"
    )
    after = snapshot(store)
    assert after["exceptions"] == 1 and after["findings"][0]["state"] == "excepted"
    assert [(r["type"], r["outcome"]) for r in event_rows(store)[head[0] :]] == [("exception_granted", "success")]


@pytest.mark.parametrize("actor", ["", "   ", None])
def test_an_empty_actor_is_refused_before_anything_is_written(store: Store, engagement: str, actor: str | None) -> None:
    [fid] = add_findings(store, engagement)
    before, head = snapshot(store), chain_head(store)
    attempts = [
        lambda: exceptions.grant(
            store, fid, approver="Dana Whitfield", reason="r", expires=date(2026, 6, 30), actor=actor
        ),
        lambda: calibration.calibrate(store, fid, severity="low", reason="r", actor=actor),
        lambda: log.log_event(store, log.Event(type="note", actor=actor)),
        lambda: log.verify_logged(store, actor),
    ]
    for attempt in attempts:
        with pytest.raises(HandoffkitError, match="an actor is required"):
            attempt()
    assert snapshot(store) == before
    assert chain_head(store) == head


def test_a_mutation_whose_event_cannot_be_written_leaves_the_state_unchanged(store: Store, engagement: str) -> None:
    """The finding update and its event are one transaction: the event failing (a NaN) undoes the update."""
    [fid] = add_findings(store, engagement)
    before, head = snapshot(store), chain_head(store)
    with pytest.raises(ValueError, match="NaN"), store.write() as conn:
        row = findings.get(conn, fid)._mapping
        findings.change(
            conn,
            store,
            row,
            {"severity": "critical"},
            type="severity_calibrated",
            actor="Ana Silva",
            data={"score": math.nan},
        )
    assert snapshot(store) == before
    assert chain_head(store) == head


def test_a_read_sees_one_state_of_the_record_throughout(store: Store, engagement: str) -> None:
    """A write committed while a read is open stays invisible to that read, on both backends (PostgreSQL's
    default isolation, READ COMMITTED, would show it to the read's next statement)."""
    add_findings(store, engagement)
    count = select(func.count()).select_from(schema.findings)
    with store.read() as conn:
        before, head = conn.execute(count).scalar(), log.head(conn)
        add_findings(store, engagement)  # another connection of the pool, committed
        assert chain_head(store)[0] == head[0] + 1
        assert conn.execute(count).scalar() == before
        assert log.head(conn) == head
    with store.read() as conn:
        assert conn.execute(count).scalar() == before + 1


# ----------------------------------------------------------------------------------- SQLite storage


def _pragma(conn, name: str) -> int:
    return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_a_new_sqlite_store_takes_the_larger_page_an_existing_one_keeps_its_own(tmp_path) -> None:
    import sqlite3

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as raw:  # a store file made with SQLite's default page size
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE t (x)")
        default = raw.execute("PRAGMA page_size").fetchone()[0]
    assert default != store_module.PAGE_SIZE
    new = Store(f"sqlite:///{tmp_path / 'new.db'}")
    with new.read() as conn:
        assert _pragma(conn, "page_size") == store_module.PAGE_SIZE
    new.dispose()
    reopened = Store(f"sqlite:///{old}")
    with reopened.read() as conn:
        assert _pragma(conn, "page_size") == default
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    reopened.dispose()


def test_a_bulk_write_grows_the_page_cache_for_its_transaction_only(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'record.db'}")
    store.engine.pool.dispose()
    with store.write(bulk=True) as conn:
        assert _pragma(conn, "cache_size") == -store_module.BULK_CACHE_KIB
    for _ in range(2):  # whichever pooled connection comes next has the usual cache
        with store.write() as conn:
            assert _pragma(conn, "cache_size") == -store_module.CACHE_KIB
    with pytest.raises(ZeroDivisionError), store.write(bulk=True):
        1 / 0  # noqa: B018 - a failed bulk transaction restores it too
    with store.read() as conn:
        assert _pragma(conn, "cache_size") == -store_module.CACHE_KIB
    store.dispose()
