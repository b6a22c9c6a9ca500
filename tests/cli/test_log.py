"""``handoffkit log verify [--anchor FILE]`` and ``handoffkit calibrate --expect-version``."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from handoffkit.record import schema
from handoffkit.record.store import Store
from tests.builders import ACTOR, add_findings, drop_append_only


def last_events(url: str, n: int = 1) -> list[dict]:
    store = Store(url)
    try:
        with store.read() as conn:
            rows = conn.execute(select(schema.events).order_by(schema.events.c.seq.desc()).limit(n)).all()
    finally:
        store.dispose()
    return [dict(r._mapping) for r in reversed(rows)]


def head_of(url: str) -> dict:
    store = Store(url)
    try:
        with store.read() as conn:
            row = conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.row_hash)).one()
    finally:
        store.dispose()
    return {"seq": row.seq, "row_hash": row.row_hash}


def test_verify_passes_and_is_itself_logged(acme: str, run) -> None:
    head = head_of(acme)
    result = run("--db", acme, "log", "verify", "--actor", "Chen Wei")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {head['seq']} events verified, head seq {head['seq']} {head['row_hash']}\n"
    [logged] = last_events(acme)
    assert (logged["seq"], logged["type"], logged["outcome"], logged["actor"]) == (
        head["seq"] + 1,
        "log_verified",
        "success",
        "Chen Wei",
    )

    as_json = run("--db", acme, "log", "verify", "--actor", "Chen Wei", "--format", "json")
    doc = json.loads(as_json.stdout)
    assert (doc["ok"], doc["checked"], doc["first_bad_seq"]) == (True, head["seq"] + 1, None)


def test_a_tampered_row_fails_naming_its_seq_and_nothing_is_appended(acme: str, run) -> None:
    store = Store(acme)
    drop_append_only(store)
    with store.engine.begin() as conn:
        conn.execute(
            schema.events.update().where(schema.events.c.seq == 2).values(payload=schema.events.c.payload + " ")
        )
    store.dispose()
    before = (last_events(acme, 1000), head_of(acme))
    for _ in range(2):  # a second run finds the same break: the first appended nothing after it
        result = run("--db", acme, "log", "verify", "--actor", "Chen Wei")
        assert (result.exit_code, result.stdout) == (7, "")
        assert result.stderr.startswith("handoffkit: error: activity log fails verification at seq 2: row_hash")
        assert result.stderr.count("\n") == 1
        assert (last_events(acme, 1000), head_of(acme)) == before


def test_an_edited_chain_head_is_named_field_by_field_and_nothing_is_appended(acme: str, run) -> None:
    head = head_of(acme)
    store = Store(acme)
    with store.engine.begin() as conn:
        conn.execute(schema.chain_head.update().values(row_hash="b" * 64))
    store.dispose()
    result = run("--db", acme, "log", "verify", "--actor", "Chen Wei")
    assert (result.exit_code, result.stdout) == (7, "")
    assert result.stderr == (
        f"handoffkit: error: activity log fails verification at seq {head['seq']}: chain head field row_hash "
        f"differs: the log's last row (seq {head['seq']}) has row_hash {head['row_hash']}, the chain head records "
        f"{'b' * 64} (the chain head was edited)\n"
    )
    assert head_of(acme) == {"seq": head["seq"], "row_hash": "b" * 64}


def test_an_anchor_from_an_earlier_head_matches_after_appends(acme: str, run, tmp_path: Path) -> None:
    anchor = tmp_path / "manifest.json"
    anchor.write_text(json.dumps({"artefacts": [], "chain_head": head_of(acme)}), encoding="utf-8")
    run("--db", acme, "log", "verify", "--actor", "Chen Wei")  # appends an event after the anchor
    result = run("--db", acme, "log", "verify", "--anchor", str(anchor), "--actor", "Chen Wei")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith(f"anchor seq {head_of(acme)['seq'] - 2} matches")
    [logged] = last_events(acme)
    assert json.loads(logged["origin"])["file"] == str(anchor)


def test_an_anchor_that_the_log_does_not_contain_fails(acme: str, run, tmp_path: Path) -> None:
    head = head_of(acme)
    forged = tmp_path / "anchor.json"
    forged.write_text(json.dumps({"seq": head["seq"], "row_hash": "0" * 64}), encoding="utf-8")
    result = run("--db", acme, "log", "verify", "--anchor", str(forged), "--actor", "Chen Wei")
    assert result.exit_code == 7
    assert f"at seq {head['seq']}: " in result.stderr and "rewritten" in result.stderr

    ahead = tmp_path / "ahead.json"
    ahead.write_text(json.dumps({"seq": head["seq"] + 50, "row_hash": "a" * 64}), encoding="utf-8")
    result = run("--db", acme, "log", "verify", "--anchor", str(ahead), "--actor", "Chen Wei")
    assert result.exit_code == 7 and "truncated" in result.stderr


def test_a_missing_anchor_file_is_a_clear_usage_error(acme: str, run, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    result = run("--db", acme, "log", "verify", "--anchor", str(missing), "--actor", "Chen Wei")
    assert (result.exit_code, result.stdout) == (2, "")
    assert f"Invalid value for '--anchor': File '{missing}' does not exist." in result.stderr


def test_a_malformed_anchor_file_is_one_line_naming_it(acme: str, run, tmp_path: Path) -> None:
    cases = {
        "broken.json": ('{"seq": 3,', "invalid JSON"),
        "shape.json": ('{"seq": "3", "row_hash": "abc"}', 'expected an anchor {"seq": N, "row_hash": "<64 hex>"}'),
        "list.json": ("[1, 2]", "expected an anchor"),
    }
    for name, (text, says) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        result = run("--db", acme, "log", "verify", "--anchor", str(path), "--actor", "Chen Wei")
        assert (result.exit_code, result.stdout) == (3, ""), name
        assert result.stderr.startswith(f"handoffkit: error: {path}:"), result.stderr
        assert says in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_verify_needs_an_actor(acme: str, run) -> None:
    before = head_of(acme)
    result = run("--db", acme, "log", "verify")
    assert result.exit_code == 1 and "an actor is required" in result.stderr
    assert head_of(acme) == before


def test_calibrate_with_a_stale_version_fails_clearly(acme: str, run) -> None:
    store = Store(acme)
    [fid] = add_findings(store, "ACME")
    store.dispose()
    first = run(
        "--db",
        acme,
        "calibrate",
        fid,
        "--severity",
        "medium",
        "--reason",
        "looked again",
        "--expect-version",
        "1",
        "--actor",
        ACTOR,
        "--format",
        "json",
    )
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["row_version"] == 2
    stale = run(
        "--db",
        acme,
        "calibrate",
        fid,
        "--severity",
        "info",
        "--reason",
        "old notebook",
        "--expect-version",
        "1",
        "--actor",
        "Ben Okoro",
    )
    assert (stale.exit_code, stale.stdout) == (6, "")
    assert stale.stderr == (
        f"handoffkit: error: finding {fid} is at version 2, not 1: someone else changed it "
        "since you read it; reload and retry\n"
    )
    [failure] = last_events(acme)
    assert (failure["type"], failure["outcome"], failure["actor"]) == ("severity_calibrated", "failure", "Ben Okoro")


def test_public_key_needs_an_anchor_and_checks_its_signature_first(acme: str, run, tmp_path: Path) -> None:
    made = run("keys", "generate", "--private-key", str(tmp_path / "k"), "--public-key", str(tmp_path / "k.pub"))
    assert made.exit_code == 0, made.output
    alone = run("--db", acme, "log", "verify", "--public-key", str(tmp_path / "k.pub"), "--actor", "Chen Wei")
    assert (alone.exit_code, alone.stdout) == (2, "")
    assert "--public-key checks a signed anchor: give --anchor manifest.json too" in alone.stderr
    anchor = tmp_path / "manifest.json"
    anchor.write_text(json.dumps({"chain_head": head_of(acme)}), encoding="utf-8")
    before = head_of(acme)
    unsigned = run(
        "--db", acme, "log", "verify", "--anchor", str(anchor), "--public-key", str(tmp_path / "k.pub"), "--actor", "C"
    )
    assert (unsigned.exit_code, unsigned.stdout) == (7, "")
    assert unsigned.stderr == f"handoffkit: error: {anchor}.sig: signature file not found; {anchor} is unsigned\n"
    assert head_of(acme) == before
    again = run("keys", "generate", "--private-key", str(tmp_path / "k"))
    assert (again.exit_code, again.stdout) == (2, "")
    assert "already exists; refusing to overwrite a key" in again.stderr


def test_replay_names_a_finding_edited_without_an_event_and_appends_nothing(acme: str, run) -> None:
    store = Store(acme)
    [fid] = add_findings(store, "ACME")
    store.dispose()
    passed = run("--db", acme, "log", "verify", "--replay", "--actor", "Chen Wei")
    assert passed.exit_code == 0, passed.output
    assert passed.stdout.rstrip().endswith("; the tables equal the log replayed (1 findings, 0 links, 0 tickets)")
    store = Store(acme)
    with store.engine.begin() as conn:
        conn.execute(
            schema.findings.update().where(schema.findings.c.finding_id == fid).values(state="verified_closed")
        )
    store.dispose()
    before = head_of(acme)
    plain = run("--db", acme, "log", "verify", "--actor", "Chen Wei")
    assert plain.exit_code == 0  # the chain holds: only the replay sees the edit
    after_plain = head_of(acme)
    assert after_plain["seq"] == before["seq"] + 1
    result = run("--db", acme, "log", "verify", "--replay", "--actor", "Chen Wei")
    assert (result.exit_code, result.stdout) == (7, "")
    assert result.stderr == (
        "handoffkit: error: the tables differ from the activity log: 1 difference(s): findings "
        f"{fid} state: the log gives 'validated', the table holds 'verified_closed'\n"
    )
    assert head_of(acme) == after_plain
