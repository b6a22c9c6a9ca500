"""The activity log: an append-only, hash-chained table of every decision.

Each event's ``payload`` is canonical JSON text — sorted keys, no whitespace, NFC-normalised strings,
NaN refused, instants as UTC text with microseconds and ``Z`` — and it holds every column of the row
(``seq`` included), so the payload alone is the event. The chain is

    row_hash = sha256(prev_hash_hex || payload_utf8)

with ``prev_hash`` of the first event being 64 zeros. The order is ``seq``, never time; but time never
goes back either: a transaction's events are stamped no earlier than the head (a writer whose clock is
behind, on another machine or simulated, takes the head's instant), so an event appended after a report
as of a past instant ``T`` cannot land before ``T``. The table is
append-only by database trigger; :func:`verify` walks the chain and names the first row that does not
hold, and an *anchor* (a head seq + row_hash taken earlier, as evidence packs carry) proves the log
was only appended to since.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from handoffkit.errors import (
    ConcurrentEditError,
    InputError,
    IntegrityError,
    RefusedError,
)
from handoffkit.record import people, schema
from handoffkit.record._fastjson import compact_json, orjson_text
from handoffkit.record.canonical import canonical_json, chain_hash, composed_is_canonical, part_text, sha256_bytes
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store, insert_tuples
from handoffkit.version import __version__

HOST = socket.gethostname()
OUTCOMES = ("success", "denied", "failure")


# ------------------------------------------------------------------------------------------ append


@dataclass(slots=True)
class Source:
    """The file (or API) an event's action read, for the event's origin.

    ``detail`` adds what a read from an API needs to be traced: the query and each response's SHA-256.
    """

    file: str
    sha256: str
    detail: dict[str, Any] | None = None


@dataclass(slots=True)
class Event:
    """One entry to append. ``state``/``disposition``/``severity`` are the finding's values after it."""

    type: str
    actor: str
    engagement: str | None = None
    finding_id: str | None = None
    ticket_key: str | None = None
    outcome: str = "success"
    data: dict[str, Any] = field(default_factory=dict)
    state: str | None = None
    disposition: str | None = None
    severity: str | None = None
    source: Source | None = None


def origin(source: Source | None = None, principal: dict[str, str] | None = None) -> dict[str, Any]:
    """Where an event came from: host, handoffkit version, the principal the system knows (see
    :meth:`Store.principal`), and the file read (with its SHA-256)."""
    out: dict[str, Any] = {"host": HOST, "version": __version__}
    if principal is not None:
        out["principal"] = principal
    if source is not None:
        out["file"] = source.file
        out["sha256"] = source.sha256
        out.update(source.detail or {})
    return out


def append(conn: Connection, store: Store, new: Iterable[Event]) -> int:
    """Append events inside the caller's write transaction; returns the new head ``seq``.

    All events of one call share one ``occurred_at``: they are one transaction.
    """
    head = conn.execute(
        select(schema.chain_head.c.seq, schema.chain_head.c.row_hash).where(schema.chain_head.c.id == 1)
    ).one()
    seq, prev = head.seq, head.row_hash
    now = store.now()
    last = conn.execute(select(schema.events.c.occurred_at).where(schema.events.c.seq == seq)).scalar()
    if last is not None and schema.format_ts(now) < last:
        now = schema.parse_ts(last)
    when = schema.format_ts(now)
    new = list(new)
    _check_directory(conn, new)
    origins: dict[int, tuple[str, dict[str, Any], str | None]] = {}
    principal = store.principal(conn)
    actors: dict[str, str] = {}
    texts = _Texts()
    rows = []
    for ev, event_id in zip(new, store.clock.new_ids(len(new), now), strict=True):
        if ev.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {ev.outcome!r}")
        seq += 1
        org = origins.get(id(ev.source))
        if org is None:
            made = origin(ev.source, principal)
            org = origins[id(ev.source)] = (canonical_json(made), made, part_text(made))
        actor = actors.get(ev.actor) or actors.setdefault(ev.actor, require_actor(ev.actor))
        row = (
            seq, event_id, when, actor, ev.outcome, ev.type, ev.engagement, ev.finding_id, ev.ticket_key, ev.state,
            ev.disposition, ev.severity,
        )  # fmt: skip
        payload = _payload(row, org, ev.data, texts)
        row_hash = chain_hash(prev, payload)
        rows.append((*row, org[0], payload, prev, row_hash))
        prev = row_hash
    if rows:
        insert_tuples(conn, schema.events, _INSERTED, rows)
        conn.execute(update(schema.chain_head).where(schema.chain_head.c.id == 1).values(seq=seq, row_hash=prev))
    return seq


