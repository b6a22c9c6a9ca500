"""Ticket export ingest: the real corpus bodies, orphans, repeated Jira CSV headers, DefectDojo mappings,
manual links and bad exports (issue 5, "Ticket export ingest")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handoffkit import reconcile
from handoffkit.cli import cli
from handoffkit.errors import NotFoundError, RefusedError
from handoffkit.record import schema
from handoffkit.tickets import links, snapshots
from tests.builders import ACTOR, DATA, DONE, corpus_path, events, finding, route, snapshot, ticket, validate

DOJO = DATA / "governance"


def current_tickets(store) -> dict[str, dict]:
    t = schema.tickets.c
    with store.read() as conn:
        return {r.key: dict(r._mapping) for r in conn.execute(select(schema.tickets).where(t.current))}


def ingest_cli(store, system: str, *files: Path) -> tuple[int, list[dict], str]:
    out = CliRunner().invoke(
        cli,
        [
            "--db",
            store.url,
            "ingest",
            "tickets",
            *map(str, files),
            "--system",
            system,
            "-e",
            "ACME",
            "--actor",
            ACTOR,
            "--format",
            "json",
        ],
    )
    text = out.stdout
    return out.exit_code, json.loads(text[text.index("{") : text.rindex("}") + 1])["files"], out.output


# ------------------------------------------------------------------------------------------- corpus

# key → (status, category, priority, resolution, labels): what corpus/SOURCES.md and the bodies hold
JIRA_BODIES = {
    "NTEST-3187": ("Backlog", "todo", "High", None, ""),
    "NTEST-3079": ("Backlog", "todo", "Medium", None, ""),
    "NTEST-3104": ("Backlog", "todo", "Low", None, ""),
    "NTEST-3077": ("Done", "done", "Low", "Done", ""),
    "NTEST-3169": ("Backlog", "todo", "Low", None, "tag1 tag2 tag3 tag4"),
}


@pytest.mark.corpus
def test_real_jira_issue_bodies_ingest_with_the_right_count_and_fields(store, engagement):
    files = sorted(corpus_path("jira").glob("jira_issue_*.json"))
    assert len(files) == 5

    code, results, output = ingest_cli(store, "jira", *files)

    assert code == 0, output
    assert [(r["status"], r["format"], r["tickets"]) for r in results] == [("ok", "jira-rest-issue", 1)] * 5
    got = current_tickets(store)
    assert {
        k: (t["status"], t["status_category"], t["priority"], t["resolution"], t["labels"]) for k, t in got.items()
    } == JIRA_BODIES
    assert all(t["url"] == f"https://defectdojo.atlassian.net/browse/{k}" and t["title"] for k, t in got.items())
    # none of them carries a handoffkit finding id: each is an orphan without an id, never linked
    assert sum(r["orphans"] for r in results) == 5 and snapshot(store)["links"] == 0
    with store.read() as conn:
        gaps = reconcile.gaps(conn, "ACME", now=store.now())
    assert sorted(gaps.ids["tickets_without_id"]) == sorted(JIRA_BODIES)


_ISSUES_PATH = re.compile(r"/issues(?:/\d+)?$")


def _octokit_bodies(name: str, tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Each recorded response body as a file: (issue responses, other responses)."""
    recorded = json.loads(corpus_path(f"github_issues/{name}").read_text(encoding="utf-8"))
    issues, other = [], []
    for i, r in enumerate(recorded):
        path = tmp_path / f"{Path(name).stem}-{i}.json"
        path.write_text(json.dumps(r["response"]), encoding="utf-8")
        (issues if _ISSUES_PATH.search(r["path"].split("?")[0]) else other).append(path)
    return issues, other


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "repo", "count"),
    [
        ("paginate-issues_normalized-fixture.json", "octokit-fixture-org/paginate-issues", 13),
        ("add-labels-to-issue_normalized-fixture.json", "octokit-fixture-org/add-labels-to-issue", 1),
    ],
)
def test_real_github_responses_ingest_with_the_right_count_and_fields(store, engagement, tmp_path, name, repo, count):
    issues, _ = _octokit_bodies(name, tmp_path)

    code, results, output = ingest_cli(store, "github", *issues)

    assert code == 0, output
    assert sum(r["tickets"] for r in results) == count
    got = current_tickets(store)
    assert len(got) == count and all(k.startswith(f"{repo}#") for k in got)
    numbers = sorted(int(k.rsplit("#", 1)[1]) for k in got)
    if count == 13:
        assert numbers == list(range(1, 14))
        assert {got[f"{repo}#{n}"]["title"] for n in (1, 13)} == {"Test issue 1", "Test issue 13"}
    else:
        assert got[f"{repo}#1"]["title"] == "Issue without a label"
    assert {(t["status"], t["status_category"]) for t in got.values()} == {("open", "todo")}


