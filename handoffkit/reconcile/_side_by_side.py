"""A speed shortcut with a twin: the reconciliation's longest pass in a forked child process while the
others run here; its twin is running them one after another on one connection, which it falls back to.

A process, not a thread: Debian's SQLite counts its memory under one mutex for the whole process, so
two connections reading in two threads wait on each other for every page they allocate.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from handoffkit.record.log import head
from handoffkit.record.store import in_memory, snapshot, twin

Job = Callable[[Any], dict[str, Any]]
"""A read on a connection, returning named results (a pass: each of its categories' ids, or a total)."""


def one_after_another(conn: Any, jobs: list[Job]) -> list[dict[str, Any]]:
    return [job(conn) for job in jobs]


def side_by_side(conn: Any, jobs: list[Job]) -> list[dict[str, Any]]:
    """The first job (the links pass, the longest) in a child process of its own, on its own connection,
    while the others run here: SQLite runs one query on one core, PostgreSQL one backend per connection.

    A process, not a thread: Debian's SQLite (the one Python's ``sqlite3`` uses here) counts its memory
    under one mutex for the whole process and has no per-connection lookaside memory, so two
    connections reading in two threads wait on each other for every page and value they allocate. The
    child sorts its ids too, while this connection's queries run.

    Only on a record another connection can open (not SQLite in memory), where this process may fork a
    child (not in a daemonic worker process, nor where ``fork`` is not offered), and only if the
    child's connection sees the same log head as this one: every change appends an event, so the same
    head is the same record (both read one snapshot throughout, :func:`handoffkit.record.store.snapshot`). A
    write landing in between (a different head), or the child failing, sends the job back to this
    connection.
    """
    engine = conn.engine
    if len(jobs) < 2 or in_memory(engine.url) or not _may_fork():
        return one_after_another(conn, jobs)
    at = head(conn)

    def elsewhere() -> dict[str, Any] | None:
        # A new engine: the child must not use, or close, the connections it inherited from this process.
        with snapshot(twin(engine)) as other:
            return jobs[0](other) if head(other) == at else None

    with _forked(elsewhere) as first:
        rest = one_after_another(conn, jobs[1:])
        return [first() or jobs[0](conn), *rest]


def _may_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


@contextmanager
def _forked(fn: Callable[[], Any]) -> Iterator[Callable[[], Any]]:
    """``fn`` run in a child process forked now; yields a call that waits for what ``fn`` returned
    (None if it raised: the caller does the work itself, and sees the error). The child is ended and
    reaped on the way out, whatever happened here."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_send, args=(fn, send), daemon=True)
    child.start()
    send.close()

    def result() -> Any:
        try:
            return receive.recv()
        except EOFError:  # the child died before sending
            return None

    try:
        yield result
    finally:
        receive.close()
        child.terminate()
        child.join()


def _send(fn: Callable[[], Any], send: Any) -> None:
    try:
        out = fn()
    except Exception:
        out = None
    send.send(out)
