"""Batch handoffs (issue 25, item 2): one ticket per owner team per sprint or quarter for the bands the
policy batches, the batch id on every member, idempotent re-runs, and a reconciliation that takes a batch
ticket for what it is — and still flags the look-alikes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner

from handoffkit import reconcile
from handoffkit.cli import cli
from handoffkit.errors import ConfigError, RefusedError
from handoffkit.record import findings, log, policy
from handoffkit.tickets import batches, payload
from handoffkit.tickets.detect import parse_export
from handoffkit.tickets.finding_ids import extract_finding_ids
from tests.builders import ACTOR, DATA, SHOP, WRITERS, at, events, finding, route, ticket, validate

SPRINT = "2026-02-23"  # the sprint 2 March 2026 falls in (two weeks from Monday 1 January 2024)
MEDIUM = f"batch-medium-{SPRINT}-payments"
LOW = "batch-low-2026-Q1-payments"


@pytest.fixture
def banded(store, rec) -> dict[str, list[str]]:
    """Routed findings of every kind on shop.test (owner team payments): two medium (sprint backlog), one
    low (quarterly cycle), one high (ticket), one info (record only)."""
    ids = rec.web(SHOP, ("Batch medium one", 2), ("Batch medium two", 2), ("Batch low", 1), ("Batch high", 3))
    info = rec.web(SHOP, ("Batch info", 0))
    validate(store, [*ids, *info])
    route(store)
    return {"medium": ids[:2], "low": [ids[2]], "high": [ids[3]], "info": info}


def _issue(store, target="jira", fmt="json", **kw):
    return batches.issue(store, "ACME", target=target, actor=ACTOR, fmt=fmt, **kw)


def test_periods_and_ids_are_deterministic_readable_and_label_sized():
    assert batches.period("sprint", date(2026, 3, 2)) == SPRINT
    assert batches.period("sprint", date(2026, 3, 8)) == SPRINT
    assert batches.period("sprint", date(2026, 3, 9)) == "2026-03-09"
    assert batches.period("quarter", date(2026, 7, 1)) == "2026-Q3"
    assert batches.batch_id("medium", SPRINT, "payments") == MEDIUM
    # Look-alike teams never share an id; every id fits a GitHub label and reads back.
    odd = [batches.batch_id("critical", "2026-Q4", t) for t in ("Payments Team", "payments-team", "x" * 80)]
    assert len(set(odd)) == 3 and all(len(b) <= batches.MAX_ID for b in odd)
    assert odd[1] == "batch-critical-2026-Q4-payments-team"
    assert all(batches.parts(b) for b in odd) and batches.parts("batch-urgent-2026-Q4-x") is None


def test_one_batch_per_band_and_owner_with_the_batch_id_on_every_member(store, banded):
    result = _issue(store)
    assert result["count"] == 2
    assert [(b["batch_id"], b["findings"]) for b in result["batches"]] == [
        (LOW, banded["low"]),
        (MEDIUM, banded["medium"]),
    ]
    for band, bid in (("medium", MEDIUM), ("low", LOW)):
        assert {finding(store, f)["batch_id"] for f in banded[band]} == {bid}
    for band in ("high", "info"):  # a ticket band gets a ticket per finding, a record-only band none
        assert finding(store, banded[band][0])["batch_id"] is None
    batched = events(store, "finding_batched")
    assert {e["finding_id"]: e["data"]["set"]["batch_id"] for e in batched} == {
        **dict.fromkeys(banded["medium"], MEDIUM),
        banded["low"][0]: LOW,
    }
    issued = events(store, "batch_issued")
    assert [(e["data"]["batch_id"], e["data"]["findings"], e["data"]["period"]) for e in issued] == [
        (LOW, banded["low"], "2026-Q1"),
        (MEDIUM, banded["medium"], SPRINT),
    ]
    # The rebuilt record equals the stored one: the batch id comes back from the log.
    rebuilt = findings.rebuild(store, "ACME")
    assert {f: rebuilt[f]["batch_id"] for f in banded["medium"]} == dict.fromkeys(banded["medium"], MEDIUM)


def test_a_second_run_writes_nothing_and_a_new_member_amends_its_batch(store, rec, banded):
    _issue(store)
    before = len(events(store))
    again = _issue(store)
    assert (again["count"], again["batches"], len(events(store))) == (0, [], before)

    [late] = rec.web(SHOP, ("Batch medium late", 2))
    validate(store, [late])
    route(store)
    amended = _issue(store)
    assert amended["batches"] == [{"batch_id": MEDIUM, "findings": [*banded["medium"], late], "added": [late]}]
    assert [e["finding_id"] for e in events(store, "finding_batched")][-1:] == [late]
    assert len(events(store, "finding_batched")) == 4  # the earlier members are not batched again

    # Next sprint: the open batch keeps its members; only a finding whose band changed is batched anew.
    at(store, 10)
    assert _issue(store)["count"] == 0


def test_a_finding_whose_band_changes_leaves_its_open_batch(store, banded):
    from handoffkit.workflow import calibration

    _issue(store)
    moved = banded["medium"][0]
    calibration.calibrate(store, moved, severity="low", reason="internal only", actor=ACTOR)
    route(store)
    result = _issue(store)
    assert result["batches"] == [{"batch_id": LOW, "findings": [moved, *banded["low"]], "added": [moved]}]
    assert finding(store, moved)["batch_id"] == LOW


@pytest.mark.parametrize("target", payload.TARGETS)
def test_the_batch_ticket_lists_each_member_and_carries_every_id(store, banded, target):
    [_, medium] = _issue(store, target=target)["payloads"]
    members = banded["medium"]
    text = json.dumps(medium)
    for fid in members:
        assert f"[{fid}]" in text and f"https://record.test/ACME/findings/{fid}" in text
    assert banded["high"][0] not in text
    assert f"[{MEDIUM}]" in text
    assert all(finding(store, fid)["sla_due"].isoformat() in text for fid in members)
    if target == "servicenow":
        assert medium["u_finding_id"] == ", ".join(members) and medium["u_batch_id"] == MEDIUM
        assert medium["short_description"].startswith(f"[{MEDIUM}]")
    else:
        labels = medium["fields"]["labels"] if target == "jira" else medium["labels"]
        assert labels[0] == MEDIUM and set(members) <= set(labels)


def test_the_jira_csv_imports_back_with_every_id_and_the_batch(store, banded, tmp_path):
    text = _issue(store, fmt="csv")["text"]
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:7] == ["Summary", "Issue Type", "Priority", "Description", "Due Date", "Component/s", "Finding ID"]
    # What Jira exports after importing it: the same columns, plus a key and a status.
    header = ["Issue key", "Status", "Status Category", *rows[0]]
    exported = [header] + [[f"SEC-{n}", "To Do", "To Do", *r] for n, r in enumerate(rows[1:], 1)]
    out = io.StringIO()
    csv.writer(out).writerows(exported)
    parsed = parse_export(out.getvalue().encode(), "jira.csv", "jira")
    medium = next(t for t in parsed.tickets if MEDIUM in t.labels)
    assert extract_finding_ids(medium) == tuple(banded["medium"])
    assert batches.carried(medium.labels, medium.title, medium.description) == MEDIUM


@pytest.mark.parametrize("target", ["github", "servicenow"])
def test_the_batch_ticket_read_back_from_the_system_links_every_member(store, banded, exports, target):
    """What GitHub or ServiceNow export after creating the batch ticket from its payload (the payload's own
    title, body, labels and finding-id field, plus the key and status the system assigns) links each member,
    carries the batch, and leaves no gap: the handoff reads back as it was handed over."""
    [_, medium] = _issue(store, target=target)["payloads"]
    row = ticket(target, 7, [], band="medium", with_token=False, finding_field=False)
    if target == "github":
        row.update(title=medium["title"], description=medium["body"], labels=list(medium["labels"]))
    else:
        row.update(
            title=medium["short_description"], description=medium["description"], finding_field=medium["u_finding_id"]
        )
    result = exports.ingest(target, row)
    assert (result.linked, result.split, result.orphans) == (2, 0, 0)

    parsed = parse_export(WRITERS[target]([row]), f"{target}.json", target)
    [back] = parsed.tickets
    assert extract_finding_ids(back) == tuple(banded["medium"])
    assert batches.carried(back.labels, back.title, back.description) == MEDIUM
    gaps = _gaps(store)
    for category in ("tickets_outside_policy", "findings_not_referenced", "severity_drift"):
        assert gaps.ids[category] == [], category
    assert gaps.ids["batch_misses"] == banded["low"]


def test_markdown_lists_a_table_of_the_members(store, banded):
    text = _issue(store, target="github", fmt="md")["text"]
    assert "| Finding | Severity | Due | Title | Record |" in text
    assert all(f"| [{fid}] | medium |" in text for fid in banded["medium"])


def test_bad_options_are_refused_with_a_denied_event(store, banded):
    with pytest.raises(RefusedError, match="--target 'trello'"):
        _issue(store, target="trello")
    assert [e["outcome"] for e in events(store, "batch_issued")] == ["denied"]
    assert finding(store, banded["medium"][0])["batch_id"] is None


# ----------------------------------------------------------------------------------------------- policy


def _policy_text(medium_rule: str) -> str:
    text = (DATA / "policy.yaml").read_text()
    return text.replace("medium: {disposition: sprint_backlog, sla_days: 90}", f"medium: {{{medium_rule}}}")


def test_the_policy_says_which_bands_batch():
    stock = policy.parse_policy(_policy_text("disposition: sprint_backlog, sla_days: 90"), "p.yaml")
    assert {b: r.batch_cadence for b, r in stock.routing.bands.items()} == {
        "critical": None,
        "high": None,
        "medium": "sprint",
        "low": "quarter",
        "info": None,
    }
    off = policy.parse_policy(_policy_text("disposition: sprint_backlog, sla_days: 90, batch: none"), "p.yaml")
    assert off.band_rule("medium").batch_cadence is None
    quarterly = policy.parse_policy(_policy_text("disposition: sprint_backlog, sla_days: 90, batch: quarter"), "p")
    assert quarterly.band_rule("medium").batch_cadence == "quarter"
    # A policy naming no batch stores the same bytes as before the field existed (no new version).
    assert all("batch" not in rule for rule in stock.document()["routing"]["bands"].values())
    assert quarterly.document()["routing"]["bands"]["medium"]["batch"] == "quarter"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("disposition: ticket, sla_days: 90, batch: sprint", "only the sprint_backlog and quarterly_cycle"),
        ("disposition: sprint_backlog, sla_days: 90, batch: fortnight", "'fortnight' is not allowed"),
        ("disposition: sprint_backlog, sla_days: 90, batches: sprint", "did you mean 'batch'"),
    ],
)
def test_a_batch_where_none_can_be_is_refused_at_its_line(rule, message):
    with pytest.raises(ConfigError, match=message) as caught:
        policy.parse_policy(_policy_text(rule), "p.yaml")
    assert str(caught.value).startswith("p.yaml:7:")  # the medium band's line


def test_a_band_set_to_batch_none_is_never_batched(store, tmp_path, banded):
    from handoffkit.record import engagements

    path = tmp_path / "policy.yaml"
    path.write_text(_policy_text("disposition: sprint_backlog, sla_days: 90, batch: none"))
    engagements.init(store, "ACME", path, owners_path=DATA / "owners.csv", actor=ACTOR)
    assert [b["batch_id"] for b in _issue(store)["batches"]] == [LOW]


# ---------------------------------------------------------------------------------------- reconciliation


def _gaps(store, as_of=None):
    with store.read() as conn:
        return reconcile.gaps(conn, "ACME", as_of)


def test_a_batch_ticket_links_each_member_and_is_no_gap(store, banded, exports):
    _issue(store)
    one, two = banded["medium"]
    result = exports.ingest(
        "jira", ticket("jira", 1, [one, two], band="medium", title=f"[{MEDIUM}] [{one}] [{two}]", labels=[MEDIUM])
    )
    assert (result.linked, result.split, result.orphans) == (2, 0, 0)
    gaps = _gaps(store)
    for category in ("tickets_outside_policy", "findings_not_referenced", "severity_drift"):
        assert gaps.ids[category] == [], category
    assert gaps.ids["batch_misses"] == banded["low"]  # the low batch's ticket was never raised
    assert gaps.ids["routing_misses"] == banded["high"]  # the ticket band still wants its own ticket
    assert events(store, "ticket_split") == []


def test_batched_findings_with_no_ticket_are_batch_misses_not_routing_misses(store, banded):
    assert _gaps(store).ids["batch_misses"] == []  # not batched yet: the next payload --batch takes them
    _issue(store)
    gaps = _gaps(store)
    assert gaps.ids["batch_misses"] == [*banded["medium"], *banded["low"]]
    assert gaps.ids["routing_misses"] == banded["high"]


def test_the_look_alikes_of_a_batch_ticket_are_still_outside_policy(store, rec, banded, exports):
    _issue(store)
    one, two = banded["medium"]
    [unbatched] = rec.web(SHOP, ("Batch medium unbatched", 2))
    validate(store, [unbatched])
    route(store)
    high, low = banded["high"][0], banded["low"][0]
    exports.ingest(
        "jira",
        # The medium batch's ticket, also listing a high finding, an unbatched medium and the low batch's member.
        ticket("jira", 1, [one, high, unbatched, low], band="medium", labels=[MEDIUM, one, high, unbatched, low]),
        ticket("jira", 2, [two], band="medium"),  # a per-finding ticket for a batched finding
        ticket("jira", 3, [low], band="low", labels=[LOW, f"{LOW}x"]),  # a ticket naming two batches
    )
    reasons = _gaps(store).reasons["tickets_outside_policy"]
    assert reasons == {
        high: ["not_in_batch"],
        unbatched: ["sprint_backlog", "not_in_batch"],
        two: ["sprint_backlog"],
        low: ["quarterly_cycle", "not_in_batch"],
    }
    assert one not in reasons


def test_a_batch_issued_after_an_instant_is_not_in_the_record_as_of_it(store, banded, exports):
    at(store, 3)
    _issue(store)
    at(store, 4)
    one, two = banded["medium"]
    exports.ingest("jira", ticket("jira", 1, [one, two], band="medium", labels=[MEDIUM, one, two]))
    at(store, 5)
    before = _gaps(store, datetime(2026, 3, 2, 23, tzinfo=UTC))
    assert before.ids["batch_misses"] == []
    during = _gaps(store, datetime(2026, 3, 3, 23, tzinfo=UTC))
    assert during.ids["batch_misses"] == [*banded["medium"], *banded["low"]]
    after = _gaps(store, datetime(2026, 3, 4, 23, tzinfo=UTC))
    assert after.ids["batch_misses"] == banded["low"]
    assert after.ids["tickets_outside_policy"] == []
    assert _gaps(store).ids == after.ids | {"reconciliation_overdue": _gaps(store).ids["reconciliation_overdue"]}


# -------------------------------------------------------------------------------------------------- CLI


def test_payload_batch_cli_and_its_rerun(store, banded, tmp_path):
    out = tmp_path / "batches.json"
    args = ["--db", store.url, "payload", "-e", "ACME", "--target", "github", "--batch", "--actor", ACTOR]
    first = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "2 batch payload(s) written" in first.output
    # The command runs on today's clock: the periods are today's.
    today = datetime.now(UTC).date()
    low, medium = (
        f"batch-{b}-{batches.period(c, today)}-payments" for b, c in (("low", "quarter"), ("medium", "sprint"))
    )
    assert [p["labels"][0] for p in json.loads(out.read_text())] == [low, medium]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "nothing to batch" in again.output
    both = CliRunner().invoke(cli, [*args, "--finding", banded["medium"][0]])
    assert both.exit_code == 2 and "cannot be combined with --finding" in both.output
    with store.read() as conn:
        before = log.head(conn)
    two = CliRunner().invoke(cli, [*args, "--updates"])
    assert two.exit_code == 2 and "--batch and --updates are two different handoffs" in two.output
    with store.read() as conn:
        assert log.head(conn) == before  # a usage error writes nothing


def test_a_per_finding_payload_for_a_batch_band_is_still_refused(store, banded):
    with pytest.raises(RefusedError, match="only findings routed to a ticket"):
        payload.issue(store, "ACME", target="jira", actor=ACTOR, finding_ids=banded["medium"][:1])


def test_a_batched_finding_raised_to_the_ticket_band_is_off_its_batch_ticket(store, banded, exports):
    """Its batch ticket no longer hands it over: flagged, though a link keeps it out of the routing misses."""
    from handoffkit.workflow import calibration

    _issue(store)
    one, two = banded["medium"]
    exports.ingest("jira", ticket("jira", 1, [one, two], band="medium", labels=[MEDIUM, one, two]))
    assert _gaps(store).reasons["tickets_outside_policy"] == {}
    calibration.calibrate(store, one, severity="high", reason="reachable from the internet", actor=ACTOR)
    route(store)
    gaps = _gaps(store)
    assert gaps.reasons["tickets_outside_policy"] == {one: ["not_in_batch"]}
    assert two not in gaps.ids["severity_drift"]