@pytest.mark.corpus
def test_a_real_non_issue_response_is_refused_naming_the_file_and_place(store, engagement, tmp_path):
    _, [labels] = _octokit_bodies("add-labels-to-issue_normalized-fixture.json", tmp_path)
    before = snapshot(store)
    [result] = snapshots.ingest_tickets(store, "ACME", [labels], system="github", actor=ACTOR)
    assert result.status == "failed" and f"{labels}:$[0]: expected a GitHub issue object" in result.error
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
        k: v for k, v in before.items() if k not in ("events", "chain_head")
    }
    assert after["events"] == before["events"] + 1


# ------------------------------------------------------------------------------------ orphans, labels


def test_orphan_tickets(store, routed, exports):
    result = exports.ingest(
        "jira",
        ticket("jira", 1, ["HK-999"]),
        ticket("jira", 2, [], title="Harden nginx"),
        ticket("jira", 3, [routed[0]]),
    )
    assert (result.tickets, result.orphans, result.linked) == (3, 2, 1)
    assert [(e["ticket_key"], e["data"]["unknown"]) for e in events(store, "orphan_ticket_seen")] == [
        ("SEC-1", ["HK-999"]),
        ("SEC-2", []),
    ]
    assert [(lk[0], lk[1]) for lk in _links(store)] == [(routed[0], "SEC-3")]
    with store.read() as conn:
        gaps = reconcile.gaps(conn, "ACME", now=store.now())
    assert (gaps.ids["orphan_tickets"], gaps.ids["tickets_without_id"]) == (["SEC-1"], ["SEC-2"])

    exports.ingest("jira", ticket("jira", 1, ["HK-999"]), ticket("jira", 2, [], title="Harden nginx"))
    assert len(events(store, "orphan_ticket_seen")) == 2  # seen again unchanged: not a new observation


def test_repeated_jira_csv_label_columns_are_merged_not_dropped(store, routed, exports):
    fid = routed[0]
    # The id only in the third `Labels` column: no token, no custom field.
    row = ticket(
        "jira",
        7,
        [fid],
        labels=["security", "team-payments", fid],
        with_token=False,
        finding_field=False,
        title="Upgrade the ORM",
    )
    path = exports.write("jira", [row])
    assert path.read_bytes().startswith("\ufeff".encode()) and path.read_text("utf-8-sig").count("Labels,") == 3

    [result] = snapshots.ingest_tickets(store, "ACME", [path], system="jira", actor=ACTOR)

    assert (result.status, result.linked, result.orphans) == ("ok", 1, 0)
    assert current_tickets(store)["SEC-7"]["labels"] == f"{fid} security team-payments"
    assert current_tickets(store)["SEC-7"]["finding_ids"] == fid


def _links(store) -> list[tuple]:
    lk = schema.links.c
    with store.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(lk.finding_id, lk.ticket_key, lk.origin, lk.active, lk.system).order_by(
                    lk.finding_id, lk.ticket_key
                )
            )
        ]


# ---------------------------------------------------------------------------------------- DefectDojo


def _dojo(store, rec) -> dict[str, str]:
    rec.ingest("dojo-findings.json", (DOJO / "defectdojo_findings.json").read_bytes())
    f = schema.findings.c
    with store.read() as conn:
        by_external = dict(conn.execute(select(f.external_id, f.finding_id)).all())
    validate(store, by_external.values())
    route(store)
    [result] = snapshots.ingest_tickets(
        store, "ACME", [DOJO / "defectdojo_jira_mappings.json"], system="defectdojo", actor=ACTOR
    )
    assert result.status == "ok", result.error
    assert (result.format, result.tickets, result.linked) == ("defectdojo-jira-mappings", 3, 2)
    assert {s["reason"]: s["count"] for s in result.skipped} == {"engagement": 1, "unknown_defectdojo_finding": 1}
    return by_external


