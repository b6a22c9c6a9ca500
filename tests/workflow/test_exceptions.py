"""The exception register: a different approver, expiry, revocation, and never a ticket payload for an
excepted finding (issue 4, "Exception register")."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.errors import RefusedError
from handoffkit.tickets import payload
from handoffkit.workflow import exceptions
from tests.builders import ACTOR, DATA, SHOP, add_findings, events, finding, route, snapshot, validate

APPROVER = "Dana Whitfield"


def _routed_ticket(store, rec, title="Excepted SQLi") -> str:
    [fid] = rec.web(SHOP, (title, 3))
    validate(store, [fid])
    route(store)
    assert (finding(store, fid)["state"], finding(store, fid)["disposition"]) == ("routed", "ticket")
    return fid


SAME_PERSON = [("ana silva", " Ana  Silva "), ("Ana Silva", "ANA SILVA"), (" Ana\tSilva", "ana silva")]


def test_a_self_approved_exception_is_refused_with_a_denied_event(store, rec):
    fid = _routed_ticket(store, rec)
    for requester, approver in SAME_PERSON:
        before = snapshot(store)

        with pytest.raises(RefusedError, match="same person"):
            exceptions.grant(store, fid, approver=approver, reason="accept", expires=date(2026, 6, 1), actor=requester)

        after = snapshot(store)
        assert after["exceptions"] == before["exceptions"]
        assert after["findings_versions"] == before["findings_versions"]
        assert after["events"] == before["events"] + 1
        denied = events(store, "exception_granted", outcome="denied")[-1]
        assert (denied["finding_id"], denied["data"]["approver"], denied["actor"]) == (
            fid,
            approver,
            " ".join(requester.split()),
        )
        assert "same person" in denied["data"]["reason"]
    assert finding(store, fid)["state"] == "routed"
    assert len(events(store, "exception_granted", outcome="denied")) == len(SAME_PERSON)
    assert events(store, "exception_granted", outcome="success") == []


def test_grant_holds_the_finding_out_of_every_queue(store, rec):
    fid = _routed_ticket(store, rec)
    out = exceptions.grant(
        store, fid, approver=APPROVER, reason=" legacy integration ", expires=date(2026, 6, 1), actor=ACTOR
    )
    assert out["status"] == "active" and out["approver"] == APPROVER
    row = finding(store, fid)
    assert (row["state"], row["disposition"]) == ("excepted", "held_exception")
    [ev] = events(store, "exception_granted", finding_id=fid)
    assert ev["data"]["approver"] == APPROVER and ev["data"]["expires_on"] == "2026-06-01"
    assert ev["data"]["reason"] == "legacy integration" and ev["actor"] == ACTOR

    result = route(store)
    assert finding(store, fid)["state"] == "excepted" and result.held_back["exception"] == 1


@pytest.mark.parametrize("target", ["jira", "servicenow", "github"])
def test_an_excepted_finding_never_gets_a_payload(store, rec, target):
    fid = _routed_ticket(store, rec)
    [other] = rec.web(SHOP, ("Not excepted SQLi", 3))
    validate(store, [other])
    route(store)
    exceptions.grant(store, fid, approver=APPROVER, reason="accepted", expires=date(2026, 6, 1), actor=ACTOR)
    for rerouted in (False, True):  # straight after the grant (owner still on the row), and after routing
        if rerouted:
            route(store)
        before = snapshot(store)
        with pytest.raises(RefusedError, match=rf"not: {fid} \(excepted, held_exception\)"):
            payload.issue(store, "ACME", target=target, actor=ACTOR, finding_ids=[fid])
        assert snapshot(store)["events"] == before["events"] + 1  # the refusal, nothing else
        assert fid not in payload.issue(store, "ACME", target=target, actor=ACTOR)["text"]

    listed = payload.issue(store, "ACME", target=target, actor=ACTOR)
    assert listed["count"] == 1 and fid not in listed["text"] and other in listed["text"]
    assert {e["finding_id"] for e in events(store, "payload_issued", outcome="success")} == {other}
    assert len(events(store, "payload_issued", outcome="denied")) == 2

    cli_out = CliRunner().invoke(
        cli, ["--db", store.url, "payload", "-e", "ACME", "--target", target, "--finding", fid, "--actor", ACTOR]
    )
    assert cli_out.exit_code == 5 and fid in cli_out.output


def test_an_excepted_untriaged_finding_stays_out_once_validated(store, rec):
    [fid] = rec.web(SHOP, ("Excepted before triage", 3))
    exceptions.grant(store, fid, approver=APPROVER, reason="accepted", expires=date(2026, 6, 1), actor=ACTOR)
    validate(store, [fid])
    route(store)
    assert (finding(store, fid)["state"], finding(store, fid)["disposition"]) == ("excepted", "held_exception")
    assert payload.issue(store, "ACME", target="jira", actor=ACTOR)["count"] == 0


def test_on_expiry_the_next_routing_run_returns_the_finding_with_exception_expired(store, rec):
    fid = _routed_ticket(store, rec)
    exceptions.grant(store, fid, approver=APPROVER, reason="accepted", expires=date(2026, 3, 10), actor=ACTOR)

    store.clock.fixed = datetime(2026, 3, 10, 18, tzinfo=UTC)  # the last day of the exception
    assert route(store).exceptions_expired == [] and finding(store, fid)["state"] == "excepted"
    assert events(store, "exception_expired") == []

    store.clock.fixed = datetime(2026, 3, 11, 8, tzinfo=UTC)
    result = route(store)

    assert result.exceptions_expired == [fid]
    [expired] = events(store, "exception_expired")
    assert expired["finding_id"] == fid and expired["data"]["expired_on"] == "2026-03-10"
    row = finding(store, fid)
    assert (row["state"], row["disposition"], row["owner_team"]) == ("routed", "ticket", "payments")
    assert [e["type"] for e in events(store, finding_id=fid)][-2:] == ["exception_expired", "finding_routed"]
    [listed] = exceptions.list_exceptions(store, "ACME")
    assert (listed["status"], listed["closed_by"]) == ("expired", ACTOR)
    assert payload.issue(store, "ACME", target="jira", actor=ACTOR)["count"] == 1


def test_revoke_returns_the_finding_to_routing(store, rec):
    fid = _routed_ticket(store, rec)
    exceptions.grant(store, fid, approver=APPROVER, reason="accepted", expires=date(2026, 6, 1), actor=ACTOR)

    out = exceptions.revoke(store, fid, reason="fix is cheap after all", actor=APPROVER)

    assert out["status"] == "revoked"
    assert (finding(store, fid)["state"], finding(store, fid)["disposition"]) == ("validated", None)
    [ev] = events(store, "exception_revoked", outcome="success")
    assert ev["actor"] == APPROVER and ev["data"]["reason"] == "fix is cheap after all"
    route(store)
    assert (finding(store, fid)["state"], finding(store, fid)["disposition"]) == ("routed", "ticket")

    with pytest.raises(RefusedError, match="no active exception"):
        exceptions.revoke(store, fid, reason="again", actor=APPROVER)
    assert len(events(store, "exception_revoked", outcome="denied")) == 1


def test_an_exception_must_expire_in_the_future(store, rec):
    fid = _routed_ticket(store, rec)
    for expires in (date(2026, 3, 2), date(2025, 12, 31)):  # today, and the past
        with pytest.raises(RefusedError, match="not in the future"):
            exceptions.grant(store, fid, approver=APPROVER, reason="x", expires=expires, actor=ACTOR)
    assert exceptions.list_exceptions(store, "ACME") == []


def test_exception_cli_grant_list_revoke(store, rec):
    fid = _routed_ticket(store, rec)
    runner = CliRunner()
    base = ["--db", store.url]

    self_approved = runner.invoke(
        cli,
        [
            *base,
            "exception",
            "grant",
            fid,
            "--approver",
            "  ANA silva",
            "--reason",
            "r",
            "--expires",
            "2026-06-01",
            "--actor",
            ACTOR,
        ],
    )
    assert self_approved.exit_code == 5 and "same person" in self_approved.output

    # the CLI runs on the real clock: an expiry far in the future
    ok = runner.invoke(
        cli,
        [
            *base,
            "exception",
            "grant",
            fid,
            "--approver",
            APPROVER,
            "--reason",
            "legacy",
            "--expires",
            "2099-06-01",
            "--actor",
            ACTOR,
            "--format",
            "json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["status"] == "active"

    listed = runner.invoke(cli, [*base, "--format", "json", "exception", "list", "-e", "ACME", "--status", "active"])
    [row] = json.loads(listed.output)
    assert (row["finding_id"], row["requester"], row["approver"], row["expires_on"]) == (
        fid,
        ACTOR,
        APPROVER,
        "2099-06-01",
    )

    revoked = runner.invoke(cli, [*base, "exception", "revoke", fid, "--reason", "fixed", "--actor", APPROVER])
    assert revoked.exit_code == 0, revoked.output
    listed = runner.invoke(cli, [*base, "--format", "json", "exception", "list", "-e", "ACME", "--status", "active"])
    assert json.loads(listed.output) == []
    assert [r["status"] for r in exceptions.list_exceptions(store, "ACME")] == ["revoked"]


# ------------------------------------------------------------------ separation of duties by spelling


def test_every_spelling_of_the_requester_as_approver_is_refused_with_a_denied_event(store, engagement):
    """At least 20 spellings of Dana Whitfield, each refused as her own approver; each leaves one denied event."""
    from tests.record.test_people import DANA, SPELLINGS

    [fid] = add_findings(store, engagement)
    refused = 0
    for how, spelling in SPELLINGS.items():
        before = snapshot(store)
        with pytest.raises(RefusedError, match=r"same person|mixes scripts") as caught:
            exceptions.grant(store, fid, approver=spelling, reason="accept", expires=date(2099, 1, 1), actor=DANA)
        after = snapshot(store)
        assert (after["exceptions"], after["findings_versions"]) == (before["exceptions"], before["findings_versions"])
        assert after["events"] == before["events"] + 1, how
        denied = events(store, "exception_granted", outcome="denied")[-1]
        nfc = unicodedata.normalize  # the log stores NFC text
        assert (denied["actor"], denied["data"]["approver"], denied["data"]["reason"]) == (
            DANA,
            nfc("NFC", spelling),
            nfc("NFC", str(caught.value)),
        ), how
        refused += 1
    assert refused == len(SPELLINGS) >= 20
    assert events(store, "exception_granted", outcome="success") == []


def test_different_people_with_similar_names_may_approve_each_other(store, engagement):
    from tests.record.test_people import DIFFERENT

    fids = add_findings(store, engagement, count=len(DIFFERENT))
    for fid, (requester, approver) in zip(fids, DIFFERENT, strict=True):
        granted = exceptions.grant(
            store, fid, approver=approver, reason="accept", expires=date(2099, 1, 1), actor=requester
        )
        assert granted["status"] == "active", (requester, approver)
    assert len(events(store, "exception_granted", outcome="success")) == len(DIFFERENT)


def test_with_a_people_directory_both_must_resolve_and_the_approver_may_approve(store, engagement, tmp_path):
    from handoffkit.record import engagements

    directory = tmp_path / "people.csv"
    directory.write_text(
        "id,name,email,aliases,may_approve\n"
        "dw,Dana Whitfield,dwhitfield@acme.example,DW,yes\n"
        "as,Ana Silva,asilva@acme.example,,no\n"
        "bo,Ben Okoro,bokoro@acme.example,,yes\n",
        encoding="utf-8",
    )
    result = engagements.init(store, engagement, DATA / "policy.yaml", actor=ACTOR, people_path=directory)
    assert not result.created
    [loaded] = events(store, "people_loaded")
    assert [r["id"] for r in loaded["data"]["rows"]] == ["dw", "as", "bo"]
    engagements.init(store, engagement, DATA / "policy.yaml", actor=ACTOR, people_path=directory)
    assert len(events(store, "people_loaded")) == 1  # unchanged: not loaded again

    fids = add_findings(store, engagement, count=5)
    cases = [
        ("Dana Whitfield", "DW", "same person"),  # an alias of the requester
        ("dwhitfield@acme.example", "Whitfield, Dana", "same person"),
        ("Dana Whitfield", "Ana Silva", "not allowed to approve"),
        ("Dana Whitfield", "Mallory Moriarty", "approver 'Mallory Moriarty' is not in the engagement's people"),
        ("Mallory Moriarty", "Ben Okoro", "requester 'Mallory Moriarty' is not in the engagement's people"),
    ]
    for fid, (requester, approver, why) in zip(fids, cases, strict=True):
        with pytest.raises(RefusedError, match=why):
            exceptions.grant(store, fid, approver=approver, reason="r", expires=date(2099, 1, 1), actor=requester)
        assert events(store, "exception_granted", outcome="denied")[-1]["finding_id"] == fid
    ok = exceptions.grant(
        store, fids[0], approver="bokoro@acme.example", reason="r", expires=date(2099, 1, 1), actor="DW"
    )
    assert ok["status"] == "active"


def test_every_event_records_the_principal_the_system_knows(store, engagement):
    import getpass

    from sqlalchemy import text

    [fid] = add_findings(store, engagement)
    exceptions.grant(store, fid, approver=APPROVER, reason="r", expires=date(2099, 1, 1), actor="Ben Okoro")
    origins = {json.dumps(e["origin"]["principal"], sort_keys=True) for e in events(store)}
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            expected = {"source": "postgresql session_user", "name": conn.execute(text("SELECT session_user")).scalar()}
    else:
        expected = {"source": "os user", "name": getpass.getuser()}
    assert origins == {json.dumps(expected, sort_keys=True)}
