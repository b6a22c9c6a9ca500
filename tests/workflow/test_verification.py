"""Closure verification: each evidence kind accepted and refused as specified; a refusal changes nothing
and logs one denied event; rediscovery reopens a verified finding and keeps its ticket link (issue 5,
"Closure verification")."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handoffkit.cli import cli
from handoffkit.errors import RefusedError
from handoffkit.record import engagements, schema
from handoffkit.workflow import triage, verification
from handoffkit.workflow.evidence_files import EvidenceFiles
from tests.builders import ACTOR, DATA, DONE, QUEUE, SHOP, Record, events, finding, route, snapshot, ticket, validate

OWNER, APPROVER = "Priya Raman", "Dana Whitfield"


def at(store, day: int, hour: int = 9) -> None:
    store.clock.fixed = datetime(2026, 3, day, hour, tzinfo=UTC)


def rescan(rec, day: int, *titles: str) -> None:
    """A ZAP rescan of shop.test reporting only ``titles`` (the others are absent in it)."""
    at(rec.store, day)
    rec.web(SHOP, *((t, 3) for t in titles), generated=f"Mon, {day} Mar 2026 08:00:00")


def evidence_rows(store, fid: str) -> list[dict]:
    e = schema.evidence.c
    with store.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(select(schema.evidence).where(e.finding_id == fid).order_by(e.evidence_id))
        ]


def refused(store, fid: str, match: str, **kwargs) -> dict:
    """Verify, expect a refusal: nothing changed but one denied event, which is returned."""
    before = snapshot(store)
    with pytest.raises(RefusedError, match=match):
        verification.verify(store, fid, **kwargs)
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
        k: v for k, v in before.items() if k not in ("events", "chain_head")
    }
    assert after["events"] == before["events"] + 1 and after["chain_head"][0] == before["chain_head"][0] + 1
    last = events(store)[-1]
    assert (last["type"], last["outcome"], last["finding_id"], last["actor"]) == (
        "finding_verified_closed",
        "denied",
        fid,
        " ".join(kwargs["actor"].split()),
    )
    assert last["data"]["kind"] == kwargs["kind"] and last["data"]["reason"]
    return last


@pytest.fixture
def closed(store, rec, exports) -> str:
    """A high finding on shop.test routed to a ticket (day 2), the ticket raised (day 3) and closed (day 4)."""
    fid, _ = rec.web(SHOP, ("Verify SQLi", 3), ("Verify neighbour", 3))
    validate(store, [fid])
    route(store)
    at(store, 3)
    exports.ingest("jira", ticket("jira", 1, [fid]))
    at(store, 4)
    exports.ingest("jira", ticket("jira", 1, [fid]) | DONE)
    assert finding(store, fid)["state"] == "awaiting_verification"
    return fid


# ------------------------------------------------------------------------------------------- rescan


def test_rescan_needs_an_absent_in_rescan_record_after_the_ticket_closed(store, rec, exports):
    fid, _ = rec.web(SHOP, ("Verify SQLi", 3), ("Verify neighbour", 3))
    validate(store, [fid])
    route(store)
    exports.ingest("jira", ticket("jira", 1, [fid]))
    rescan(rec, 3, "Verify neighbour")  # absent on day 3 …
    at(store, 4)
    exports.ingest("jira", ticket("jira", 1, [fid]) | DONE)  # … but the ticket only closed on day 4
    assert [e["kind"] for e in evidence_rows(store, fid)] == ["scanner_output", "absent_in_rescan"]

    denied = refused(store, fid, "no rescan after", kind="rescan", evidence=None, actor=ACTOR)
    assert "2026-03-04" in denied["data"]["reason"]

    rescan(rec, 5, "Verify neighbour")
    out = verification.verify(store, fid, kind="rescan", evidence="monthly rescan", actor=ACTOR)

    assert out["state"] == "verified_closed" and finding(store, fid)["state"] == "verified_closed"
    proof = evidence_rows(store, fid)[-1]
    assert (proof["kind"], proof["sha256"]) == ("rescan", hashlib.sha256(proof["content"]).hexdigest())
    assert proof["scan_id"] is not None and proof["sha256"] == out["evidence_sha256"]
    [ok] = events(store, "finding_verified_closed", outcome="success")
    assert ok["data"]["kind"] == "rescan" and ok["data"]["scan_id"] == proof["scan_id"]


def test_rescan_without_a_closure_counts_from_routing(store, rec):
    fid, never_routed, _ = rec.web(SHOP, ("Routed only", 3), ("Never routed", 3), ("Verify neighbour", 3))
    validate(store, [fid])
    route(store)
    refused(store, fid, "no rescan after", kind="rescan", evidence=None, actor=ACTOR)
    rescan(rec, 6, "Verify neighbour")
    refused(store, never_routed, "never routed", kind="rescan", evidence=None, actor=ACTOR)
    assert verification.verify(store, fid, kind="rescan", evidence=None, actor=ACTOR)["state"] == "verified_closed"


# ------------------------------------------------------------------------------------------- retest


REPORT_SHA = hashlib.sha256(b"retest report").hexdigest()


@pytest.mark.parametrize(
    "reference, location",
    [
        (f"SHA256:{REPORT_SHA.upper()}", f"sha256:{REPORT_SHA}"),
        ("run:zap-2026-03-06#17", "run:zap-2026-03-06#17"),
    ],
    ids=["sha256", "run"],
)
def test_retest_text_referencing_an_artefact_is_stored_with_its_sha256(store, closed, reference, location):
    text = f"{reference} Retested HK login on 2026-03-06: payload no longer reflected."
    out = verification.verify(store, closed, kind="retest", evidence=f"  {text}\n", actor=ACTOR)
    proof = evidence_rows(store, closed)[-1]
    assert (proof["kind"], proof["content"], proof["location"]) == ("retest", text.encode(), location)
    assert proof["sha256"] == out["evidence_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert finding(store, closed)["closed_at"] is not None
    [ok] = events(store, "finding_verified_closed", outcome="success")
    assert ok["data"]["artefact"] == location


@pytest.mark.parametrize(
    "evidence, match",
    [
        ("Retested on 2026-03-06: fixed, trust me.", "does not reference an artefact"),
        ("fixed sha256:" + REPORT_SHA, "does not reference an artefact"),  # the reference must lead
        ("sha256:" + REPORT_SHA[:-1] + " short by one", "64 hex digits, this one 63"),
        ("sha256:" + REPORT_SHA + "0", "64 hex digits, this one 65"),
        ("sha256:" + "g" * 64, "a sha256 is 64 hex digits"),
        ("sha256:", "64 hex digits, this one 0"),
        ("run: zap-17", "does not reference an artefact"),
        ("run:", "does not reference an artefact"),
        ("/no/such/report.pdf", "does not reference an artefact"),
    ],
    ids=[
        "free-text",
        "reference-not-first",
        "sha-63",
        "sha-65",
        "sha-not-hex",
        "sha-empty",
        "run-space",
        "run-empty",
        "missing-file",
    ],
)
def test_retest_free_text_or_a_malformed_reference_is_refused(store, closed, evidence, match):
    denied = refused(store, closed, match, kind="retest", evidence=evidence, actor=ACTOR)
    assert "only as an attestation" in denied["data"]["reason"] or "hex digits" in denied["data"]["reason"]
    assert finding(store, closed)["state"] == "awaiting_verification"


def test_free_text_still_closes_as_an_attestation_with_a_different_approver(store, closed):
    text = "Retested on 2026-03-06: fixed."
    refused(store, closed, "does not reference an artefact", kind="retest", evidence=text, actor=OWNER)
    out = verification.verify(store, closed, kind="attestation", evidence=text, actor=OWNER, approver=APPROVER)
    assert out["state"] == "verified_closed"


def test_retest_file_is_stored_with_its_sha256_and_name(store, closed, tmp_path):
    (tmp_path / "q3").mkdir()
    report = tmp_path / "q3" / "retest-report.pdf"
    report.write_bytes(b"%PDF-1.7 retest evidence \x00\x01\x02")
    files = EvidenceFiles(tmp_path)
    out = verification.verify(store, closed, kind="retest", evidence=str(report), actor=ACTOR, evidence_files=files)
    proof = evidence_rows(store, closed)[-1]
    assert (proof["content"], proof["location"], proof["media_type"]) == (
        report.read_bytes(),
        "q3/retest-report.pdf",
        "application/pdf",
    )
    assert proof["sha256"] == out["evidence_sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()


def test_retest_needs_evidence(store, closed):
    for evidence in (None, "", "   "):
        refused(store, closed, "a retest needs --evidence", kind="retest", evidence=evidence, actor=ACTOR)
    assert finding(store, closed)["state"] == "awaiting_verification"


# ------------------------------------------------------------------------------------------- commit


@pytest.mark.parametrize(
    "reference",
    [
        "github.com/example/shop@3f2a9c1d4e5f60718293a4b5c6d7e8f901234567",
        "https://gitlab.example.com/shop/-/merge_requests/42",
    ],
)
def test_commit_reference_accepted(store, closed, reference):
    out = verification.verify(store, closed, kind="commit", evidence=reference, actor=ACTOR)
    proof = evidence_rows(store, closed)[-1]
    assert (proof["kind"], proof["location"], proof["content"]) == ("commit", reference, reference.encode())
    assert out["state"] == "verified_closed"


def test_commit_short_forms_accepted(store, rec):
    ids = rec.web(SHOP, ("Commit A", 3), ("Commit B", 3))
    validate(store, ids)
    route(store)
    for fid, ref in zip(ids, ("example/shop@3f2a9c1", "https://github.com/example/shop/commit/3f2a9c1"), strict=True):
        assert verification.verify(store, fid, kind="commit", evidence=ref, actor=ACTOR)["state"] == "verified_closed"


GARBAGE = [
    None,
    "fixed in prod",
    "example/shop@xyz1234",
    "example/shop@3f2a9c",
    "3f2a9c1d",
    "ftp://example/shop/3f2a9c1",
    "example shop@3f2a9c1",
]


def test_commit_garbage_refused(store, closed):
    for reference in GARBAGE:
        refused(store, closed, "a commit needs a reference", kind="commit", evidence=reference, actor=ACTOR)
    assert finding(store, closed)["state"] == "awaiting_verification"


# -------------------------------------------------------------------------------------- attestation


@pytest.mark.parametrize("actor", [OWNER, "  priya   RAMAN "])
def test_attestation_by_the_named_owner_with_a_different_approver(store, closed, actor):
    out = verification.verify(
        store, closed, kind="attestation", evidence="Patched; CHG-4711", actor=actor, approver=APPROVER
    )
    assert out["state"] == "verified_closed"
    [ok] = events(store, "finding_verified_closed", outcome="success")
    assert (ok["data"]["approver"], ok["data"]["owner"], ok["actor"]) == (APPROVER, OWNER, " ".join(actor.split()))
    assert evidence_rows(store, closed)[-1]["content"] == b"Patched; CHG-4711"


ATTESTATION_REFUSALS = [  # actor, approver, evidence, why
    (ACTOR, APPROVER, "patched", "must come from the named owner"),
    (OWNER, "PRIYA RAMAN", "patched", "different approver is required"),
    (OWNER, " priya\traman ", "patched", "different approver is required"),
    (OWNER, "Raman, Priya", "patched", "different approver is required"),
    (OWNER, "priya.raman@acme.example", "patched", "different approver is required"),
    (OWNER, "Pri\u200bya Ra\u00adman", "patched", "different approver is required"),
    (OWNER, "Pri\u0301ya Raman", "patched", "different approver is required"),
    (OWNER, "Priya Ram\u0430n", "patched", "mixes scripts within the word"),
    ("Raman, Priya", "priya raman", "patched", "different approver is required"),
    (OWNER, None, "patched", "needs --approver"),
    (OWNER, "  ", "patched", "needs --approver"),
    (OWNER, APPROVER, "", "needs --evidence"),
]


def test_attestation_refused(store, closed):
    for actor, approver, evidence, match in ATTESTATION_REFUSALS:
        refused(store, closed, match, kind="attestation", evidence=evidence, actor=actor, approver=approver)
    assert finding(store, closed)["state"] == "awaiting_verification"


def test_attestation_needs_a_named_owner(store, rec):
    [fid] = rec.host(QUEUE, {"name": "Queue-owned", "severity": 4})
    validate(store, [fid])
    route(store)
    assert finding(store, fid)["state"] == "paused_no_owner"
    refused(store, fid, "no named owner", kind="attestation", evidence="done", actor=OWNER, approver=APPROVER)


# ------------------------------------------------------------------------------- policy, states, CLI


@pytest.mark.parametrize("kind", ["commit", "attestation"])
def test_kinds_the_policy_does_not_accept_are_refused(store, tmp_path, kind):
    text = (
        (DATA / "policy.yaml")
        .read_text()
        .replace("accepted: [rescan, retest, commit, attestation]", "accepted: [rescan, retest]")
    )
    assert "accepted: [rescan, retest]" in text
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    engagements.init(store, "STRICT", policy, owners_path=DATA / "owners.csv", actor=ACTOR)
    [fid] = Record(store, "STRICT", tmp_path).web(SHOP, ("Strict SQLi", 3))
    validate(store, [fid])
    route(store, "STRICT")
    refused(
        store,
        fid,
        f"does not accept '{kind}'",
        kind=kind,
        evidence="example/shop@3f2a9c1",
        actor=OWNER,
        approver=APPROVER,
    )
    assert (
        verification.verify(store, fid, kind="retest", evidence="run:retest-1 ok", actor=ACTOR)["state"]
        == "verified_closed"
    )


def test_a_verified_finding_is_not_verified_twice_and_unknown_kinds_are_refused(store, closed):
    refused(store, closed, "--kind 'screenshot'", kind="screenshot", evidence="x", actor=ACTOR)
    verification.verify(store, closed, kind="retest", evidence="run:retest-2 fixed", actor=ACTOR)
    refused(store, closed, "only an open finding", kind="retest", evidence="run:retest-3 again", actor=ACTOR)


def test_rediscovery_reopens_a_verified_finding_and_keeps_its_ticket_link(store, rec, closed, exports):
    rescan(rec, 5, "Verify neighbour")
    verification.verify(store, closed, kind="rescan", evidence=None, actor=ACTOR)

    rescan(rec, 9, "Verify SQLi", "Verify neighbour")  # it is back

    row = finding(store, closed)
    assert (row["state"], row["closed_at"]) == ("reopened", None)
    [reopened] = events(store, "finding_reopened")
    assert reopened["finding_id"] == closed and reopened["data"]["ticket_links_kept"] is True
    lk = schema.links.c
    with store.read() as conn:
        assert conn.execute(select(lk.ticket_key, lk.active).where(lk.finding_id == closed)).all() == [("SEC-1", True)]
    # a reopened finding waits for triage, then routes again under its old ticket
    assert route(store).changes == [] and finding(store, closed)["state"] == "reopened"
    triage.triage(store, [closed], "validated", reason="regression confirmed", actor=ACTOR)
    route(store)
    assert finding(store, closed)["state"] == "routed"


def test_verify_cli(store, closed, tmp_path):
    evidence = tmp_path / "retest.txt"
    evidence.write_text("not reproducible")
    runner = CliRunner()
    bad = runner.invoke(
        cli, ["--db", store.url, "verify", closed, "--kind", "commit", "--evidence", "it's fixed", "--actor", ACTOR]
    )
    assert bad.exit_code == 5 and "a commit needs a reference" in bad.output
    ok = runner.invoke(
        cli,
        [
            "--db",
            store.url,
            "--format",
            "json",
            "verify",
            closed,
            "--kind",
            "retest",
            "--evidence",
            str(evidence),
            "--evidence-dir",
            str(tmp_path),
            "--actor",
            ACTOR,
        ],
    )
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert (doc["state"], doc["kind"], doc["evidence_sha256"]) == (
        "verified_closed",
        "retest",
        hashlib.sha256(b"not reproducible").hexdigest(),
    )
