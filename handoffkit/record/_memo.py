"""A speed shortcut with a twin: answers kept while the activity log's head has not moved.

A report page asks for the same findings frame or reconciliation several times (tiles, charts, tables),
and the pages of one pack ask for the same ones again. The log is append-only and every change appends
an event, so while the chain head (its ``seq`` and ``row_hash``) and the database are the same, the
answer is too: :func:`memo` returns the kept one instead of computing it again. The plain twin is
``compute()`` itself; ``tests/record/test_memo.py`` holds the two equal across writes.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from handoffkit.record import log

_MEMO: dict[str, tuple[tuple[Any, ...], Any]] = {}
#: Where processes share memo entries: a directory named by this variable, if set. ``handoffkit report``
#: sets it for its notebook kernels (a private temporary directory, removed afterwards), so the
#: reconciliation or the MTTR durations one page computed are read, not recomputed, by the next.
SHARED_MEMO_ENV = "HANDOFFKIT_MEMO_DIR"
_MISSING = object()


def memo(conn: Connection, name: str, key: tuple[Any, ...], compute: Any) -> Any:
    """The last result of ``compute()`` for the same database, log head and ``key``, else compute it.

    A notebook asks for the same findings frame or reconciliation several times (tiles, charts, tables);
    each is a scan of the record. The log is append-only and every change appends an event, so while
    the chain head (its ``seq`` and ``row_hash``) has not moved, the answer has not either. One entry
    per ``name`` bounds the memory. With :data:`SHARED_MEMO_ENV` set, entries are also kept on disk there.
    """
    full = _memo_key(conn, key)
    value = _held(name, full)
    if value is _MISSING:
        value = compute()
        shared = _shared_path(name, full)
        if shared is not None:
            _write_shared(shared, value)
        _MEMO[name] = (full, value)
    return value


def remembered(conn: Connection, name: str, key: tuple[Any, ...]) -> Any:
    """What :func:`memo` holds for ``name`` and ``key`` on this database and log head (in this process
    or, with :data:`SHARED_MEMO_ENV` set, on disk), or None."""
    value = _held(name, _memo_key(conn, key))
    return None if value is _MISSING else value


def _held(name: str, full: tuple[Any, ...]) -> Any:
    hit = _MEMO.get(name)
    if hit is not None and hit[0] == full:
        return hit[1]
    shared = _shared_path(name, full)
    if shared is None or not shared.exists():
        return _MISSING
    value = pickle.loads(shared.read_bytes())
    _MEMO[name] = (full, value)
    return value


def _memo_key(conn: Connection, key: tuple[Any, ...]) -> tuple[Any, ...]:
    return (conn.engine.url.render_as_string(hide_password=False), *log.head(conn), *key)


def _shared_path(name: str, full: tuple[Any, ...]) -> Path | None:
    folder = os.environ.get(SHARED_MEMO_ENV)
    if not folder:
        return None
    digest = hashlib.sha256(repr((name, full)).encode("utf-8")).hexdigest()
    return Path(folder) / f"{digest}.pickle"


def _write_shared(path: Path, value: Any) -> None:
    """Write whole or not at all: a process reading at the same moment sees no file or the complete one."""
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(partial, path)
