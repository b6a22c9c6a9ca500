"""The activity log's hash chain against an attacker with write access (triggers dropped first).

Every example edits the 30-event log of the ``chain`` fixture, runs :func:`log.verify`, and puts
the original rows back, so one store per backend serves all the examples.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, exc, text, update

from handoffkit.errors import IntegrityError
from handoffkit.record import canonical, log, schema
from handoffkit.record.store import Store
from tests.builders import CHAIN_LENGTH, chain_head, drop_append_only, event_rows, set_events, write_log

EXAMPLES = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEQS = st.integers(1, CHAIN_LENGTH)

Rows = list[dict[str, Any]]
Pristine = tuple[Rows, tuple[int, str]]


@pytest.fixture
def chain(store: Store) -> Iterator[Store]:
    """A store holding a 30-event log, with the append-only triggers already dropped by an attacker.

    Tests that edit it restore the original rows (``restore``) so one store serves many examples.
    """
    write_log(store)
    drop_append_only(store)
    yield store


@pytest.fixture
def pristine(chain: Store) -> Pristine:
    """The untouched log of ``chain`` and its head, for restoring between examples."""
    return event_rows(chain), chain_head(chain)


def flip_byte(value: str, offset: int, mask: int) -> str | None:
    """``value`` with one byte of its UTF-8 form XOR-ed with ``mask`` (ASCII bytes only, never NUL,
    so the result is still text both backends accept)."""
    raw = bytearray(value.encode("utf-8"))
    i = offset % len(raw)
    if raw[i] >= 0x80 or raw[i] ^ mask == 0:
        return None
    raw[i] ^= mask
    return raw.decode("utf-8")


def rechain(rows: Rows, start: int) -> Rows:
    """Recompute prev_hash/row_hash from ``start`` (1-based) onwards, as a careful attacker would."""
    out = [dict(r) for r in rows]
    for i in range(start - 1, len(out)):
        prev = out[i - 1]["row_hash"] if i else schema.GENESIS_HASH
        out[i]["prev_hash"] = prev
        out[i]["row_hash"] = canonical.chain_hash(prev, out[i]["payload"])
    return out


def restore(store: Store, pristine: Pristine) -> None:
    set_events(store, pristine[0], pristine[1])
    assert log.verify(store).ok


def test_the_untouched_log_verifies(chain: Store, pristine: Pristine) -> None:
    rows, head = pristine
    result = log.verify(chain)
    assert result.ok, result.reason
    assert (result.checked, result.head_seq) == (CHAIN_LENGTH, CHAIN_LENGTH)
    assert [r["seq"] for r in rows] == list(range(1, CHAIN_LENGTH + 1))
    assert head == (CHAIN_LENGTH, rows[-1]["row_hash"])
    assert all(r["row_hash"] == canonical.chain_hash(r["prev_hash"], r["payload"]) for r in rows)


@EXAMPLES
@given(
    seq=SEQS,
    column=st.sampled_from(["payload", "prev_hash", "row_hash"]),
    offset=st.integers(0, 4096),
    mask=st.integers(1, 0x7F),
)
def test_any_flipped_byte_names_its_seq(
    chain: Store, pristine: Pristine, seq: int, column: str, offset: int, mask: int
) -> None:
    original = pristine[0][seq - 1][column]
    tampered = flip_byte(original, offset, mask)
    assume(tampered is not None)
    try:
        with chain.engine.begin() as conn:
            conn.execute(update(schema.events).where(schema.events.c.seq == seq).values({column: tampered}))
        result = log.verify(chain)
        assert not result.ok
        assert result.first_bad_seq == seq, result.reason
    finally:
        with chain.engine.begin() as conn:
            conn.execute(update(schema.events).where(schema.events.c.seq == seq).values({column: original}))


@pytest.mark.parametrize(
    "column, value",
    [
        ("actor", "Mallory"),
        ("type", "finding_verified"),
        ("outcome", "success"),
        ("engagement", "OTHER"),
        ("finding_id", "HK-999"),
        ("occurred_at", "2026-01-01T00:00:00.000000Z"),
        ("origin", '{"host":"elsewhere","version":"0.1.0"}'),
    ],
)
def test_an_edited_column_that_the_payload_mirrors_names_its_seq(
    chain: Store, pristine: Pristine, column: str, value: str
) -> None:
    seq = 17
    assert pristine[0][seq - 1][column] != value
    try:
        with chain.engine.begin() as conn:
            conn.execute(update(schema.events).where(schema.events.c.seq == seq).values({column: value}))
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, seq), result.reason
        assert repr(column) in result.reason
    finally:
        restore(chain, pristine)


@EXAMPLES
@given(seq=SEQS)
def test_a_deleted_row_is_named(chain: Store, pristine: Pristine, seq: int) -> None:
    rows = [r for r in pristine[0] if r["seq"] != seq]
    try:
        set_events(chain, rows)
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, seq), result.reason
    finally:
        restore(chain, pristine)


@EXAMPLES
@given(seq=SEQS, at_end=st.booleans())
def test_a_duplicated_row_is_named(chain: Store, pristine: Pristine, seq: int, at_end: bool) -> None:
    """A copy of row ``seq`` goes in right after it (later rows move up one) or at the end of the log.
    The copy needs a fresh event_id: the column is unique."""
    copy = {**pristine[0][seq - 1], "event_id": str(uuid.uuid4())}
    if at_end:
        rows, named = [*pristine[0], {**copy, "seq": CHAIN_LENGTH + 1}], CHAIN_LENGTH + 1
    else:
        before = pristine[0][:seq]
        after = [{**r, "seq": r["seq"] + 1} for r in pristine[0][seq:]]
        rows, named = [*before, {**copy, "seq": seq + 1}, *after], seq + 1
    try:
        set_events(chain, rows)
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, named), result.reason
    finally:
        restore(chain, pristine)


@EXAMPLES
@given(pair=st.lists(SEQS, min_size=2, max_size=2, unique=True).map(sorted))
def test_swapped_rows_name_the_first(chain: Store, pristine: Pristine, pair: list[int]) -> None:
    i, j = pair
    rows = [dict(r) for r in pristine[0]]
    rows[i - 1], rows[j - 1] = {**rows[j - 1], "seq": i}, {**rows[i - 1], "seq": j}
    try:
        set_events(chain, rows)
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, i), result.reason
    finally:
        restore(chain, pristine)


@EXAMPLES
@given(pair=st.lists(SEQS, min_size=2, max_size=2, unique=True).map(sorted))
def test_rows_each_fixed_up_alone_still_break_the_links(chain: Store, pristine: Pristine, pair: list[int]) -> None:
    """Swap two rows and make each consistent on its own (its seq in column and payload, its row_hash
    recomputed over its own prev_hash): only the prev_hash links can tell, and they name the first."""
    i, j = pair

    def renumbered(row: dict[str, Any], seq: int) -> dict[str, Any]:
        doc = json.loads(row["payload"])
        doc["seq"] = seq
        payload = canonical.canonical_json(doc)
        return {**row, "seq": seq, "payload": payload, "row_hash": canonical.chain_hash(row["prev_hash"], payload)}

    rows = [dict(r) for r in pristine[0]]
    rows[i - 1], rows[j - 1] = renumbered(pristine[0][j - 1], i), renumbered(pristine[0][i - 1], j)
    try:
        set_events(chain, rows)
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, i), result.reason
        assert "prev_hash" in result.reason
    finally:
        restore(chain, pristine)


@EXAMPLES
@given(cut=SEQS, anchor_at=SEQS)
def test_truncation_is_caught_by_the_head_and_when_the_head_is_forged_by_an_anchor(
    chain: Store, pristine: Pristine, cut: int, anchor_at: int
) -> None:
    """Rows ``cut``..30 removed. The chain head still says 30 → named. An attacker who also rewrites
    the head gets a clean verify — but an anchor taken at or after ``cut`` still names ``cut``."""
    kept = pristine[0][: cut - 1]
    anchor = {"seq": anchor_at, "row_hash": pristine[0][anchor_at - 1]["row_hash"]}
    try:
        set_events(chain, kept)
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, cut), result.reason
        assert "chain head" in result.reason

        forged = (cut - 1, kept[-1]["row_hash"] if kept else schema.GENESIS_HASH)
        set_events(chain, kept, forged)
        assert log.verify(chain).ok
        anchored = log.verify(chain, anchor)
        if anchor_at >= cut:
            assert (anchored.ok, anchored.first_bad_seq) == (False, cut), anchored.reason
            assert "truncated" in anchored.reason
        else:
            assert anchored.ok, anchored.reason
    finally:
        restore(chain, pristine)


@EXAMPLES
@given(edited=SEQS, anchor_at=SEQS)
def test_a_rewritten_chain_passes_alone_and_fails_against_an_earlier_anchor(
    chain: Store, pristine: Pristine, edited: int, anchor_at: int
) -> None:
    """The attacker changes who did row ``edited`` (payload and column alike), recomputes every hash
    from there on and fixes the head: the chain is self-consistent, only the anchor can tell."""
    rows = [dict(r) for r in pristine[0]]
    doc = json.loads(rows[edited - 1]["payload"])
    doc["actor"] = rows[edited - 1]["actor"] = "Mallory Moriarty"
    rows[edited - 1]["payload"] = canonical.canonical_json(doc)
    rows = rechain(rows, edited)
    anchor = {"seq": anchor_at, "row_hash": pristine[0][anchor_at - 1]["row_hash"]}
    try:
        set_events(chain, rows, (CHAIN_LENGTH, rows[-1]["row_hash"]))
        alone = log.verify(chain)
        assert alone.ok, alone.reason
        anchored = log.verify(chain, anchor)
        if anchor_at >= edited:
            assert (anchored.ok, anchored.first_bad_seq) == (False, anchor_at), anchored.reason
            assert "rewritten" in anchored.reason
        else:
            assert anchored.ok, anchored.reason
    finally:
        restore(chain, pristine)


def test_rechaining_an_edited_payload_without_its_column_is_still_named(chain: Store, pristine: Pristine) -> None:
    rows = [dict(r) for r in pristine[0]]
    doc = json.loads(rows[11]["payload"])
    doc["actor"] = "Mallory Moriarty"  # the column still says who really did it
    rows[11]["payload"] = canonical.canonical_json(doc)
    rows = rechain(rows, 12)
    try:
        set_events(chain, rows, (CHAIN_LENGTH, rows[-1]["row_hash"]))
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, 12), result.reason
        assert "'actor'" in result.reason
    finally:
        restore(chain, pristine)


def test_an_anchor_survives_later_appends(store: Store) -> None:
    write_log(store, 9)
    anchor = dict(zip(("seq", "row_hash"), chain_head(store), strict=True))
    for i in range(4):
        log.log_event(store, log.Event(type="note", actor="Ben Okoro", data={"i": i}))
    result = log.verify(store, anchor)
    assert result.ok, result.reason
    assert (result.head_seq, result.anchor) == (13, anchor)
    assert log.verify(store, {"seq": 9, "row_hash": "f" * 64}).first_bad_seq == 9


# ---------------------------------------------------------------------------------- the triggers


def test_update_and_delete_are_refused_by_the_database(store: Store) -> None:
    write_log(store, 6)
    before = event_rows(store)
    attempts = [
        update(schema.events).where(schema.events.c.seq == 3).values(actor="Mallory"),
        update(schema.events).values(payload="{}"),
        delete(schema.events).where(schema.events.c.seq == 6),
        delete(schema.events),
    ]
    if store.dialect == "postgresql":
        attempts.append(text("TRUNCATE events"))
    for stmt in attempts:
        with pytest.raises(exc.DBAPIError, match="append-only"), store.write() as conn:
            conn.execute(stmt)
    assert event_rows(store) == before
    assert log.verify(store).ok


def test_time_in_the_log_never_goes_back(store: Store) -> None:
    """A writer whose clock is behind the log's head (another machine, a simulated clock) stamps its events
    with the head's instant: an event appended after a report as of a past instant cannot land before it."""
    store.clock.fixed = datetime(2026, 3, 10, 9, tzinfo=UTC)
    log.log_event(store, log.Event(type="note", actor="Ben Okoro"))
    store.clock.fixed = datetime(2026, 3, 1, 9, tzinfo=UTC)  # behind the head
    log.log_event(store, log.Event(type="note", actor="Ben Okoro"))
    store.clock.fixed = datetime(2026, 3, 12, 9, tzinfo=UTC)
    log.log_event(store, log.Event(type="note", actor="Ben Okoro"))
    stamps = [r["occurred_at"] for r in event_rows(store)]
    assert stamps == ["2026-03-10T09:00:00.000000Z", "2026-03-10T09:00:00.000000Z", "2026-03-12T09:00:00.000000Z"]
    assert log.verify(store).ok