def test_defectdojo_jira_mappings_become_links(store, rec):
    ids = _dojo(store, rec)
    assert _links(store) == sorted(
        [(ids["236"], "NTEST-3077", "defectdojo", True, "jira"), (ids["241"], "NTEST-3104", "defectdojo", True, "jira")]
    )
    added = events(store, "link_added")
    assert {(e["finding_id"], e["ticket_key"], e["data"]["origin"]) for e in added} == {
        (ids["236"], "NTEST-3077", "defectdojo"),
        (ids["241"], "NTEST-3104", "defectdojo"),
    }
    assert [e["data"]["note"] for e in added if e["finding_id"] == ids["236"]] == ["DefectDojo finding 236"]
    # loading the same mappings again adds nothing
    snapshots.ingest_tickets(store, "ACME", [DOJO / "defectdojo_jira_mappings.json"], system="defectdojo", actor=ACTOR)
    assert len(events(store, "link_added")) == 2


@pytest.mark.corpus
def test_a_defectdojo_programme_reconciles_against_its_real_jira_issues(store, rec):
    ids = _dojo(store, rec)
    bodies = [corpus_path(f"jira/jira_issue_{key}.json") for key in ("NTEST-3077_done", "NTEST-3104_comments")]

    [done, backlog] = snapshots.ingest_tickets(store, "ACME", bodies, system="jira", actor=ACTOR)

    assert (done.status, backlog.status) == ("ok", "ok")
    # NTEST-3077 is Done: its DefectDojo-linked finding awaits verification, no further
    assert finding(store, ids["236"])["state"] == "awaiting_verification"
    # both issues are Low in Jira; the record says high and medium and keeps saying so
    drift = {
        (e["finding_id"], e["ticket_key"], e["data"]["ticket_band"], e["data"]["record_severity"])
        for e in events(store, "severity_drift_observed")
    }
    assert drift == {(ids["236"], "NTEST-3077", "low", "high"), (ids["241"], "NTEST-3104", "low", "medium")}
    assert (finding(store, ids["236"])["severity"], finding(store, ids["241"])["severity"]) == ("high", "medium")
    with store.read() as conn:
        gaps = reconcile.gaps(conn, "ACME", now=store.now())
    assert gaps.ids["closure_misses"] == [ids["236"]]
    assert gaps.ids["severity_drift"] == sorted([ids["236"], ids["241"]], key=lambda f: int(f[3:]))


# -------------------------------------------------------------------------------------- manual links


def test_link_and_unlink_by_hand(store, routed, exports):
    fid = routed[0]
    out = links.link(store, fid, "SEC-42", system="jira", actor=ACTOR, note="raised without the id")
    assert out == {"finding_id": fid, "system": "jira", "ticket_key": "SEC-42", "active": True}
    assert _links(store) == [(fid, "SEC-42", "manual", True, "jira")]
    [added] = events(store, "link_added")
    assert (added["actor"], added["data"]["origin"]) == (ACTOR, "manual")
    assert added["data"]["note"] == "raised without the id"

    before = snapshot(store)
    with pytest.raises(RefusedError, match="already linked"):
        links.link(store, fid, "SEC-42", system="jira", actor=ACTOR)
    with pytest.raises(RefusedError, match="--system 'redmine'"):
        links.link(store, fid, "RM-1", system="redmine", actor=ACTOR)
    with pytest.raises(NotFoundError):
        links.link(store, "HK-9999", "SEC-1", system="jira", actor=ACTOR)
    assert snapshot(store)["links"] == before["links"]
    assert len(events(store, "link_added", outcome="denied")) == 2

    # the manually linked ticket, exported without the id, still carries its closure to the finding
    exports.ingest("jira", ticket("jira", 42, [], title="Fix the login") | DONE)
    assert finding(store, fid)["state"] == "awaiting_verification"

    links.unlink(store, fid, "SEC-42", system="jira", actor=ACTOR, reason="wrong ticket")
    assert _links(store) == [(fid, "SEC-42", "manual", False, "jira")]  # the row and its history stay
    [removed] = events(store, "link_removed", outcome="success")
    assert removed["data"]["reason"] == "wrong ticket"
    with pytest.raises(RefusedError, match="no active link"):
        links.unlink(store, fid, "SEC-42", system="jira", actor=ACTOR)


