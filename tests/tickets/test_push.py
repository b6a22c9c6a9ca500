"""Push to the trackers' APIs (a ticket system on 127.0.0.1 that keeps what it is sent): dry run by
default, never a ticket twice — also when a push stops halfway — links both ways, and updates that
carry only severity, due date and KEV."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import select, update
from werkzeug import Response

from handoffkit.cli import cli
from handoffkit.errors import RemoteError
from handoffkit.record import schema
from handoffkit.record.store import Store
from handoffkit.tickets.connection import Settings
from handoffkit.tickets.push import push
from handoffkit.workflow import calibration
from tests.builders import ACTOR, events, route, snapshot
from tests.tickets.trackers import CANARY, Desk

pytestmark = pytest.mark.corpus
SYSTEMS = ["jira", "github", "servicenow"]


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    path = tmp_path / "credentials.yaml"
    path.write_text(f"token: {CANARY}\n")
    return path


def settings(server: HTTPServer, creds: Path, **kw) -> Settings:
    return Settings(url=server.url_for("").rstrip("/"), credentials=creds, repo="o/r", backoff=0.01, **kw)


def links_of(store: Store, system: str) -> list[tuple[str, str, str]]:
    lk = schema.links.c
    with store.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(lk.finding_id, lk.ticket_key, lk.origin)
                .where(lk.system == system, lk.active)
                .order_by(lk.finding_id)
            )
        ]


def test_a_dry_run_plans_and_writes_nothing(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path
) -> None:
    desk = Desk(httpserver, "jira")
    before = snapshot(store)
    result = push(store, "ACME", "jira", settings(httpserver, creds), actor=ACTOR)
    assert [(s["finding_id"], s["action"]) for s in result["steps"]] == [(f, "create") for f in routed]
    assert result["applied"] is False and desk.creates == 0 and desk.updates == []
    assert snapshot(store) == before


@pytest.mark.parametrize("system", SYSTEMS)
def test_apply_creates_once_and_links_both_ways(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, system: str
) -> None:
    desk = Desk(httpserver, system)
    s = settings(httpserver, creds)
    result = push(store, "ACME", system, s, actor=ACTOR, apply=True)

    assert result["counts"] == {"create": 2}
    keys = [desk.created(f) for f in routed]
    assert all(len(k) == 1 for k in keys)
    assert links_of(store, system) == [(f, k[0], "push") for f, k in zip(routed, keys, strict=True)]
    created = events(store, "ticket_created")
    assert [(e["finding_id"], e["ticket_key"]) for e in created] == [
        (f, k[0]) for f, k in zip(routed, keys, strict=True)
    ]
    assert created[0]["data"]["pushed"]["severity"] == "high"
    assert {e["finding_id"] for e in events(store, "link_added")} == set(routed)
    # The other way: the ticket carries the finding id and the permalink to the record.
    body = str(desk.tickets[0]["body"])
    assert routed[0] in body and f"https://record.test/ACME/findings/{routed[0]}" in body

    again = push(store, "ACME", system, s, actor=ACTOR, apply=True)
    assert again["counts"] == {"up_to_date": 2} and desk.creates == 2


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_push_stopped_halfway_then_rerun_creates_no_duplicate(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, system: str
) -> None:
    desk = Desk(httpserver, system)
    desk.fail_create[1] = Response("boom", status=500)
    s = settings(httpserver, creds)
    with pytest.raises(RemoteError, match=rf"^{system}: POST .*: HTTP 500"):
        push(store, "ACME", system, s, actor=ACTOR, apply=True)
    assert [len(desk.created(f)) for f in routed] == [1, 0]
    assert len(links_of(store, system)) == 1
    [refused] = events(store, "push_refused")
    assert refused["outcome"] == "failure" and [d["finding_id"] for d in refused["data"]["done"]] == [routed[0]]

    result = push(store, "ACME", system, s, actor=ACTOR, apply=True)
    assert sorted(st["action"] for st in result["steps"]) == ["create", "up_to_date"]
    assert [len(desk.created(f)) for f in routed] == [1, 1]
    assert len(links_of(store, system)) == 2


@pytest.mark.slow  # waits in real time (Retry-After, a rate-limit reset or a client timeout)
@pytest.mark.parametrize("system", SYSTEMS)
def test_a_ticket_made_but_never_acknowledged_is_found_not_made_again(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, system: str
) -> None:
    """The system acts on the create, but the answer comes after the client gave up: no link is
    recorded, the POST is not retried, and the next push finds the ticket by its finding id."""
    desk = Desk(httpserver, system, act_then_hang={0}, hang=1.0)
    with pytest.raises(RemoteError, match="not retried, the server may have acted on it"):
        push(store, "ACME", system, settings(httpserver, creds, timeout=0.3), actor=ACTOR, apply=True)
    assert desk.creates == 1 and links_of(store, system) == []

    result = push(store, "ACME", system, settings(httpserver, creds), actor=ACTOR, apply=True)
    assert [(st["finding_id"], st["action"]) for st in result["steps"]] == [(routed[0], "link"), (routed[1], "create")]
    assert [len(desk.created(f)) for f in routed] == [1, 1]
    assert [o for _, _, o in links_of(store, system)] == ["push", "push"]
    assert events(store, "ticket_found")[0]["ticket_key"] == desk.created(routed[0])[0]


@pytest.mark.parametrize("system", SYSTEMS)
def test_severity_due_date_and_kev_changes_are_sent_alone(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, system: str
) -> None:
    desk = Desk(httpserver, system)
    s = settings(httpserver, creds)
    push(store, "ACME", system, s, actor=ACTOR, apply=True)
    calibration.calibrate(store, routed[0], severity="critical", reason="internet-facing", actor=ACTOR)
    route(store)
    with store.write() as conn:  # the KEV flag as a catalog load sets it
        conn.execute(update(schema.findings).where(schema.findings.c.finding_id == routed[0]).values(kev=True))

    plan = push(store, "ACME", system, s, actor=ACTOR)
    [step] = [st for st in plan["steps"] if st["action"] == "update"]
    assert set(step["changes"]) == {"severity", "due_date", "kev"}
    assert step["changes"]["severity"] == ["high", "critical"]
    assert desk.updates == []  # a dry run sends nothing

    push(store, "ACME", system, s, actor=ACTOR, apply=True)
    sent = " ".join(str(body) for _, _, body in desk.updates)
    for owned_by_engineering in ("status", "assignee", "assigned_to", "state"):
        assert f"'{owned_by_engineering}'" not in sent
    if system == "jira":
        [(method, path, body)] = desk.updates
        assert method == "PUT" and set(body["fields"]) == {"priority", "duedate"}
        assert body["fields"]["priority"] == {"name": "Highest"}
        assert {"add": "kev"} in body["update"]["labels"] and {"remove": "severity-high"} in body["update"]["labels"]
    elif system == "servicenow":
        [(method, path, body)] = desk.updates
        assert method == "PATCH" and set(body) == {"priority", "due_date", "u_kev"} and body["u_kev"] == "true"
        assert path.endswith(desk.tickets[0]["id"])
    else:
        methods = sorted(m for m, _, _ in desk.updates)
        assert methods == ["DELETE", "POST", "POST"]  # add labels, drop the old severity label, a due-date comment
    [updated] = events(store, "ticket_updated")
    assert updated["finding_id"] == routed[0] and updated["data"]["pushed"]["kev"] is True
    assert push(store, "ACME", system, s, actor=ACTOR)["counts"] == {"up_to_date": 2}


def test_a_ticket_linked_by_export_is_adopted_not_updated(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, exports
) -> None:
    from tests.builders import ticket

    exports.ingest("jira", ticket("jira", 7, [routed[0]]))
    desk = Desk(httpserver, "jira")
    result = push(store, "ACME", "jira", settings(httpserver, creds), actor=ACTOR, apply=True)
    assert sorted((st["finding_id"], st["action"]) for st in result["steps"]) == [
        (routed[0], "adopt"),
        (routed[1], "create"),
    ]
    assert desk.updates == [] and desk.created(routed[0]) == []


def test_the_cli_prints_the_plan(store: Store, routed: list[str], httpserver: HTTPServer, creds: Path) -> None:
    Desk(httpserver, "github")
    result = CliRunner().invoke(
        cli,
        ["--db", store.url, "push", "-e", "ACME", "--target", "github", "--url", httpserver.url_for("").rstrip("/"),
         "--credentials", str(creds), "--actor", ACTOR],
    )  # fmt: skip
    assert result.exit_code == 2  # GitHub needs the repository: a parameters file names it
    params = creds.parent / "trackers.yaml"
    params.write_text(
        f"github:\n  url: {httpserver.url_for('').rstrip('/')}\n  repo: o/r\n  credentials: {creds.name}\n"
    )
    result = CliRunner().invoke(
        cli, ["--db", store.url, "push", "-e", "ACME", "--target", "github", "--params", str(params), "--actor", ACTOR]
    )
    assert result.exit_code == 0, result.output
    assert "create" in result.output and "planned (dry run; --apply to write)" in result.output
    assert CANARY not in result.output
