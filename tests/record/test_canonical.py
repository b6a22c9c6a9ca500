"""Canonical payloads: the exact bytes that are hashed, the same on both backends and in any time zone."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import unicodedata
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from handoffkit.ingest.common import json_raw
from handoffkit.record import canonical, engagements, findings, log, schema
from handoffkit.record.canonical import canonical_value
from handoffkit.record.store import Clock, Store
from tests.builders import DATA, chain_head, event_rows, write_log

SCRIPT = Path(__file__).with_name("scripted_sequence.py")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def canonical_by_hand(payload: str) -> str:
    return json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ------------------------------------------------------------------------------------ the rules


def test_keys_are_sorted_at_every_depth_without_whitespace() -> None:
    text = canonical.canonical_json({"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": "x y"}, "C": None})
    assert text == '{"C":null,"a":{"c":"x y","d":[1,{"x":1,"y":2}]},"b":1}'


def test_strings_and_keys_are_nfc_and_not_ascii_escaped() -> None:
    text = canonical.canonical_json({"Cafe\u0301": "e\u0301te\u0301"})
    assert text == '{"Caf\u00e9":"\u00e9t\u00e9"}'
    assert text.encode("utf-8") == b'{"Caf\xc3\xa9":"\xc3\xa9t\xc3\xa9"}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"deep": {"x": math.nan}}])
def test_nan_and_infinities_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="NaN"):
        canonical.canonical_json({"value": bad})


def test_instants_become_utc_with_microseconds_and_z() -> None:
    kolkata = datetime(2026, 3, 2, 15, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert (
        canonical.canonical_json([kolkata, kolkata + timedelta(microseconds=7)])
        == '["2026-03-02T09:30:00.000000Z","2026-03-02T09:30:00.000007Z"]'
    )
    assert canonical.canonical_json(date(2026, 2, 28)) == '"2026-02-28"'
    with pytest.raises(ValueError, match="naive"):
        canonical.canonical_json(datetime(2026, 3, 2, 15, 0))


def test_sets_are_sorted_and_unknown_types_refused() -> None:
    assert canonical.canonical_json({"s": {"b", "a", "c"}}) == '{"s":["a","b","c"]}'
    with pytest.raises(TypeError, match="object"):
        canonical.canonical_json({"x": object()})


def by_json(value: object) -> str:
    """The canonical text as defined: ``json.dumps`` of the NFC-normalised value."""
    return json.dumps(
        canonical_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


# What event data and scanner items hold: every JSON value, plus the floats and integers where orjson
# (the fast path) and ``json`` disagree or refuse, tuples, non-string keys and odd text.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e-05, 1.5e-07, 0.0001, 1e-10, 1e16, -0.0, 2.5])
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\x00\x1f\x7f\u2028e\u0301-:"))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6) | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(VALUES)
@example({"small": 1e-05, "tiny": [-7.1850441006303285e-09]})
@example({"nan": float("nan")})
@example({"big": 2**64, "key": {1: "x"}})
def test_the_fast_path_writes_exactly_the_canonical_text(value: object) -> None:
    """orjson writes most payloads; whatever it writes must be the text ``json`` defines, and what
    ``json`` refuses (NaN, infinities) stays refused."""
    try:
        expected = by_json(value)
    except (ValueError, TypeError) as exc:
        with pytest.raises(type(exc)):
            canonical.canonical_json(value)
        return
    assert canonical.canonical_json(value) == expected


JSON_DOCS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\x00\x1f\u2028e\u0301")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_DOCS)
@example({"b": 1e-05, "c": [2.5e-07]})
@example({"a": "\u00e9", "\u00e9": 2, "e\u0301": 3})
@example({"z": 2**65})
def test_a_scanner_item_is_stored_as_jsons_own_sorted_compact_bytes(item: object) -> None:
    """Raw evidence of a JSON item: the bytes ``json.dumps`` gives (not NFC-normalised: evidence is as
    the scanner wrote it), whether orjson or ``json`` wrote them."""
    assert json_raw(item) == json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ----------------------------------------------------------------------------------- in the store


def test_every_payload_is_canonical_and_mirrors_its_row(store: Store) -> None:
    write_log(store, 12)
    rows = event_rows(store)
    assert [r["seq"] for r in rows] == list(range(1, 13))
    for row in rows:
        assert row["payload"] == canonical_by_hand(row["payload"])
        doc = json.loads(row["payload"])
        assert doc["seq"] == row["seq"]
        assert {k: doc[k] for k in schema.EVENT_COLUMNS if k != "origin"} == {
            k: row[k] for k in schema.EVENT_COLUMNS if k != "origin"
        }
        assert canonical.canonical_json(doc["origin"]) == row["origin"]
        assert TS.match(row["occurred_at"])
        assert row["row_hash"] == canonical.chain_hash(row["prev_hash"], row["payload"])


def test_a_nan_in_an_event_writes_nothing(store: Store) -> None:
    write_log(store, 3)
    head = chain_head(store)
    with pytest.raises(ValueError, match="NaN"):
        log.log_event(store, log.Event(type="note", actor="Ana Silva", data={"score": math.nan}))
    assert chain_head(store) == head
    assert len(event_rows(store)) == 3


def test_order_is_by_seq_never_by_time(store: Store) -> None:
    """The clock going backwards (a skewed host) does not break the chain."""
    base = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    for minutes in (30, 20, 10, 0):
        store.clock.fixed = base + timedelta(minutes=minutes)
        log.log_event(store, log.Event(type="note", actor="Ana Silva", data={"m": minutes}))
    rows = event_rows(store)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert [r["occurred_at"] for r in rows] == sorted((r["occurred_at"] for r in rows), reverse=True)
    assert log.verify(store).ok


# ------------------------------------------------------------------- same bytes, backends and zones


def _run(url: str, tz: str, clock_zone: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TZ": tz}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), url, clock_zone],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _without_principal(event: dict) -> dict:
    """An event with the principal taken out of its payload's origin, and the hashes (which cover it) dropped."""
    payload = json.loads(event["payload"])
    payload["origin"].pop("principal")
    if payload["type"] == "log_verified":
        payload["data"].pop("head_hash")  # the hash of the head before it, which covers a principal
    rest = {k: v for k, v in event.items() if k not in ("payload", "prev_hash", "row_hash")}
    return {**rest, "payload": canonical_by_hand(json.dumps(payload))}