_COLUMNS = tuple(c for c in schema.EVENT_COLUMNS if c != "origin")
"""An event's own columns, in the order :func:`append` holds them (the payload's keys but origin and data)."""
_INSERTED = [*_COLUMNS, "origin", "payload", "prev_hash", "row_hash"]
_KEYS = ("actor", "data", "disposition", "engagement", "event_id", "finding_id", "occurred_at", "origin", "outcome",
         "seq", "severity", "state", "ticket_key", "type")  # fmt: skip
"""A payload's keys in canonical (sorted) order: :func:`_payload` writes its parts in this order."""
_TEMPLATE = "{" + ",".join(f'"{key}":%s' for key in _KEYS) + "}"


def _text(value: Any) -> str | None:
    """The JSON text of one column value, or None where :func:`canonical_json` would not take orjson's."""
    if type(value) is str or type(value) is int:  # exact: orjson's text decodes to the same value, if it has one
        return orjson_text(value)
    return "null" if value is None else part_text(value)


class _Texts(dict[str, str | None]):
    """:func:`_text` of the few distinct strings an append repeats (actors, types, states, the instant), each
    written once. Only exact strings are kept, so that no two values that compare equal share a text."""

    def __missing__(self, value: str) -> str | None:
        text = self[value] = _text(value)
        return text

    def of(self, value: Any) -> str | None:
        return self[value] if type(value) is str else _text(value)


def _payload(
    row: tuple[Any, ...], org: tuple[str, dict[str, Any], str | None], data: dict[str, Any], texts: _Texts
) -> str:
    """The canonical text of one event's payload (its columns, origin and data).

    Written from its parts in sorted-key order: each column value's text, the origin's (once per
    source) and the data's, which is what :func:`canonical_json` writes for the whole payload when each
    part decodes back to itself and the whole is ASCII without a number ``json`` writes otherwise
    (:func:`~handoffkit.record.canonical.part_text`). Any other payload is written by
    :func:`canonical_json` itself, as one dict: a building of every payload as a dict, merged with its
    origin and data, cost as much as writing it.
    """
    seq, event_id, when, actor, outcome, type_, engagement, finding_id, ticket_key, state, disposition, severity = row
    of = texts.of
    parts = (
        of(actor), part_text(data), of(disposition), of(engagement), _text(event_id), _text(finding_id),
        of(when), org[2], of(outcome), _text(seq), of(severity), of(state), of(ticket_key), of(type_),
    )  # fmt: skip
    if None not in parts:
        text = _TEMPLATE % parts
        if composed_is_canonical(text):
            return text
    return canonical_json({**dict(zip(_COLUMNS, row, strict=True)), "origin": org[1], "data": data})


def _check_directory(conn: Connection, new: list[Event]) -> None:
    """Where an engagement has a people directory, whoever acts on it must be someone in it.

    Only what takes effect is checked: a ``denied`` or ``failure`` event records who tried, known or not.

    Raises:
        RefusedError: naming the actor and the engagement (a mutation logs it as a ``denied`` event).
    """
    acting = {(ev.engagement, ev.actor) for ev in new if ev.outcome == "success" and ev.engagement}
    found: dict[str, people.Directory | None] = {}
    for engagement, actor in sorted(acting):
        if engagement not in found:
            found[engagement] = people.directory(conn, engagement)
        known = found[engagement]
        if known is not None and known.resolve(actor) is None:
            raise RefusedError(
                f"actor {actor!r} is not in the people directory of {engagement}; "
                "add them (or this spelling as an alias) to its people.csv and load it with `init --people`"
            )


def log_event(store: Store, ev: Event) -> int:
    """Append one event in its own write transaction (for refusals and failures, and logged reads)."""
    with store.write() as conn:
        return append(conn, store, [ev])


