"""The data-quality gate as a long-lived local process: Great Expectations imported and its suite built
once, then used by every ingest this user runs until the process has been idle for a while.

Importing Great Expectations costs an ingest process several times what the rest of a small ingest
costs, and the suite never changes between runs, so the CLI hands the gate's frame to this process and
reads back Great Expectations' own validation result; the verdict is built from that result exactly as
in-process (:func:`handoffkit.ingest.quality.result_of`), and nothing is written before it.

- **Where**: a Unix socket in a directory only this user can enter (``HANDOFFKIT_GATE_DIR``, else
  ``$XDG_RUNTIME_DIR/handoffkit`` or ``<tmp>/handoffkit-<uid>``); a directory others can reach is not
  used. The server also checks each peer's user id. Requests and answers are JSON, never pickles (the
  answer in the standard library's JSON, which keeps a NaN a NaN as the in-process result does).
- **Which**: the socket's name carries a key over the interpreter, the handoffkit code on its path and
  the gate's own modules and Great Expectations' version, so a changed suite or upgrade never talks to an
  old process (that one idles out).
- **When**: an ingest that finds no gate serving checks in its own process, as it always did, then
  starts one (``warm``); the ingests after it find the gate loaded. It exits after ``IDLE_SECONDS`` without a
  request, or on ``handoffkit gate stop``.
- **Otherwise**: if the gate dies mid-request, the check runs in this process (with a warning).
  ``HANDOFFKIT_GATE=inprocess`` asks for in-process checks outright.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from handoffkit.errors import HandoffkitError
from handoffkit.ingest import quality

IDLE_SECONDS = 900.0
ANSWER_WAIT_SECONDS = 600.0  # a large file's check, in a process serving one request at a time
_HEADER = struct.Struct("!Q")
_CODE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the handoffkit package
_log = logging.getLogger("handoffkit.gate")


class GateUnavailable(HandoffkitError):
    """The gate process could not answer; the caller checks in-process instead."""


class GateAbsent(GateUnavailable):
    """No gate is serving (none started yet, or one still loading): the normal first run."""


def enabled() -> bool:
    return os.environ.get("HANDOFFKIT_GATE", "served").strip().lower() != "inprocess"


def runtime_dir() -> Path | None:
    """The directory for the socket, created private; None when others could reach it."""
    given = os.environ.get("HANDOFFKIT_GATE_DIR")
    if given:
        path = Path(given)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "handoffkit"
    else:
        path = Path(tempfile.gettempdir()) / f"handoffkit-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


def key() -> str:
    """What must match for a running gate to answer for this process."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for part in (sys.executable, str(_CODE_ROOT), importlib.metadata.version("great_expectations")):
        h.update(part.encode() + b"\0")
    for name in ("quality.py", "_gx.py", "gate_server.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def address() -> Path | None:
    where = runtime_dir()
    return None if where is None else where / f"gate-{key()}.sock"


# ----------------------------------------------------------------------------------------- client


def check_findings(frame: pd.DataFrame) -> quality.QualityResult:
    """:func:`handoffkit.ingest.quality.check_findings`, answered by the gate process when one is serving;
    when none is, this process checks and a gate is started for the ingests that follow."""
    where = address() if enabled() else None
    if where is None:
        return quality.check_findings(frame)
    try:
        return quality.result_of(_ask(where, {"op": "check", "columns": _columns(frame)}))
    except GateAbsent:
        result = quality.check_findings(frame)
        warm()  # after this check: a gate loading meanwhile would only compete with it for the processor
        return result
    except GateUnavailable as exc:
        _log.warning("the gate process did not answer (%s); checking in this process", exc)
        return quality.check_findings(frame)


def warm() -> None:
    """Start a gate process if none is running or loading, and return at once."""
    where = address() if enabled() else None
    if where is not None and _pid(where) is None:
        _spawn(where)


def status() -> dict[str, Any] | None:
    """The serving gate's own account of itself, ``{"pid": N, "loading": True}`` while one loads, or
    None when none is running for this code."""
    running = _running()
    if running is None:
        return None
    where, pid = running
    try:
        return _ask(where, {"op": "status"})
    except GateUnavailable:
        return {"pid": pid, "loading": True}


def stop() -> bool:
    """Stop the running (or loading) gate; False when none was running."""
    running = _running()
    if running is None:
        return False
    where, pid = running
    try:
        _ask(where, {"op": "stop"})
    except GateUnavailable:
        if pid > 0:  # never 0 or -1: kill() would signal a whole process group, or every process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    return True


def _running() -> tuple[Path, int] | None:
    """The socket and process id of this code's gate, when one is running or loading."""
    where = address()
    pid = None if where is None else _pid(where)
    return None if where is None or pid is None else (where, pid)


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {c: frame[c].tolist() for c in quality.GATE_COLUMNS}


def _ask(where: Path, request: dict[str, Any]) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(str(where))  # a gate binds only once it has loaded: no waiting on its load here
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise GateAbsent(str(exc)) from exc
        sock.settimeout(ANSWER_WAIT_SECONDS)
        try:
            _send(sock, orjson.dumps(request))
            answer = json.loads(_receive(sock))
        except (OSError, ValueError) as exc:
            raise GateUnavailable(f"{type(exc).__name__}: {exc}") from exc
    finally:
        sock.close()
    if "error" in answer:
        raise GateUnavailable(answer["error"])
    return answer["result"]


def _pid(where: Path) -> int | None:
    """The process id of the gate holding this socket's lock (serving, or still loading); None if none."""
    try:
        with open(_lock_path(where), "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                text = fh.read().strip()
                return int(text) if text.isdigit() else -1  # still writing its pid
    except OSError:
        return None
    return None


def _spawn(where: Path) -> subprocess.Popen[bytes]:
    # The child must import this very code, whatever path the parent was started with.
    path = os.pathsep.join(filter(None, [str(_CODE_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    with open(where.with_suffix(".log"), "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "handoffkit.ingest.gate_server", str(where)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            env=env,
            start_new_session=True,  # not stopped by the terminal's ^C meant for the ingest
        )


def _lock_path(where: Path) -> Path:
    return where.with_suffix(".lock")


def _send(sock: socket.socket, body: bytes) -> None:
    sock.sendall(_HEADER.pack(len(body)) + body)


def _receive(sock: socket.socket) -> bytes:
    size = _HEADER.unpack(_exactly(sock, _HEADER.size))[0]
    return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionResetError("the gate process closed the connection")
        got += n
    return bytes(buf)


# ----------------------------------------------------------------------------------------- server


def serve(where: Path, idle: float = IDLE_SECONDS) -> None:
    """Load Great Expectations and the suite once, then bind and answer requests one at a time; exit when
    idle. Binding only once loaded means a client never waits on the load: it checks in its own process."""
    lock = open(_lock_path(where), "a+")  # noqa: SIM115 - held for the process's life: one gate per key
    if not _exclusive(lock):
        lock.close()
        return  # another gate for this key is alive
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    quality.prepare()
    where.unlink(missing_ok=True)  # a socket left by a gate that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(where))
    os.chmod(where, 0o600)
    listener.listen(16)
    state = {"pid": os.getpid(), "key": where.stem.removeprefix("gate-"), "idle_seconds": idle, "checks": 0}
    state["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    listener.settimeout(idle)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            with conn:
                if not _answer(conn, state):
                    return
    finally:
        where.unlink(missing_ok=True)
        listener.close()
        lock.close()


def _exclusive(lock: Any) -> bool:
    """Take the lock, allowing for a client's momentary probe (:func:`_pid`); a gate holds it for good."""
    for _ in range(50):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.02)
    return False


def _answer(conn: socket.socket, state: dict[str, Any]) -> bool:
    """Answer one request; False when asked to stop."""
    conn.settimeout(60)
    if _peer_uid(conn) not in (None, os.getuid()):
        return True
    try:
        request = orjson.loads(_receive(conn))
        op = request.get("op")
        if op == "check":
            frame = pd.DataFrame(request["columns"], columns=list(quality.GATE_COLUMNS))
            reply: dict[str, Any] = {"result": quality.validate(frame)}
            state["checks"] += 1
        elif op in ("status", "stop"):
            reply = {"result": dict(state)}
        else:
            reply = {"error": f"unknown request {op!r}"}
        _send(conn, json.dumps(reply).encode())
    except Exception as exc:  # any failure is the client's cue to check in-process
        with contextlib.suppress(OSError):
            _send(conn, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return True
    return op != "stop"


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


if __name__ == "__main__":
    serve(Path(sys.argv[1]), float(os.environ.get("HANDOFFKIT_GATE_IDLE", IDLE_SECONDS)))