HEAD_EDITS = {
    # name: (the head as edited from the rows' (seq, hashes), first bad seq, what the message names)
    "hash only": (lambda rows: (CHAIN_LENGTH, "f" * 64), CHAIN_LENGTH, "chain head field row_hash differs"),
    "seq lowered": (lambda rows: (CHAIN_LENGTH - 3, rows[-1]["row_hash"]), CHAIN_LENGTH - 2, "field seq differs"),
    "seq raised": (lambda rows: (CHAIN_LENGTH + 4, rows[-1]["row_hash"]), CHAIN_LENGTH + 1, "field seq differs"),
    "moved back": (lambda rows: (10, rows[9]["row_hash"]), 11, "rows 11..30 follow the chain head"),
    "both rewritten": (lambda rows: (12, "e" * 64), 13, "fields seq and row_hash differ"),
}


@pytest.mark.parametrize("case", HEAD_EDITS)
def test_an_edited_chain_head_says_which_field_differs_and_both_values(
    chain: Store, pristine: Pristine, case: str
) -> None:
    """Only the one-row ``chain_head`` is edited; the rows hold. The reason names the field and gives the
    value the rows imply and the value the head records, never 'ends at seq N but the head records seq N'."""
    forge, bad, says = HEAD_EDITS[case]
    rows = pristine[0]
    edited = forge(rows)
    try:
        set_events(chain, rows, edited)
        result = log.verify(chain)
        assert (result.ok, result.first_bad_seq) == (False, bad), result.reason
        assert says in result.reason, result.reason
        assert f"ends at seq {CHAIN_LENGTH} but the chain head records seq {CHAIN_LENGTH}" not in result.reason
        if case == "hash only":
            assert rows[-1]["row_hash"] in result.reason and "f" * 64 in result.reason
    finally:
        restore(chain, pristine)


