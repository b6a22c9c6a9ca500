"""The activity-log export: every event as one CSV row, with framework control-mapping columns.

The file is evidence for ISO/IEC 27001:2022 A.8.8, SOC 2 CC7.1 / CC7.2 / CC8.1, PCI DSS v4.0 6.3.3 /
11.3 and NIST SP 800-53 RA-5 / SI-2 / CM-3: which controls an event evidences is
:mod:`handoffkit.report.controls` (by its type, and for a verified closure by the evidence kind in its
``detail`` column).

Rows are in ``seq`` order (the chain order) and carry ``prev_hash`` / ``row_hash``, so a reader can
check the chain over any complete range. The engagement's events are exported together with the
log's global events (KEV catalog loads, log verifications), which carry no engagement.

Cells are formula-safe and quoted (:mod:`handoffkit.record.csvsafe`). The same record
exported with the same window and ``as_of`` gives a byte-identical file.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import Connection, func, or_, select

from handoffkit.errors import ConfigError
from handoffkit.record import engagements, replay, schema
from handoffkit.record.csvsafe import header_line, safe_cells
from handoffkit.record.log import Event, Source, log_event
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store, in_memory
from handoffkit.report.controls import FRAMEWORKS, controls
from handoffkit.report.output import Activity

#: The ``data`` key that qualifies an event of each type (copied into the ``detail`` column).
DETAIL_KEYS = {
    "finding_triaged": "as",
    "finding_verified_closed": "kind",
    "severity_calibrated": "direction",
    "finding_routed": "rule",
    "link_added": "system",
    "link_removed": "system",
    "ticket_closed_observed": "status",
    "ticket_reopened": "status",
    "scan_ingested": "format",
    "payload_issued": "target",
    "batch_issued": "batch_id",
    "finding_batched": "target",
    "ticket_update_issued": "field",
    "policy_versioned": "version",
}

COLUMNS = (
    "seq",
    "event_id",
    "occurred_at",
    "actor",
    "outcome",
    "type",
    "engagement",
    "finding_id",
    "ticket_key",
    "state",
    "disposition",
    "severity",
    "detail",
    "summary",
    "origin_host",
    "origin_version",
    "origin_principal",
    "origin_file",
    "origin_sha256",
    *FRAMEWORKS,
    "prev_hash",
    "row_hash",
)

SUMMARY_LIMIT = 300
VALUE_LIMIT = 60
_E = schema.events


@dataclass
class Export:
    """What :func:`export_log` wrote (the ``log_exported`` event's data, plus the window)."""

    file: str
    rows: int
    sha256: str
    first_seq: int | None
    last_seq: int | None
    start: str | None
    end: str | None
    as_of: str
    frameworks: tuple[str, ...] = FRAMEWORKS

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "frameworks": list(self.frameworks)}


