"""Re-handoff (issue 25): the ticket updates owed after a recalibration, a due-date change or a new KEV
match — listed set-based, rendered per ticket system, logged when issued, never twice, never for a closed
finding or ticket, never leaking into an earlier instant; engineering's own priority edit is drift only."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.reconcile import gaps
from handoffkit.record.store import Store
from handoffkit.tickets import payload, updates
from handoffkit.tickets.push import push
from handoffkit.workflow import calibration
from tests.builders import ACTOR, DONE, SHOP, at, events, finding, route, snapshot, ticket, validate

SYSTEMS = ["jira", "github", "servicenow"]


def owed(store: Store, system: str | None = None, as_of=None):
    with store.read() as conn:
        return updates.owed(conn, "ACME", system, as_of)


def lines(store: Store, system: str | None = None, as_of=None) -> list[tuple[str, str, str, str | None, str]]:
    df = owed(store, system, as_of)
    return list(df[["finding_id", "ticket_key", "field", "handed_over", "record"]].itertuples(index=False, name=None))


def handed(store: Store, system: str, routed: list[str], exports, number: int = 7) -> str:
    """Issue the payloads for ``system`` and import the ticket made from the first one: its key."""
    payload.issue(store, "ACME", target=system, actor=ACTOR)
    row = ticket(system, number, [routed[0]])
    exports.ingest(system, row)
    return row["key"]


def recalibrate(store: Store, fid: str, band: str) -> None:
    calibration.calibrate(store, fid, severity=band, reason="exposure re-assessed", actor=ACTOR)
    route(store)


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_recalibration_after_the_handoff_is_owed_to_the_ticket(store, routed, exports, system):
    key = handed(store, system, routed, exports)
    assert lines(store) == []  # the ticket carries what the payload handed over

    before_due = str(finding(store, routed[0])["sla_due"])
    recalibrate(store, routed[0], "critical")
    after_due = str(finding(store, routed[0])["sla_due"])
    assert before_due != after_due  # the critical band's SLA is shorter
    df = owed(store)
    assert lines(store) == [
        (routed[0], key, "due_date", before_due, after_due),
        (routed[0], key, "severity", "high", "critical"),
    ]
    assert df["system"].eq(system).all() and df["handed_over_by"].eq("payload_issued").all()
    assert dict(zip(df["field"], df["cause"], strict=True)) == {
        "severity": "recalibration",
        "due_date": "recalibration",
    }
    [cal] = events(store, "severity_calibrated")
    assert df["cause_seq"].tolist() == [cal["seq"]] * 2  # the band's SLA moved the due date: the calibration did
    assert lines(store, "jira" if system != "jira" else "github") == []  # other systems' tickets only


def test_a_recalibration_back_to_the_handed_over_value_owes_nothing(store, routed, exports):
    handed(store, "jira", routed, exports)
    recalibrate(store, routed[0], "critical")
    assert len(lines(store)) == 2
    recalibrate(store, routed[0], "high")
    assert lines(store) == []


@pytest.mark.parametrize("system", SYSTEMS)
def test_issuing_logs_each_update_once_and_a_rerun_lists_nothing(store, routed, exports, system):
    key = handed(store, system, routed, exports)
    recalibrate(store, routed[0], "critical")

    result = updates.issue(store, "ACME", target=system, actor=ACTOR)
    assert result["count"] == 2
    [doc] = result["updates"]
    if system == "jira":
        assert doc["key"] == key and doc["fields"]["priority"] == {"name": "Highest"}
        assert doc["fields"]["duedate"] == str(finding(store, routed[0])["sla_due"])
        assert {"add": "severity-critical"} in doc["update"]["labels"]
    elif system == "servicenow":
        assert doc["number"] == key and doc["priority"] == "1 - Critical" and "due_date" in doc
        assert json.loads(result["text"]) == {"records": [doc]}
    else:
        assert doc["labels"] == {"add": ["severity:critical"], "remove": ["severity:high"]}
        assert "Due date on the security record" in doc["comment"]
    issued = events(store, updates.ISSUED)
    assert sorted(e["data"]["field"] for e in issued) == ["due_date", "severity"]
    sev = next(e for e in issued if e["data"]["field"] == "severity")
    assert (sev["finding_id"], sev["ticket_key"], sev["data"]["old"], sev["data"]["new"]) == (
        routed[0], key, "high", "critical",
    )  # fmt: skip
    assert sev["data"]["sha256"] == updates.sha256(doc) and sev["data"]["cause"] == "recalibration"

    head = snapshot(store)
    again = updates.issue(store, "ACME", target=system, actor=ACTOR)
    assert again["count"] == 0 and snapshot(store) == head  # idempotent: nothing new, nothing logged

    recalibrate(store, routed[0], "medium")  # it changes again: owed again, from what was handed over
    assert ("severity", "critical", "medium") in [(f, o, n) for _, _, f, o, n in lines(store)]


def test_a_new_kev_match_tightens_the_due_date_and_says_so(store, rec, exports):
    ids = rec.host(SHOP, {"name": "KEV lib", "severity": 3, "cves": ["CVE-2024-1234"]})
    validate(store, ids)
    route(store)
    key = handed(store, "jira", ids, exports)
    band_due = str(finding(store, ids[0])["sla_due"])
    rec.kev(("CVE-2024-1234", "2026-03-10"))
    route(store)
    kev_due = str(finding(store, ids[0])["sla_due"])
    assert kev_due < band_due
    df = owed(store)
    assert lines(store) == [(ids[0], key, "due_date", band_due, kev_due)]
    assert df["cause"].item() == "KEV match" and df["cause_event"].item() == "finding_routed"


def test_a_policy_shortening_the_band_sla_is_a_due_date_change(store, routed, exports, tmp_path):
    from handoffkit.record import engagements
    from tests.builders import DATA

    key = handed(store, "jira", routed, exports)
    before_due = str(finding(store, routed[0])["sla_due"])
    policy = tmp_path / "policy.yaml"
    text = (DATA / "policy.yaml").read_text()
    policy.write_text(
        text.replace("high: {disposition: ticket, sla_days: 60}", "high: {disposition: ticket, sla_days: 45}")
    )
    engagements.init(store, "ACME", policy, owners_path=DATA / "owners.csv", actor=ACTOR)
    route(store)
    df = owed(store)
    assert lines(store) == [(routed[0], key, "due_date", before_due, str(finding(store, routed[0])["sla_due"]))]
    assert (df["cause"].item(), df["cause_event"].item()) == ("due-date change", "finding_routed")


def test_engineering_editing_the_priority_is_drift_never_an_update_applied_to_the_record(store, routed, exports):
    key = handed(store, "jira", routed, exports)
    exports.ingest("jira", ticket("jira", 7, [routed[0]], band="low"))  # renegotiated in the ticket
    with store.read() as conn:
        assert routed[0] in gaps(conn, "ACME").ids["severity_drift"]
    assert finding(store, routed[0])["severity"] == "high"  # the record is untouched
    assert lines(store) == []  # the record did not move: nothing to hand over (drift is the reconciler's)

    recalibrate(store, routed[0], "critical")
    sev = [ln for ln in lines(store) if ln[2] == "severity"]
    assert sev == [(routed[0], key, "severity", "high", "critical")]  # the record's value, not the ticket's


def test_a_closed_ticket_or_a_closed_finding_is_owed_nothing(store, routed, exports):
    payload.issue(store, "ACME", target="jira", actor=ACTOR)
    exports.ingest("jira", ticket("jira", 7, [routed[0]]), ticket("jira", 8, [routed[1]]))
    recalibrate(store, routed[0], "critical")
    recalibrate(store, routed[1], "critical")
    assert {ln[1] for ln in lines(store)} == {"SEC-7", "SEC-8"}
    exports.ingest("jira", ticket("jira", 7, [routed[0]], **DONE), ticket("jira", 8, [routed[1]]))
    assert {ln[1] for ln in lines(store)} == {"SEC-8"}
    assert finding(store, routed[0])["state"] == "awaiting_verification"


def test_a_ticket_made_by_hand_is_compared_with_the_record_when_it_was_linked(store, routed, exports):
    exports.ingest("jira", ticket("jira", 9, [routed[1]]))  # no payload issued
    assert lines(store) == []
    recalibrate(store, routed[1], "low")
    df = owed(store)
    assert set(df["handed_over_by"]) == {"link_added"}
    assert ("severity", "high", "low") in [(f, o, n) for _, _, f, o, n in lines(store)]


def test_updates_issued_after_an_instant_do_not_show_as_of_it(store, routed, exports, clock):
    handed(store, "jira", routed, exports)
    at(store, 10)
    recalibrate(store, routed[0], "critical")
    at(store, 20)
    updates.issue(store, "ACME", target="jira", actor=ACTOR)
    with store.read() as conn:
        then = updates.handed_over(conn, "ACME", "2026-03-15")
        now = updates.handed_over(conn, "ACME")
        summary_then = updates.summary(conn, "ACME", "2026-03-15")
    assert then.empty and len(now) == 2
    assert len(lines(store, as_of="2026-03-15")) == 2  # still owed as of the 15th
    assert lines(store) == []
    assert summary_then["owed"].sum() == 2 and summary_then["handed_over"].sum() == 0
    assert lines(store, as_of="2026-03-05") == []  # before the recalibration nothing was owed


def test_the_cli_prints_and_logs_the_updates(store, routed, exports):
    handed(store, "jira", routed, exports)
    recalibrate(store, routed[0], "critical")
    run = lambda *a: CliRunner().invoke(cli, ["--db", store.url, "payload", "-e", "ACME", "--updates", *a])  # noqa: E731
    result = run("--target", "jira", "--format", "csv", "--actor", ACTOR)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["field"], r["handed_over"], r["record"], r["cause"]) for r in rows][1] == (
        "severity", "high", "critical", "recalibration",
    )  # fmt: skip
    assert len(events(store, updates.ISSUED)) == 2
    assert run("--target", "jira", "--actor", ACTOR).output.strip() == "[]"
    bad = run("--target", "jira", "--actor", ACTOR, "--finding", routed[0])
    assert bad.exit_code != 0 and "--updates" in bad.output


@pytest.mark.corpus
@pytest.mark.parametrize("system", SYSTEMS)
def test_push_applies_what_is_owed_and_logs_it_the_same_way(store, routed, httpserver, tmp_path, system):
    from tests.tickets.test_push import settings
    from tests.tickets.trackers import CANARY, Desk

    creds = tmp_path / "credentials.yaml"
    creds.write_text(f"token: {CANARY}\n")
    desk, s = Desk(httpserver, system), settings(httpserver, creds)
    push(store, "ACME", system, s, actor=ACTOR, apply=True)
    recalibrate(store, routed[0], "critical")
    updates.issue(store, "ACME", target=system, actor=ACTOR)  # handed over by a person: push sends nothing
    assert push(store, "ACME", system, s, actor=ACTOR, apply=True)["counts"] == {"up_to_date": 2}
    assert desk.updates == []

    recalibrate(store, routed[0], "medium")
    plan = push(store, "ACME", system, s, actor=ACTOR)
    [step] = [st for st in plan["steps"] if st["action"] == "update"]
    assert step["changes"]["severity"] == ["critical", "medium"] and desk.updates == []
    push(store, "ACME", system, s, actor=ACTOR, apply=True)
    assert desk.updates
    by_push = [e for e in events(store, updates.ISSUED) if e["data"]["via"] == "push"]
    assert {(e["data"]["field"], e["data"]["old"], e["data"]["new"]) for e in by_push} >= {
        ("severity", "critical", "medium")
    }
    assert lines(store) == [] and updates.issue(store, "ACME", target=system, actor=ACTOR)["count"] == 0
