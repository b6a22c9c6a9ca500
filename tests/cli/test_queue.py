"""The retest queue (issue 25, item 4) and the operator commands around it: ``queue``, ``decide`` and
``escalate`` (items 1 and 5), through the view and through the command line, on both backends."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from handoffkit.record import engagements
from handoffkit.report import views
from handoffkit.workflow import decisions, escalation, verification
from tests.builders import ACTOR, DATA, DONE, SHOP, events, finding, route, ticket, validate

UNMAPPED = "https://unmapped.test"


def day(store, month: int, dd: int) -> None:
    store.clock.fixed = datetime(2026, month, dd, 9, tzinfo=UTC)


@pytest.fixture
def queued(store, engagement, rec, exports, tmp_path) -> dict[str, str]:
    """High findings routed on 2 March: ``owned`` (shop.test, Priya Raman) and ``decided`` (an unmapped
    host, owner by decision, no name) whose tickets close on 4 March, and ``open`` whose ticket stays open.
    The policy escalates the high band to payments' head of engineering."""
    text = (
        (DATA / "policy.yaml").read_text().replace("sla_days: 60}", "sla_days: 60, escalation: payments/head of eng}")
    )
    (tmp_path / "escalating.yaml").write_text(text)
    engagements.init(store, engagement, tmp_path / "escalating.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    owned, still_open = rec.web(SHOP, ("Queued SQLi", 3), ("Still open XSS", 3))
    [decided] = rec.host(UNMAPPED, {"name": "Queued SSRF", "severity": 3})
    validate(store, [owned, still_open, decided])
    route(store)
    decisions.decide(store, decided, owner="infrastructure/system administrator", reason="infra owns it", actor=ACTOR)
    route(store)
    day(store, 3, 3)
    exports.ingest("jira", *(ticket("jira", n, [f]) for n, f in enumerate((owned, still_open, decided), 1)))
    day(store, 3, 4)
    exports.ingest(
        "jira", ticket("jira", 1, [owned]) | DONE, ticket("jira", 2, [still_open]), ticket("jira", 3, [decided]) | DONE
    )
    return {"owned": owned, "open": still_open, "decided": decided}


def test_the_queue_lists_what_awaits_verification_with_owner_age_sla_and_accepted_evidence(store, queued):
    day(store, 3, 10)
    q = views.retest_queue(store, "ACME", "2026-03-10")
    assert q.columns.tolist() == list(views.QUEUE_COLUMNS)
    rows = {r["finding_id"]: r for r in q.to_dict(orient="records")}
    assert set(rows) == {queued["owned"], queued["decided"]}  # the open ticket's finding is not waiting
    owned, decided = rows[queued["owned"]], rows[queued["decided"]]
    assert (owned["owner_team"], owned["owner_role"], owned["owner_name"]) == (
        "payments",
        "service owner",
        "Priya Raman",
    )
    assert (decided["owner_team"], decided["owner_name"]) == ("infrastructure", None)
    assert owned["awaiting_since"] == datetime(2026, 3, 4, 9, tzinfo=UTC)
    assert owned["age_days"] == 6 and owned["sla_due"] == "2026-05-01" and owned["sla_status"] == "within"
    assert owned["accepts"] == "rescan, retest, commit, attestation"
    assert decided["accepts"] == "rescan, retest, commit"  # no named owner: nobody can attest
    assert owned["escalated_to"] is None


def test_the_queue_shows_the_escalation_of_a_breach_and_as_of_reads_no_later_event(store, queued):
    day(store, 5, 3)
    result = escalation.escalate(store, "ACME", actor=ACTOR)
    assert sorted(e["finding_id"] for e in result.escalated) == sorted(queued.values())

    now = views.retest_queue(store, "ACME", "2026-05-03").set_index("finding_id")
    assert now.loc[queued["owned"], "escalated_to"] == "payments/head of eng"
    assert now.loc[queued["owned"], "sla_status"] == "breached" and now.loc[queued["owned"], "age_days"] == 60
    listed = views.finding_list(store, "ACME", "2026-05-03").set_index("finding_id")
    assert listed.loc[queued["open"], "escalated_to"] == "payments/head of eng"

    before = views.retest_queue(store, "ACME", "2026-05-02").set_index("finding_id")
    assert before["escalated_to"].isna().all() and set(before["sla_status"]) == {"breached"}
    assert views.retest_queue(store, "ACME", "2026-03-03").empty  # the tickets closed the day after
    assert views.finding_list(store, "ACME", "2026-05-02")["escalated_to"].isna().all()


def test_a_verified_finding_leaves_the_queue_and_free_text_does_not_verify(store, queued):
    day(store, 3, 6)
    with pytest.raises(Exception, match="does not reference an artefact"):
        verification.verify(store, queued["owned"], kind="retest", evidence="looks fixed", actor=ACTOR)
    assert queued["owned"] in set(views.retest_queue(store, "ACME")["finding_id"])
    verification.verify(store, queued["owned"], kind="retest", evidence="run:zap-88 not reflected", actor=ACTOR)
    assert set(views.retest_queue(store, "ACME")["finding_id"]) == {queued["decided"]}
    assert set(views.retest_queue(store, "ACME", "2026-03-05")["finding_id"]) == {queued["owned"], queued["decided"]}


def test_queue_command_prints_the_queue_and_its_legend(db_url, store, queued, run):
    out = run("--db", db_url, "queue", "-e", "ACME", "--as-of", "2026-03-10")
    assert out.exit_code == 0, out.output
    assert queued["owned"] in out.stdout and "retest: an evidence file, sha256:<64 hex>" in out.stdout
    assert "2 finding(s) awaiting verification" in out.stdout
    as_json = run("--db", db_url, "queue", "-e", "ACME", "--as-of", "2026-03-10", "--format", "json")
    rows = json.loads(as_json.stdout)
    assert {r["finding_id"]: r["age_days"] for r in rows} == {queued["owned"]: 6, queued["decided"]: 6}
    missing = run("--db", db_url, "queue", "-e", "NOPE")
    assert missing.exit_code == 4 and "NOPE" in missing.stderr


def test_decide_command_refusals_and_usage(db_url, store, engagement, rec, run):
    [fid] = rec.host(UNMAPPED, {"name": "CLI SSRF", "severity": 4})
    validate(store, [fid])
    route(store)
    base = ("--db", db_url, "decide", fid, "--reason", "triaged by hand", "--actor", "Dana Whitfield")
    both = run(*base, "--owner", "payments/service owner", "--hold", "--until", "2027-01-01")
    assert both.exit_code == 2 and "either --owner" in both.stderr
    no_until = run(*base, "--hold")
    assert no_until.exit_code == 2 and "--hold needs --until" in no_until.stderr
    past = run(*base, "--hold", "--until", "2020-01-01")
    assert past.exit_code == 5 and "not after today" in past.stderr
    unknown = run(*base, "--owner", "paymnts/service owner")
    assert unknown.exit_code == 5 and "did you mean 'payments'?" in unknown.stderr
    assert [e["outcome"] for e in events(store, "routing_decided")] == ["denied", "denied"]

    ok = run(*base, "--owner", "payments/service owner/Priya Raman", "--format", "json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["owner"] == "payments/service owner/Priya Raman"
    assert finding(store, fid)["state"] == "validated"
    no_actor = run("--db", db_url, "decide", fid, "--reason", "x", "--owner", "payments/service owner")
    assert no_actor.exit_code != 0 and "an actor is required" in no_actor.stderr


def test_escalate_command_is_idempotent(db_url, store, queued, run):
    base = ("--db", db_url, "escalate", "-e", "ACME", "--actor", "Dana Whitfield", "--format", "json")
    first = json.loads(run(*base).stdout)
    assert first["count"] == 3 and first["today"] == date.today().isoformat()
    again = json.loads(run(*base).stdout)
    assert (again["count"], again["already_escalated"]) == (0, 3)
    assert len(events(store, "finding_escalated")) == 3 and len(events(store, "escalation_run")) == 1