def export_log(
    store: Store,
    engagement: str,
    out_csv: str | Path,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    as_of: datetime | date | str | None = None,
    actor: str,
    processes: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Export:
    """Write the engagement's activity log (see the module docstring) and log ``log_exported``.

    Args:
        store: the record.
        engagement: the engagement key.
        out_csv: the file to write (replaced atomically; parent directories are created).
        start, end: inclusive days (UTC) bounding ``occurred_at``; None for no bound.
        as_of: only events that happened at or before this instant (default: now).
        actor: the named person exporting (recorded in the ``log_exported`` event).
        processes: write this many parts of a large log at once, the first here and each other in a
            process of its own (see :func:`_write_parts`); the file is the same byte for byte.
        progress: told what is being written; an :class:`~handoffkit.report.output.Activity` bar also
            counts the events written here (this process's part of the log), with an ETA.

    Returns:
        An :class:`Export` describing the file.

    Raises:
        NotFoundError: the engagement does not exist.
        ConfigError: ``start`` is after ``end``.
    """
    actor = require_actor(actor)
    when = replay.instant(as_of if as_of is not None else store.now())
    if start is not None and end is not None and replay.day_start(start) > replay.day_start(end):
        raise ConfigError(f"--from {start} is after --to {end}: the window would be empty")
    path = Path(out_csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    if in_memory(store.url):
        processes = 1  # another process cannot open this one's in-memory database
    with store.read() as conn:
        engagements.get(conn, engagement)
        bounds = span(conn, start=start, end=end, as_of=when)
    parts = _parts_of(bounds, processes)
    tell = Activity.of(progress)
    tell(f"writing the activity log of {engagement} to {path}")
    # The bar runs over the seq range this process writes (other engagements' events lie in it too).
    lo, hi = parts[0] or bounds or (1, 0)
    tell.expect(hi - lo + 1)

    def moved(last: int) -> None:
        tell.reach(last - lo + 1)

    rows, first, last, digest = _write_atomically(store, engagement, path, start, end, when, parts, moved)
    moved(hi)  # the range's last events may be another engagement's: none of them left to write
    result = Export(str(path), rows, digest, first, last, _text(start), _text(end), when)
    log_event(
        store,
        Event(
            type="log_exported",
            actor=actor,
            engagement=engagement,
            source=Source(str(path), digest),
            data=result.as_dict(),
        ),
    )
    return result


def _text(day: date | str | None) -> str | None:
    return None if day is None else replay.day_start(day)


#: A window spanning fewer events of the log is written by one process (starting another costs a second).
PART_MIN_EVENTS = 200_000
#: Processes the CLI and the report write a large log with: one per core, at most four.
PROCESSES = min(os.cpu_count() or 1, 4)


def _parts_of(bounds: tuple[int, int] | None, processes: int) -> list[tuple[int, int] | None]:
    """The window's ``seq`` range cut into ``processes`` equal ranges, or ``[None]`` for one writer."""
    if bounds is None or processes < 2 or bounds[1] - bounds[0] < PART_MIN_EVENTS:
        return [None]
    lo, hi = bounds
    cuts = [lo + (hi - lo + 1) * i // processes for i in range(processes + 1)]
    return [(cuts[i], cuts[i + 1] - 1) for i in range(processes)]


def _write_atomically(
    store: Store,
    engagement: str,
    path: Path,
    start: Any,
    end: Any,
    when: str,
    parts: list[tuple[int, int] | None],
    moved: Callable[[int], None] | None = None,
) -> tuple[int, int | None, int | None, str]:
    """Write to a temporary file beside ``path``, then rename: a reader never sees half a file. The
    SHA-256 is taken of the bytes as they are written (reading a gigabyte file back cost seconds)."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as raw:
            fh = _HashingWriter(raw)
            if parts == [None]:
                with store.read() as conn:
                    rows, first, last = write_rows(conn, engagement, fh, start=start, end=end, as_of=when, moved=moved)
            else:
                rows, first, last = _write_parts(store, engagement, fh, path, start, end, when, parts, moved)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the evidence from its readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows, first, last, fh.digest.hexdigest()


def _write_parts(
    store: Store,
    engagement: str,
    fh: _HashingWriter,
    path: Path,
    start: Any,
    end: Any,
    when: str,
    parts: list[Any],
    moved: Callable[[int], None] | None = None,
) -> tuple[int, int | None, int | None]:
    """Write the first ``seq`` range here, straight into the file, and each other range to a part file in
    a process of its own meanwhile; then append the parts in order.

    Formatting a row is Python, so on a quarter of millions of events one process per core divides the
    time. Every range holds only events already in the
    log when the export began (an append-only log: a later event has a later ``seq``), so each process
    reads the same rows one would.
    """
    files = [tempfile.mkstemp(prefix=f".{path.name}.part{i}.", dir=path.parent) for i in range(1, len(parts))]
    try:
        for handle, _ in files:
            os.close(handle)
        context = multiprocessing.get_context("spawn")  # no fork of this process's threads and connections
        with ProcessPoolExecutor(max_workers=len(files), mp_context=context) as pool:
            done = [
                pool.submit(_write_part, store.url, engagement, part_file, start, end, when, seqs)
                for (_, part_file), seqs in zip(files, parts[1:], strict=True)
            ]
            fh.write(header_line(COLUMNS))
            with store.read() as conn:
                here = write_rows(
                    conn, engagement, fh, start=start, end=end, as_of=when, seqs=parts[0], header=False, moved=moved
                )
            counts = [here, *[d.result() for d in done]]
        for _, part_file in files:
            with open(part_file, "rb") as part:
                while block := part.read(1 << 24):
                    fh.write_bytes(block)
    finally:
        for _, part_file in files:
            Path(part_file).unlink(missing_ok=True)
    firsts = [c[1] for c in counts if c[1] is not None]
    lasts = [c[2] for c in counts if c[2] is not None]
    return sum(c[0] for c in counts), (firsts[0] if firsts else None), (lasts[-1] if lasts else None)


def _write_part(
    url: str, engagement: str, target: str, start: Any, end: Any, when: str, seqs: tuple[int, int]
) -> tuple[int, int | None, int | None]:
    """A later part of :func:`_write_parts` (in a child process): the rows of ``seqs``, no header."""
    store = Store(url, create=False)
    try:
        with store.read() as conn, open(target, "w", encoding="utf-8", newline="") as fh:
            return write_rows(conn, engagement, fh, start=start, end=end, as_of=when, seqs=seqs, header=False)
    finally:
        store.dispose()


class _HashingWriter:
    """A text sink writing UTF-8 to a binary file and hashing what it writes."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def write(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def write_bytes(self, data: bytes) -> None:
        self.digest.update(data)
        self.raw.write(data)


def conditions(engagement: str, *, start: Any = None, end: Any = None, as_of: str | None = None) -> list[Any]:
    """Which events an export holds: the engagement's and the global ones, in the window (for counting)."""
    return [or_(_E.c.engagement == engagement, _E.c.engagement.is_(None)), *replay.window(start, end, as_of)]


def span(conn: Connection, *, start: Any = None, end: Any = None, as_of: str | None = None) -> tuple[int, int] | None:
    """The first and last ``seq`` of the events in the window (read off ``ix_events_occurred``), or None."""
    window = replay.window(start, end, as_of)
    lo, hi = conn.execute(select(func.min(_E.c.seq), func.max(_E.c.seq)).where(*window)).one()
    return None if lo is None else (lo, hi)


def selection(
    conn: Connection,
    engagement: str,
    *,
    start: Any = None,
    end: Any = None,
    as_of: str | None = None,
    seqs: tuple[int, int] | None = None,
) -> Any:
    """The ``select`` of the exported events, in ``seq`` order (see :func:`conditions`); ``seqs`` bounds
    the ``seq`` range further (one part of an export).

    The time window is also given as the range of ``seq`` it spans (:func:`span`): every event in the
    window lies in that range, and a range on the primary key lets the database stream the rows in
    chain order instead of sorting the whole window (gigabytes of payload on a large record) before the
    first row comes out.
    """
    bounds = seqs
    if bounds is None and replay.window(start, end, as_of):
        bounds = span(conn, start=start, end=end, as_of=as_of)
        if bounds is None:
            bounds = (1, 0)  # an empty window: an empty range
    ranged = [] if bounds is None else [_E.c.seq.between(*bounds)]
    # Every column but the payload, in table order (``_cells`` unpacks the rows positionally), then the
    # payload's ``data`` as the database reads it out: a fraction of the bytes, and no decoding in Python
    # when an earlier row had the same data.
    columns = [c for c in _E.c if c.name != "payload"]
    return (
        select(*columns, replay.json_text(conn, _E.c.payload, "data").label("data"))
        .where(*ranged, *conditions(engagement, start=start, end=end, as_of=as_of))
        .order_by(_E.c.seq)
    )


def preview(
    store: Store,
    engagement: str,
    *,
    start: Any = None,
    end: Any = None,
    as_of: datetime | date | str | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """The last ``limit`` rows the export would write for this window, exactly as written (formula-safe)."""
    when = replay.instant(as_of if as_of is not None else store.now())
    with store.read() as conn:
        engagements.get(conn, engagement)
        stmt = selection(conn, engagement, start=start, end=end, as_of=when).order_by(None).order_by(_E.c.seq.desc())
        rows = conn.execute(stmt.limit(limit)).fetchall()
    seen = _Seen()
    return pd.DataFrame([_cells(row, seen) for row in reversed(rows)], columns=list(COLUMNS))


def write_rows(
    conn: Connection,
    engagement: str,
    fh: Any,
    *,
    start: Any = None,
    end: Any = None,
    as_of: str | None = None,
    seqs: tuple[int, int] | None = None,
    header: bool = True,
    moved: Callable[[int], None] | None = None,
) -> tuple[int, int | None, int | None]:
    """Stream the selected events to ``fh`` as CSV; returns (rows, first seq, last seq). ``moved`` is
    called with the last ``seq`` of each chunk written."""
    if header:
        fh.write(header_line(COLUMNS))
    seen = _Seen()
    rows, first, last = 0, None, None
    result = conn.execution_options(yield_per=20_000).execute(
        selection(conn, engagement, start=start, end=end, as_of=as_of, seqs=seqs)
    )
    for chunk in result.partitions():
        fh.write("".join([_line(row, seen) for row in chunk]))
        rows += len(chunk)
        first = first if first is not None else chunk[0][0]
        last = chunk[-1][0]
        if moved is not None:
            moved(last)
    return rows, first, last


class _Part(NamedTuple):
    """Adjacent cells that many rows share, made safe and quoted once."""

    cells: list[str]
    """Formula-safe, as :func:`preview` shows them."""
    quoted: str
    """The same as they sit inside a CSV record (quotes doubled, joined by ``","``)."""

    @classmethod
    def of(cls, *values: Any) -> _Part:
        cells = safe_cells(values)
        return cls(cells, '","'.join([c.replace('"', '""') for c in cells]))


class _Seen:
    """What earlier rows of one export worked out, by what it came from: an event's (detail, summary) and
    controls by its type and data text, the origin columns by the origin's text. A scan writes a
    ``finding_seen`` or ``absent_in_rescan`` event with the same data for every finding it saw again or
    missed, so most rows of a log repeat one."""

    LIMIT = 100_000
    """Entries kept per map before it starts afresh (a bound on memory, not on correctness)."""

    def __init__(self) -> None:
        self.described: dict[tuple[str, str | None], tuple[_Part, _Part]] = {}
        self.origins: dict[str, _Part] = {}
        self.controls: dict[tuple[str, str | None], _Part] = {}

    def describe(self, type_: str, data_text: str | None) -> tuple[_Part, _Part]:
        """The event's detail and data summary, from the JSON text of its data, and its controls."""
        found = self.described.get((type_, data_text))
        if found is None:
            data = (json.loads(data_text) if data_text else None) or {}
            detail_key = DETAIL_KEYS.get(type_)
            detail = data.get(detail_key) if detail_key else None
            found = (_Part.of(detail, summarise(data)), self.controls_of(type_, detail))
            self._keep(self.described, (type_, data_text), found)
        return found

    def origin(self, text: str) -> _Part:
        found = self.origins.get(text)
        if found is None:
            doc = json.loads(text)
            found = _Part.of(
                str(doc.get("host") or ""),
                str(doc.get("version") or ""),
                _principal(doc.get("principal")),
                str(doc.get("file") or ""),
                str(doc.get("sha256") or ""),
            )
            self._keep(self.origins, text, found)
        return found

    def controls_of(self, type_: str, detail: Any) -> _Part:
        key = (type_, detail if isinstance(detail, str) else None)
        found = self.controls.get(key)
        if found is None:
            found = self.controls[key] = _Part.of(*controls(*key))
        return found

    def _keep(self, memo: dict[Any, _Part], key: Any, part: _Part) -> None:
        if len(memo) >= self.LIMIT:
            memo.clear()
        memo[key] = part


def _principal(principal: Any) -> str:
    """Who the system knew was writing: ``name (source)``, e.g. ``hk_app (postgresql session_user)``;
    empty for events logged before the origin carried it."""
    if not isinstance(principal, dict):
        return ""
    return f"{principal.get('name') or ''} ({principal.get('source') or ''})"


def _split(row: Any, seen: _Seen) -> tuple[list[str], _Part, _Part, _Part]:
    """A row as its own cells (the event's columns, then ``prev_hash`` and ``row_hash``), formula-safe, and
    the shared parts: (detail, summary), origin, controls."""
    # :func:`selection`'s columns: the event's first twelve, origin, the two hashes, then the data.
    *columns, origin_text, prev_hash, row_hash, data_text = row
    own = safe_cells((*columns, prev_hash, row_hash))
    described, mapped = seen.describe(columns[5], data_text)
    return own, described, seen.origin(origin_text), mapped


def _cells(row: Any, seen: _Seen) -> list[str]:
    """One CSV row in :data:`COLUMNS` order, formula-safe."""
    own, described, origin, mapped = _split(row, seen)
    return [*own[:12], *described.cells, *origin.cells, *mapped.cells, *own[12:]]


def _line(row: Any, seen: _Seen) -> str:
    """``quoted_line(_cells(row, seen))``, with the shared parts quoted once instead of on every row."""
    own, described, origin, mapped = _split(row, seen)
    q = [c.replace('"', '""') for c in own]
    return '"' + '","'.join((*q[:12], described.quoted, origin.quoted, mapped.quoted, q[12], q[13])) + '"\n'


def summarise(data: dict[str, Any]) -> str:
    """A compact one-line summary of an event's ``data`` (at most :data:`SUMMARY_LIMIT` characters).

    Changes read ``field: old → new``; other scalars ``key=value``; nested objects and lists are
    counted, not spelt out (the full payload stays in the record, behind ``row_hash``).
    """
    parts: list[str] = []
    size = 0
    for part in _parts(data):
        parts.append(part)
        size += len(part) + 2
        if size > SUMMARY_LIMIT:  # the rest would be clipped anyway
            break
    text = "; ".join(parts)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _parts(data: dict[str, Any]) -> Iterator[str]:
    changes, before = data.get("set"), data.get("from")
    if isinstance(changes, dict):
        if isinstance(before, dict):
            for k, v in changes.items():
                yield f"{k}: {_short(before.get(k))} → {_short(v)}"
        else:
            for k, v in changes.items():
                if v is not None:
                    yield f"{k}={_short(v)}"
    for k, v in data.items():
        if v is not None and k != "set" and k != "from":
            yield f"{k}={_short(v)}"


def _short(value: Any) -> str:
    if value.__class__ is str:
        text = " ".join(value.split()) if "\n" in value or "\t" in value or "\r" in value or "  " in value else value
    elif value is None:
        return "null"
    elif isinstance(value, bool):
        return "true" if value else "false"
    elif isinstance(value, dict):
        return f"{{{len(value)} keys}}"
    elif isinstance(value, list):
        return f"[{len(value)} items]" if len(value) > 3 else "[" + ", ".join(_short(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"