@contextmanager
def mutation(store: Store, template: Event) -> Iterator[Connection]:
    """A write transaction for one state change; if a domain rule refuses it, nothing is written
    but one ``denied`` event (a concurrent edit or bad input: one ``failure`` event), then re-raise."""
    try:
        with store.write() as conn:
            yield conn
    except (RefusedError, ConcurrentEditError, InputError) as exc:
        outcome = "denied" if isinstance(exc, RefusedError) else "failure"
        log_event(
            store,
            Event(
                type=template.type,
                actor=template.actor,
                engagement=template.engagement,
                finding_id=template.finding_id,
                ticket_key=template.ticket_key,
                outcome=outcome,
                source=template.source,
                # A rule's or a concurrent edit's message is ours; bad input is stored without its bytes.
                data={**template.data, **(exc.refusal() if isinstance(exc, InputError) else {"reason": str(exc)})},
            ),
        )
        raise


# ------------------------------------------------------------------------------------------ verify


@dataclass
class Verification:
    """What :func:`verify` found."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    anchor: dict[str, Any] | None = None
    replayed: dict[str, int] | None = None  # rows per table rebuilt from the log and found equal (``--replay``)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "anchor": self.anchor,
            **({"replayed": self.replayed} if self.replayed is not None else {}),
        }


_MIRRORED = tuple(c for c in schema.EVENT_COLUMNS if c != "origin")
#: The columns :func:`verify` reads, in the order its fast check indexes them: the mirrored columns first.
_WALK = (*_MIRRORED, "origin", "payload", "prev_hash", "row_hash")
_ORIGIN, _PAYLOAD, _PREV, _HASH = range(len(_MIRRORED), len(_WALK))
_sha256 = hashlib.sha256


def _row_problem(row: dict[str, Any], expected_seq: int, prev: str) -> str | None:
    """What is wrong with one row, in words (the exact check; :func:`_holds` is its fast twin)."""
    if row["seq"] != expected_seq:
        return (
            f"expected seq {expected_seq}, found {row['seq']}: "
            f"{'rows missing' if row['seq'] > expected_seq else 'rows out of order'}"
        )
    if row["prev_hash"] != prev:
        return "prev_hash does not match the previous row's row_hash (a row was deleted, inserted or moved)"
    if chain_hash(row["prev_hash"], row["payload"]) != row["row_hash"]:
        return "row_hash does not match sha256(prev_hash || payload) (the row was edited)"
    try:
        payload = json.loads(row["payload"])
    except ValueError:
        return "payload is not JSON"
    for col in _MIRRORED:
        if payload.get(col) != row[col]:
            return f"column {col!r} differs from the hashed payload (the row was edited)"
    if canonical_json(payload.get("origin")) != row["origin"]:
        return "column 'origin' differs from the hashed payload (the row was edited)"
    return None


def _holds(row: tuple[Any, ...], expected_seq: int, prev: str) -> bool:
    """True when a row (in :data:`_WALK` order) certainly passes :func:`_row_problem`; False when in doubt.

    The same checks, made with C-level steps: one hash, orjson's parser, one tuple comparison for the
    mirrored columns and orjson's text of the origin. Anything this path cannot decide the same way (a
    payload orjson refuses, such as an integer over 64 bits; an origin whose text orjson would write
    differently, or with text to NFC-normalise) is left to the exact check.
    """
    payload = row[_PAYLOAD]
    if row[0] != expected_seq or row[_PREV] != prev or _sha256((prev + payload).encode()).hexdigest() != row[_HASH]:
        return False
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    origin = compact_json(doc.get("origin"))
    return (
        tuple(map(doc.get, _MIRRORED)) == row[:_ORIGIN]
        and origin is not None
        and origin.isascii()
        and origin == row[_ORIGIN]
    )


def head(conn: Connection) -> tuple[int, str]:
    """The chain head as recorded in ``chain_head`` (seq, row_hash)."""
    row = conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.row_hash)).one()
    return row.seq, row.row_hash


def _walk(conn: Connection) -> Iterator[list[tuple[Any, ...]]]:
    """The events in ``seq`` order, in :data:`_WALK`'s columns, as batches of the driver's own tuples.

    Read through a cursor of the driver (a server-side one on PostgreSQL, so a long log is never held in
    memory) inside ``conn``'s snapshot: the text columns and integers the drivers return are the values
    themselves, and building SQLAlchemy rows for a million events was a third of the walk. (The cursor of
    a streamed SQLAlchemy result will not do: SQLAlchemy has already buffered its first rows.)
    """
    query = select(*[schema.events.c[name] for name in _WALK]).order_by(schema.events.c.seq)
    raw = conn.connection.dbapi_connection
    cursor = raw.cursor(name="hk_log_walk") if conn.dialect.name == "postgresql" else raw.cursor()
    try:
        cursor.execute(str(query.compile(dialect=conn.dialect)))
        while part := cursor.fetchmany(20_000):
            yield part
    finally:
        cursor.close()


def verify(store: Store, anchor: dict[str, Any] | None = None) -> Verification:
    """Walk the whole chain in ``seq`` order; the first inconsistent row stops the walk."""
    with store.read() as conn:
        head_seq, head_hash = head(conn)
        expected, prev = 1, schema.GENESIS_HASH
        anchor_hash_at: str | None = None
        hash_at_head: str | None = None
        anchor_seq = anchor["seq"] if anchor else None
        parts = _walk(conn)
        for part in parts:
            for row in part:
                if not _holds(row, expected, prev):
                    problem = _row_problem(dict(zip(_WALK, row, strict=True)), expected, prev)
                    if problem:
                        parts.close()  # the driver's cursor, before the snapshot ends
                        bad = min(row[0], expected)
                        return Verification(False, expected - 1, head_seq, head_hash, bad, problem, anchor)
                seq, prev = row[0], row[_HASH]
                if seq == anchor_seq:
                    anchor_hash_at = prev
                if seq == head_seq:
                    hash_at_head = prev
                expected += 1
    checked = last_seq = expected - 1
    if (last_seq, prev) != (head_seq, head_hash):
        bad, reason = _head_problem(last_seq, prev, head_seq, head_hash, hash_at_head)
        return Verification(False, checked, head_seq, head_hash, bad, reason, anchor)
    if anchor:
        if anchor["seq"] > last_seq:
            return Verification(
                False,
                checked,
                head_seq,
                head_hash,
                last_seq + 1,
                f"the anchor records seq {anchor['seq']} but the log ends at seq {last_seq} (the log was truncated)",
                anchor,
            )
        if anchor_hash_at != anchor["row_hash"]:
            return Verification(
                False,
                checked,
                head_seq,
                head_hash,
                anchor["seq"],
                f"row {anchor['seq']} has hash {anchor_hash_at}, the anchor records "
                f"{anchor['row_hash']} (the chain was rewritten)",
                anchor,
            )
    return Verification(True, checked, head_seq, head_hash, anchor=anchor)


def _head_problem(
    last_seq: int, last_hash: str, head_seq: int, head_hash: str, hash_at_head: str | None
) -> tuple[int, str]:
    """The first bad seq and what differs when the rows hold together but the ``chain_head`` row does not
    match the last of them: naming the field, the value the rows give and the value the head records."""
    if head_seq == last_seq:
        return head_seq, (
            f"chain head field row_hash differs: the log's last row (seq {last_seq}) has row_hash {last_hash}, "
            f"the chain head records {head_hash} (the chain head was edited)"
        )
    if head_hash == last_hash:
        return min(head_seq, last_seq) + 1, (
            f"chain head field seq differs: the log ends at seq {last_seq}, whose row_hash the chain head "
            f"records, but with seq {head_seq} (the chain head was edited)"
        )
    if head_seq < last_seq and hash_at_head == head_hash:
        return head_seq + 1, (
            f"rows {head_seq + 1}..{last_seq} follow the chain head (seq {head_seq}, row_hash {head_hash}): "
            "rows were added at the end without moving the head"
        )
    if head_seq > last_seq:
        return last_seq + 1, (
            f"chain head fields seq and row_hash differ: the chain head records seq {head_seq} (row_hash "
            f"{head_hash}) but the log ends at seq {last_seq} (row_hash {last_hash}): rows were removed from the "
            "end, or the head was rewritten"
        )
    return head_seq + 1, (
        f"chain head fields seq and row_hash differ: the chain head records seq {head_seq} with row_hash "
        f"{head_hash}, but row {head_seq} has row_hash {hash_at_head} and the log ends at seq {last_seq} "
        f"(row_hash {last_hash}): the head was rewritten"
    )


def load_anchor(path: str | Path) -> dict[str, Any]:
    """Read an anchor: ``{"seq", "row_hash"}`` at the top level or under ``chain_head`` (a manifest)."""
    from handoffkit.record.inputs import load_json, read_bytes

    doc = load_json(read_bytes(path), str(path))
    node = doc.get("chain_head", doc) if isinstance(doc, dict) else None
    if not (
        isinstance(node, dict)
        and isinstance(node.get("seq"), int)
        and isinstance(node.get("row_hash"), str)
        and len(node["row_hash"]) == 64
    ):
        raise InputError(
            f'{path}: expected an anchor {{"seq": N, "row_hash": "<64 hex>"}} (at the top level or under "chain_head")'
        )
    return {"seq": node["seq"], "row_hash": node["row_hash"]}


def verify_logged(
    store: Store,
    actor: str,
    anchor_path: str | None = None,
    public_key: str | Path | None = None,
    *,
    replay: bool = False,
) -> Verification:
    """Verify, then log a verification that passed as a ``log_verified`` event.

    With ``public_key``, the anchor's detached signature (``<anchor>.sig``) is checked first: an anchor
    is only as good as the file carrying it, and a rewritten log with a rewritten manifest agrees with
    itself. With ``replay``, findings, links and first ticket snapshots are then rebuilt from the log and
    compared with the tables (:mod:`handoffkit.record.replay_check`): a row edited without an event is a
    failure too. A log that fails is left exactly as found: nothing is appended after a break (an appended
    event would chain onto the damaged rows and the head, and could hide which rows the damage reached).

    Raises:
        IntegrityError: the anchor's signature, the chain, its head or the anchor does not verify
            (nothing was written).
        ConfigError: the public key cannot be read.
    """
    from handoffkit.record import signatures  # cryptography is imported only by the commands that sign

    actor = require_actor(actor)
    if public_key is not None and not anchor_path:
        raise InputError("a public key checks an anchor's signature: give the anchor (manifest.json) too")
    signer = signatures.check(anchor_path, public_key) if public_key is not None else None
    anchor = load_anchor(anchor_path) if anchor_path else None
    result = verify(store, anchor)
    if not result.ok:
        raise IntegrityError(f"activity log fails verification at seq {result.first_bad_seq}: {result.reason}")
    if replay:
        from handoffkit.record import replay_check  # it rebuilds findings, which log through this module

        checked = replay_check.check(store)
        if not checked.ok:
            raise IntegrityError(f"the tables differ from the activity log: {checked.summary()}")
        result.replayed = checked.rows
    src = Source(str(anchor_path), sha256_bytes(Path(anchor_path).read_bytes())) if anchor_path else None
    data = result.as_dict() | ({"anchor_signed_by": signer} if signer else {})
    log_event(store, Event(type="log_verified", actor=actor, source=src, data=data))
    return result


_DECODE = json.JSONDecoder().raw_decode


def event_data(payload: str) -> Any:
    """The ``data`` of an event's payload, decoding only that.

    A canonical payload sorts its keys, so it opens ``{"actor":"…","data":``: decoding from there stops
    at the end of ``data`` and skips the columns and origin after it, which a reader has in their own
    columns (the findings replay and the checklist read many payloads this way). Any payload not
    opening that way is decoded whole.
    """
    if payload.startswith('{"actor":'):
        _, end = _DECODE(payload, 9)
        if payload.startswith(',"data":', end):
            return _DECODE(payload, end + 8)[0]
    return json.loads(payload)["data"]


def iter_events(conn: Connection, stmt=None) -> Iterator[Any]:
    """Stream events (all, or those a select on ``schema.events`` picks) in ``seq`` order."""
    stmt = stmt if stmt is not None else select(schema.events)
    yield from conn.execution_options(yield_per=20_000).execute(stmt.order_by(schema.events.c.seq))