@pytest.mark.postgres
def test_payloads_and_hashes_are_identical_on_both_backends_and_in_any_time_zone(
    tmp_path: Path, pg_url: str, second_pg_url: str
) -> None:
    runs = {
        ("sqlite", "UTC"): _run(f"sqlite:///{tmp_path / 'utc.db'}", "UTC", "UTC", tmp_path),
        ("sqlite", "Asia/Kolkata"): _run(f"sqlite:///{tmp_path / 'ist.db'}", "Asia/Kolkata", "Asia/Kolkata", tmp_path),
        ("postgres", "UTC"): _run(pg_url, "UTC", "Asia/Kolkata", tmp_path),
        ("postgres", "Asia/Kolkata"): _run(second_pg_url, "Asia/Kolkata", "UTC", tmp_path),
    }
    dumps = {}
    for key, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{key}: {err}"
        dumps[key] = json.loads(out)
    # the zone really was in effect in each process
    assert {k: d.pop("local_offset") for k, d in dumps.items()} == {
        ("sqlite", "UTC"): "+0000",
        ("sqlite", "Asia/Kolkata"): "+0530",
        ("postgres", "UTC"): "+0000",
        ("postgres", "Asia/Kolkata"): "+0530",
    }

    # Each event names the principal the system knows, which is the backend's own: PostgreSQL's
    # session_user, the OS user on SQLite. Within a backend the bytes and hashes are identical in any zone;
    # across backends, everything but that principal (and so the hashes that cover it).
    principals = {
        k: {json.loads(e["payload"])["origin"]["principal"]["source"] for e in d["events"]} for k, d in dumps.items()
    }
    assert principals == {
        ("sqlite", "UTC"): {"os user"},
        ("sqlite", "Asia/Kolkata"): {"os user"},
        ("postgres", "UTC"): {"postgresql session_user"},
        ("postgres", "Asia/Kolkata"): {"postgresql session_user"},
    }
    for backend in ("sqlite", "postgres"):
        reference = dumps[(backend, "UTC")]
        dump = dumps[(backend, "Asia/Kolkata")]
        for ours, theirs in zip(reference["events"], dump["events"], strict=True):
            assert ours == theirs, f"{backend}: seq {ours['seq']} differs"
        assert dump["head"] == reference["head"], backend
    reference = dumps[("sqlite", "UTC")]
    for key, dump in dumps.items():
        for ours, theirs in zip(reference["events"], dump["events"], strict=True):
            assert _without_principal(ours) == _without_principal(theirs), f"{key}: seq {ours['seq']} differs"
        assert dump["findings"] == reference["findings"], key

    logged = reference["events"]
    types = {(json.loads(e["payload"])["type"], json.loads(e["payload"])["outcome"]) for e in logged}
    assert {
        ("finding_created", "success"),
        ("severity_calibrated", "success"),
        ("finding_routed", "success"),
        ("exception_granted", "denied"),
        ("finding_verified_closed", "success"),
        ("note", "success"),
        ("log_verified", "success"),
    } <= types
    for e in logged:
        assert e["payload"] == canonical_by_hand(e["payload"])
        assert unicodedata.is_normalized("NFC", e["payload"])
        assert "e\u0301" not in e["payload"]
        assert TS.match(e["occurred_at"]) and json.loads(e["payload"])["seq"] == e["seq"]
    note = json.loads(next(e["payload"] for e in logged if '"type":"note"' in e["payload"]))
    assert note["data"]["decomposed"] == "Caf\u00e9"
    assert note["data"]["instant"] == "2026-03-02T04:59:59.000005Z"
    assert note["occurred_at"] == "2026-03-02T21:00:00.123456Z"
    # the exception expiring "tomorrow" in UTC was granted although it is already that day in Kolkata
    assert any(f["finding_id"] == "HK-3" and f["state"] == "excepted" for f in reference["findings"])