@pytest.mark.parametrize("damage", ["row", "head", "truncated"])
def test_verify_logged_on_a_break_raises_and_appends_nothing(chain: Store, pristine: Pristine, damage: str) -> None:
    rows = [dict(r) for r in pristine[0]]
    head = pristine[1]
    if damage == "row":
        rows[4]["payload"] += " "
    elif damage == "head":
        head = (head[0], "0" * 64)
    else:
        rows = rows[:-2]
    try:
        set_events(chain, rows, head)
        before_rows, before_head = event_rows(chain), chain_head(chain)
        with pytest.raises(IntegrityError, match="activity log fails verification at seq"):
            log.verify_logged(chain, "Chen Wei")
        assert (event_rows(chain), chain_head(chain)) == (before_rows, before_head)
    finally:
        restore(chain, pristine)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def _walk_row(origin: Any, origin_text: str | None = None, **columns: Any) -> tuple[Any, ...]:
    """One event row in :data:`log._WALK` order whose payload (canonical, hashed onto 64 zeros) holds
    ``origin``; ``origin_text`` is what the origin column says instead of its canonical text."""
    values = {
        "seq": 1, "event_id": "e-1", "occurred_at": "2026-01-01T00:00:00.000000Z", "actor": "Ann", "outcome": "success",
        "type": "t", "engagement": "E", "finding_id": None, "ticket_key": None, "state": None, "disposition": None,
        "severity": None,
    }  # fmt: skip
    payload = canonical.canonical_json({**values, "origin": origin, "data": {}})
    values.update(columns)
    row = {
        **values,
        "origin": canonical.canonical_json(origin) if origin_text is None else origin_text,
        "payload": payload,
        "prev_hash": schema.GENESIS_HASH,
        "row_hash": canonical.chain_hash(schema.GENESIS_HASH, payload),
    }
    return tuple(row[c] for c in log._WALK)


