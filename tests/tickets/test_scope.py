"""The ticket scope (issue 25): an engagement reads only its own tickets from a shared tracker's export or
sync; another engagement's ticket is left out and counted, never read as an orphan here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handoffkit import reconcile
from handoffkit.cli import cli
from handoffkit.errors import ConfigError
from handoffkit.record import engagements, schema
from handoffkit.record.model import TicketSnapshot
from handoffkit.record.policy import TicketScope, load_policy, parse_policy
from handoffkit.tickets import snapshots
from handoffkit.tickets.connection import Settings
from handoffkit.tickets.sync import sync_tickets
from tests.builders import ACTOR, DATA, Exports, add_findings, events, ticket
from tests.tickets.trackers import Tracker, jira_cloud, jira_issue, json_response, servicenow_record

BASE = (DATA / "policy.yaml").read_text(encoding="utf-8")


def scoped_policy(folder: Path, name: str, scope: str) -> Path:
    """The test policy with ``scope`` (YAML flow mapping) under ``ticket_payload``."""
    path = folder / f"{name}.yaml"
    text = BASE.replace("ticket_payload:\n", f"ticket_payload:\n  scope: {scope}\n", 1)
    path.write_text(text, encoding="utf-8")
    (folder / "owners.csv").write_bytes((DATA / "owners.csv").read_bytes())
    return path


@pytest.fixture
def two(store, tmp_path):
    """ACME reads project SEC, GLOBEX project OPS, from one shared Jira; one finding each."""
    engagements.init(store, "ACME", scoped_policy(tmp_path, "acme", "{jira_projects: [SEC]}"), actor=ACTOR)
    engagements.init(store, "GLOBEX", scoped_policy(tmp_path, "globex", "{jira_projects: [OPS]}"), actor=ACTOR)
    [acme] = add_findings(store, "ACME")
    [globex] = add_findings(store, "GLOBEX")
    return acme, globex, Exports(store, "ACME", tmp_path), Exports(store, "GLOBEX", tmp_path)


def current_keys(store, engagement: str) -> list[str]:
    t = schema.tickets.c
    with store.read() as conn:
        return sorted(conn.execute(select(t.key).where(t.engagement == engagement, t.current)).scalars())


def test_another_engagements_ticket_is_left_out_not_read_as_an_orphan(store, two):
    acme, globex, acme_exports, globex_exports = two
    shared = [
        ticket("jira", 1, [acme]),
        # GLOBEX's ticket: its finding id is a real id, only not ACME's (ids are unique across engagements)
        ticket("jira", 2, [globex], key="OPS-2"),
        ticket("jira", 3, ["HK-999"], key="OPS-3"),
    ]

    result = acme_exports.ingest("jira", *shared)

    assert (result.tickets, result.out_of_scope, result.orphans, result.linked) == (1, 2, 0, 1)
    assert current_keys(store, "ACME") == ["SEC-1"]
    with store.read() as conn:
        gaps = reconcile.gaps(conn, "ACME", now=store.now())
    assert gaps.counts["orphan_tickets"] == 0 and gaps.counts["tickets_without_id"] == 0
    [imported] = [e for e in events(store, "ticket_import") if e["engagement"] == "ACME"]
    assert imported["data"]["out_of_scope"] == 2 and imported["outcome"] == "success"
    assert not [e for e in events(store, "orphan_ticket_seen") if e["engagement"] == "ACME"]

    # The same shared export read by GLOBEX: its own ticket linked, ACME's left out, OPS-3 its orphan.
    other = globex_exports.ingest("jira", *shared)
    assert (other.tickets, other.out_of_scope, other.orphans, other.linked) == (2, 1, 1, 1)
    assert current_keys(store, "GLOBEX") == ["OPS-2", "OPS-3"]
    with store.read() as conn:
        assert reconcile.gaps(conn, "GLOBEX", now=store.now()).ids["orphan_tickets"] == ["OPS-3"]


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("sec-4", True),  # the same project in another case
        ("SEC2-4", False),  # a look-alike project: a prefix is not the project
        ("SECURITY-4", False),
        ("XSEC-4", False),
    ],
)
def test_a_project_is_compared_whole_ignoring_case(store, two, key, kept):
    acme, _, acme_exports, _ = two
    result = acme_exports.ingest("jira", ticket("jira", 4, [acme], key=key))
    assert (result.tickets, result.out_of_scope) == ((1, 0) if kept else (0, 1))


def test_a_policy_naming_its_project_with_space_and_case_reads_the_project(store, tmp_path):
    engagements.init(store, "ACME", scoped_policy(tmp_path, "acme", "{jira_projects: [' sec ']}"), actor=ACTOR)
    [fid] = add_findings(store, "ACME")
    result = Exports(store, "ACME", tmp_path).ingest(
        "jira", ticket("jira", 1, [fid]), ticket("jira", 2, [fid], key="OPS-2")
    )
    assert (result.tickets, result.out_of_scope, result.linked) == (1, 1, 1)


def test_labels_and_repositories_together_for_github(store, tmp_path):
    policy = scoped_policy(tmp_path, "acme", "{github_repos: [Example/Shop], labels: [team-acme]}")
    engagements.init(store, "ACME", policy, actor=ACTOR)
    [fid] = add_findings(store, "ACME")
    rows = [
        ticket("github", 1, [fid], labels=[fid, "team-acme"]),  # repo differs only by case: the same repository
        ticket("github", 2, [fid], labels=[fid, "team-globex"]),  # our repository, another team's label
        ticket("github", 3, [fid], labels=[fid, "team-acme"], key="example/shop-fork#3"),
    ]
    result = Exports(store, "ACME", tmp_path).ingest("github", *rows)
    assert (result.tickets, result.out_of_scope) == (1, 2)
    assert current_keys(store, "ACME") == ["example/shop#1"]


def test_servicenow_records_are_checked_against_the_scope_query(store, tmp_path):
    policy = scoped_policy(tmp_path, "acme", "{servicenow_query: 'u_engagement=ACME'}")
    engagements.init(store, "ACME", policy, actor=ACTOR)
    [fid] = add_findings(store, "ACME")
    records = [
        {
            "number": "INC0000001",
            "state": "1",
            "short_description": f"[{fid}]",
            "u_finding_id": fid,
            "u_engagement": " acme ",
        },
        {
            "number": "INC0000002",
            "state": "1",
            "short_description": f"[{fid}]",
            "u_finding_id": fid,
            "u_engagement": "GLOBEX",
        },
        {"number": "INC0000003", "state": "1", "short_description": f"[{fid}]", "u_finding_id": fid},
    ]
    path = tmp_path / "incidents.json"
    path.write_text(json.dumps({"result": records}), encoding="utf-8")
    [result] = snapshots.ingest_tickets(store, "ACME", [path], system="servicenow", actor=ACTOR)
    assert (result.status, result.tickets, result.out_of_scope) == ("ok", 1, 2)


def test_a_system_the_scope_does_not_name_is_read_whole(store, two):
    acme, _, acme_exports, _ = two
    result = acme_exports.ingest("github", ticket("github", 1, [acme], key="anyone/any#1"))
    assert (result.tickets, result.out_of_scope) == (1, 0)


def test_the_cli_reports_the_tickets_left_out(store, two, tmp_path):
    acme, globex, acme_exports, _ = two
    path = acme_exports.write("jira", [ticket("jira", 1, [acme]), ticket("jira", 2, [globex], key="OPS-2")])
    out = CliRunner().invoke(
        cli, ["--db", store.url, "ingest", "tickets", str(path), "--system", "jira", "-e", "ACME", "--actor", ACTOR]
    )
    assert out.exit_code == 0, out.output
    header, row = out.stdout.splitlines()[0], out.stdout.splitlines()[2]
    assert "out_of_scope" in header and row.split()[header.split().index("out_of_scope")] == "1"


# ------------------------------------------------------------------------------------------- the policy


def test_a_policy_without_a_scope_stores_the_same_bytes():
    policy = load_policy(DATA / "policy.yaml")
    assert "scope" not in policy.document()["ticket_payload"]
    assert policy.sha256() == parse_policy(BASE, "again").sha256()


def test_a_scope_is_stored_and_read_back(tmp_path):
    policy = load_policy(scoped_policy(tmp_path, "p", "{jira_projects: [SEC], labels: [acme]}"))
    assert policy.document()["ticket_payload"]["scope"]["jira_projects"] == ["SEC"]


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("{jira_project: [SEC]}", "did you mean 'jira_projects'"),
        ("{github_repos: [shop]}", "expected OWNER/REPO"),
        ("{servicenow_query: 'assignment_group=AppSec'}", "expected u_FIELD=VALUE"),
        ("{labels: ['  ']}", "an empty name"),
    ],
)
def test_a_wrong_scope_is_refused_at_its_line(tmp_path, scope, message):
    with pytest.raises(ConfigError, match=message) as raised:
        load_policy(scoped_policy(tmp_path, "p", scope))
    assert ":12:" in str(raised.value) and "ticket_payload.scope" in str(raised.value)


def test_the_scope_holds_per_system():
    scope = TicketScope(jira_projects=["SEC"], labels=["acme"])
    jira = TicketSnapshot("jira", "SEC-1", "t", "Open", "todo", labels=("ACME",))
    assert scope.holds(jira)
    assert not scope.holds(TicketSnapshot("jira", "SEC-1", "t", "Open", "todo", labels=("globex",)))
    assert not scope.holds(TicketSnapshot("jira", "OPS-1", "t", "Open", "todo", labels=("acme",)))
    assert scope.holds(TicketSnapshot("servicenow", "INC1", "t", "New", "todo"))


# ----------------------------------------------------------------------------------------------- sync


@pytest.mark.corpus
def test_a_sync_asks_for_the_scope_and_leaves_out_what_else_comes_back(store, two, httpserver, tmp_path):
    acme, globex, _, _ = two
    creds = tmp_path / "creds.yaml"
    creds.write_text("user: ana@example.test\ntoken: t0ken\n")
    base = httpserver.url_for("").rstrip("/")
    issues = [jira_issue(1, [acme], base=base), jira_issue(2, [globex], base=base)]
    issues[1]["key"] = "OPS-2"  # a server answering more than the JQL asked: still left out
    tracker = jira_cloud(httpserver, issues, size=10)

    result = sync_tickets(store, "ACME", "jira", Settings(url=base, credentials=creds), actor=ACTOR)

    assert tracker.seen[0].args["jql"] == 'project in ("SEC") ORDER BY key ASC'
    assert (result["tickets"], result["out_of_scope"], result["orphans"]) == (1, 1, 0)
    assert current_keys(store, "ACME") == ["SEC-1"]

    # ServiceNow: the scope's query goes with the parameters' query.
    policy = scoped_policy(tmp_path, "initech", "{servicenow_query: 'u_engagement=INITECH'}")
    engagements.init(store, "INITECH", policy, actor=ACTOR)
    httpserver.clear()
    table = Tracker(httpserver, "/api/now/table/incident")
    ours = servicenow_record(2, acme) | {"u_engagement": {"display_value": "Initech", "value": "INITECH"}}
    table.pages = [json_response({"result": [servicenow_record(1, acme), ours]})]
    result = sync_tickets(
        store, "INITECH", "servicenow", Settings(url=base, credentials=creds, query="active=true"), actor=ACTOR
    )
    assert table.seen[0].args["sysparm_query"] == "u_engagement=INITECH^active=true^ORDERBYnumber"
    assert (result["tickets"], result["out_of_scope"]) == (1, 1)  # INC0000001 carries no u_engagement
    assert current_keys(store, "INITECH") == ["INC0000002"]