# ------------------------------------------------------------------ payloads written from their parts

COLUMN_VALUES = (
    st.sampled_from(["Ana Silva", "success", "finding_created", "ACME", "HK-12", "new", "high", "e-1:0.00001"])
    | st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\x00\x1f\x7fe\u0301-:0.,["))
)
ORIGINS = st.sampled_from(
    [
        {"host": "vm", "version": "0.1.0"},
        {"host": "vm", "version": "0.1.0", "file": "scans/Caf\u00e9.sarif", "sha256": "ab" * 32},
        {"host": "vm", "version": "0.1.0", "file": "scans/Cafe\u0301.sarif", "sha256": "ab" * 32},
        {"host": "vm", "version": "0.1.0", "principal": {"name": "root", "source": "os user"}, "query": 1e-05},
    ]
)
INSTANTS = st.sampled_from(
    ["2026-03-02T09:30:12.345678Z", "2026-03-02T09:30:00.000000Z", "2026-03-02T09:30:10.000001Z"]
)


@settings(max_examples=300)
@given(
    data=st.dictionaries(st.text(max_size=6) | st.integers(0, 3), VALUES, max_size=4),
    columns=st.lists(COLUMN_VALUES, min_size=9, max_size=9),
    seq=st.integers(min_value=1, max_value=2**64),
    when=INSTANTS,
    made=ORIGINS,
)
@example(
    data={"scan_id": 1, "set": {"title": "SQL injection", "score": 7.5, "kev": False, "cves": "", "x": None}},
    columns=["Ana Silva", "success", "finding_created", "ACME", "HK-1", None, "new", None, "high"],
    seq=4,
    when="2026-03-02T09:30:12.345678Z",
    made={"host": "vm", "version": "0.1.0", "principal": {"name": "root", "source": "os user"}},
)
@example(
    data={"scan_id": 1, "set": {"title": "Caf\u00e9", "score": 7.5, "kev": False, "due": date(2026, 3, 1)}},
    columns=["Ana Silva", "success", "finding_created", "ACME", "HK-1", None, "new", None, "high"],
    seq=4,
    when="2026-03-02T09:30:12.345678Z",
    made={"host": "vm", "version": "0.1.0", "principal": {"name": "root", "source": "os user"}},
)
@example(
    data={"score": math.nan},
    columns=["Ana Silva", "success", "note", "ACME", None, None, None, None, None],
    seq=2,
    when="2026-03-02T09:30:12.345678Z",
    made={"host": "vm", "version": "0.1.0"},
)
def test_a_payload_written_from_its_parts_is_the_canonical_text_of_the_whole(
    data: dict, columns: list, seq: int, when: str, made: dict
) -> None:
    """``log.append`` writes each payload from its parts; the text must be, byte for byte, what
    ``canonical_json`` of the whole payload dict gives (what earlier versions stored and ``log verify``
    recomputes), and what that refuses stays refused."""
    actor, outcome, type_, engagement, finding_id, ticket_key, state, disposition, severity = columns
    row = (seq, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", when, actor, outcome, type_, engagement, finding_id,
           ticket_key, state, disposition, severity)  # fmt: skip
    whole = {**dict(zip(log._COLUMNS, row, strict=True)), "origin": made, "data": data}
    org = (canonical.canonical_json(made), made, canonical.part_text(made))
    try:
        expected = canonical.canonical_json(whole)
    except (ValueError, TypeError) as exc:
        with pytest.raises(type(exc)):
            log._payload(row, org, data, log._Texts())
        return
    assert log._payload(row, org, data, log._Texts()) == expected


def test_the_payload_keys_are_the_event_columns_and_data_in_sorted_order() -> None:
    assert tuple(sorted({*schema.EVENT_COLUMNS, "data"})) == log._KEYS
    assert tuple(c for c in schema.EVENT_COLUMNS if c != "origin") == log._COLUMNS


def test_ids_drawn_in_a_batch_are_the_ids_drawn_one_by_one() -> None:
    at = datetime(2026, 3, 2, 9, 30, 12, 345678, tzinfo=UTC)
    one_by_one = Clock(seed=5)
    assert Clock(seed=5).new_ids(20, at) == [one_by_one.new_id(at) for _ in range(20)]


def test_created_findings_log_the_canonical_text_of_their_rows(db_url: str) -> None:
    """New findings with Nones, non-ASCII and decomposed text, floats (a small one too), booleans and a
    date: each ``finding_created`` payload is ``canonical_json`` of its event as a dict (the generic path),
    the chain verifies, and the rebuilt rows equal the stored ones."""
    store = Store(db_url, clock=Clock(fixed=datetime(2026, 3, 2, 9, 30, 12, 345678, tzinfo=UTC), seed=3))
    engagements.init(store, "ACME", DATA / "policy.yaml", actor="Ana Silva")
    now = schema.format_ts(store.now())  # as the ingest binds it: text
    rows = [
        _new_row(1, "SQL injection", 9.8, False, None),
        _new_row(2, "Caf\u00e9 stored XSS", 6.1, True, date(2026, 4, 1)),
        _new_row(3, "Cafe\u0301 \u2028 \U0001f600 text", 1e-05, False, None, description="d\u00e9tail"),
        _new_row(4, "No score", None, False, None, description=None, rule_ref=None),
    ]
    extras = [{"scan_id": None, "evidence_sha256": "ab" * 32, "n": i, "ok": i % 2 == 0} for i in range(len(rows))]
    expected_sets = [{k: v for k, v in r.items() if v is not None and k not in ("finding_id",)} for r in rows]
    source = log.Source("scans/r\u00e9sum\u00e9.sarif", "cd" * 32)
    with store.write() as conn:
        findings.create_many(
            conn, store, [{**r, "first_seen": now, "last_seen": now} for r in rows], actor="Ana Silva",
            source=source, data=extras,
        )  # fmt: skip
    with store.read() as conn:
        origin = log.origin(source, store.principal(conn))
    created = [r for r in event_rows(store) if r["type"] == "finding_created"]
    assert len(created) == len(rows)
    for row, extra, logged in zip(created, extras, expected_sets, strict=True):
        columns = {k: row[k] for k in log._COLUMNS}
        logged = {**logged, "first_seen": now, "last_seen": now}
        whole = {**columns, "origin": origin, "data": {**extra, "set": logged}}
        assert row["payload"] == canonical.canonical_json(whole)
    assert log.verify(store).ok
    rebuilt = findings.rebuild(store, "ACME")
    with store.read() as conn:
        stored = {r.finding_id: findings.canonical_row(r._mapping) for r in conn.execute(select(schema.findings))}
    assert rebuilt == stored
    store.dispose()


def _new_row(number: int, title: str, score: float | None, kev: bool, kev_due: date | None, **changed) -> dict:
    row = {
        "finding_id": f"HK-{number}", "number": number, "engagement": "ACME", "fingerprint": f"fp{number}",
        "kind": "code", "title": title, "asset_ref": "https://shop.test", "tool": "semgrep", "tool_version": "1.0",
        "rule_ref": "r1", "location": "a.py:1", "cves": "", "cwes": "CWE-79", "raw_severity": "error",
        "scanner_severity": "high", "cvss_vector": None, "cvss_score": score, "description": "detail",
        "references": "", "suppressed": number % 2 == 0, "external_id": None, "severity": "high",
        "calibrated_vector": None, "calibrated_score": None, "kev": kev, "kev_due": kev_due, "triage": "pending",
        "state": "new", "disposition": None, "owner_role": None, "owner_team": None, "owner_name": None,
        "policy_version": None, "sla_due": None, "validated_at": None, "routed_at": None, "closed_at": None,
        "first_seen": None, "last_seen": None, "last_scan_id": None,
    }  # fmt: skip
    return {**row, **changed}