def test_link_cli(store, routed):
    runner = CliRunner()
    base = ["--db", store.url, "--format", "json"]
    ok = runner.invoke(cli, [*base, "link", routed[1], "example/shop#5", "--system", "github", "--actor", ACTOR])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["active"] is True
    again = runner.invoke(cli, [*base, "link", routed[1], "example/shop#5", "--system", "github", "--actor", ACTOR])
    assert again.exit_code == 5 and "already linked" in again.output
    gone = runner.invoke(cli, [*base, "unlink", routed[1], "example/shop#5", "--system", "github", "--actor", ACTOR])
    assert gone.exit_code == 0 and json.loads(gone.output)["active"] is False
    unknown = runner.invoke(cli, [*base, "link", "HK-404", "SEC-1", "--system", "jira", "--actor", ACTOR])
    assert unknown.exit_code == 4 and "HK-404" in unknown.output


# --------------------------------------------------------------------------------------- bad exports

BAD = {
    "no-issue-key": ("jira", b"Summary,Status\nFix it,Open\n", "line 1: no `Issue key` column"),
    "empty-key": ("jira", b"Summary,Issue key,Status\nA,SEC-1,Open\nB,,Open\n", "line 3: empty `Issue key`"),
    "truncated": ("github", b'[{"number": 1, "title": "x", "state": "open"', "1:45: invalid JSON"),
    "bad-state": (
        "github",
        b'[{"number": 1, "title": "a", "state": "open"}, {"number": 2, "title": "b", "state": "merged"}]',
        "$[1].state: state 'merged'",
    ),
    "wrong-system": ("jira", b'{"result": [{"number": "INC1", "state": "1"}]}', "expected a Jira export"),
    "not-utf8": ("servicenow", b"number,state\nINC1,\xff\xfe\xfa\n", "byte 18: not valid UTF-8"),
}


def test_a_bad_export_is_refused_with_file_and_place_and_nothing_half_loaded(store, routed, exports, tmp_path):
    exports.ingest("jira", ticket("jira", 1, [routed[0]]))
    for case, (system, data, place) in BAD.items():
        bad = tmp_path / f"bad-{case}.export"
        bad.write_bytes(data)
        before = snapshot(store)

        [failed] = snapshots.ingest_tickets(store, "ACME", [bad], system=system, actor=ACTOR)

        assert failed.status == "failed", case
        assert failed.error.startswith(str(bad)) and place in failed.error, failed.error
        refusal = events(store)[-1]
        assert (refusal["type"], refusal["outcome"], refusal["data"]["file"], refusal["data"]["system"]) == (
            "ticket_import_refused",
            "failure",
            str(bad),
            system,
        )
        after = snapshot(store)
        assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
            k: v for k, v in before.items() if k not in ("events", "chain_head")
        }, case
        assert after["events"] == before["events"] + 1


def test_one_bad_file_does_not_stop_the_good_ones(store, routed, exports, tmp_path):
    good = exports.write("jira", [ticket("jira", 1, [routed[0]])])
    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD["empty-key"][1])
    [failed, ok] = snapshots.ingest_tickets(store, "ACME", [bad, good], system="jira", actor=ACTOR)
    assert (failed.status, ok.status, ok.linked) == ("failed", "ok", 1)
    assert list(current_tickets(store)) == ["SEC-1"]  # nothing of the bad file (its SEC-1 row) half-loaded
    assert current_tickets(store)["SEC-1"]["title"] == f"[{routed[0]}] Fix it"


def test_bad_export_cli_exits_non_zero_and_loads_nothing(store, routed, tmp_path):
    bad = tmp_path / "export.csv"
    bad.write_bytes(b"Summary,Issue key,Status\nA,SEC-1,Open\nB,,Open\n")
    before = snapshot(store)
    code, [result], _ = ingest_cli(store, "jira", bad)
    assert code == 3 and result["status"] == "failed" and f"{bad}:line 3" in result["error"]
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
        k: v for k, v in before.items() if k not in ("events", "chain_head")
    }
    assert after["events"] == before["events"] + 1
