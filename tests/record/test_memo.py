"""The head-keyed cache answers exactly what computing again answers, across writes and processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoffkit.record import _memo
from handoffkit.record.log import Event, log_event
from handoffkit.record.store import Store

ACTOR = "Ana Silva"


def _count(store: Store) -> int:
    with store.read() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM events").scalar()


@pytest.mark.parametrize("shared", [False, True])
def test_a_kept_answer_is_the_computed_one_after_every_write(tmp_path: Path, monkeypatch, shared: bool) -> None:
    if shared:
        monkeypatch.setenv(_memo.SHARED_MEMO_ENV, str(tmp_path / "memo"))
        (tmp_path / "memo").mkdir()
    monkeypatch.setattr(_memo, "_MEMO", {})
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    calls = []
    for step in range(4):
        for _ in range(2):  # asked twice at the same head: computed once, the same answer both times
            with store.read() as conn:
                got = _memo.memo(conn, "count", ("x",), lambda: calls.append(1) or _count(store))
            assert got == _count(store)
        assert len(calls) == step + 1
        if shared:  # what another process finds: the answer on disk, not in this one's memory
            _memo._MEMO.clear()
            with store.read() as conn:
                assert _memo.remembered(conn, "count", ("x",)) == _count(store)
        log_event(store, Event(type="note", actor=ACTOR, data={"step": step}))
    store.dispose()