@settings(max_examples=300, deadline=None)
@given(
    origin=JSON,
    other=JSON,
    form=st.sampled_from(["canonical", "spaced", "unsorted", "other", "ascii-escaped"]),
    column=st.sampled_from([None, "actor", "seq", "severity"]),
)
def test_the_fast_check_never_passes_a_row_the_exact_check_refuses(origin, other, form, column) -> None:
    # The walk's fast path (C-level steps) must be a strict subset of the exact check: whatever it passes,
    # the exact check passes; anything it doubts goes to the exact check, which names the problem.
    text = {
        "canonical": None,
        "spaced": json.dumps(origin, sort_keys=True),
        "unsorted": json.dumps(origin, sort_keys=False, separators=(",", ":"), ensure_ascii=False),
        "other": canonical.canonical_json(other),
        "ascii-escaped": json.dumps(origin, sort_keys=True, separators=(",", ":")),
    }[form]
    edits = {} if column is None else {column: {"actor": "Mallory", "seq": True, "severity": 1}[column]}
    row = _walk_row(origin, text, **edits)
    exact = log._row_problem(dict(zip(log._WALK, row, strict=True)), 1, schema.GENESIS_HASH)
    if log._holds(row, 1, schema.GENESIS_HASH):
        assert exact is None


def test_the_fast_check_passes_an_ordinary_row_and_doubts_what_orjson_cannot_decide() -> None:
    origin = {"host": "h", "principal": {"kind": "os", "name": "ann"}, "version": "0.1"}
    assert log._holds(_walk_row(origin), 1, schema.GENESIS_HASH)
    # An integer over 64 bits (orjson refuses it) and an origin the exact path writes (non-ASCII) go to the
    # exact check, which passes them: the walk is slower there, never different.
    for doubtful in ({"n": 2**70}, {"host": "hôte"}):
        row = _walk_row(doubtful)
        assert not log._holds(row, 1, schema.GENESIS_HASH)
        assert log._row_problem(dict(zip(log._WALK, row, strict=True)), 1, schema.GENESIS_HASH) is None
    # The origin column rewritten as an equal value in other words is caught by both.
    spaced = _walk_row(origin, json.dumps(origin, sort_keys=True))
    assert not log._holds(spaced, 1, schema.GENESIS_HASH)
    assert "origin" in log._row_problem(dict(zip(log._WALK, spaced, strict=True)), 1, schema.GENESIS_HASH)
