"""Sync from the trackers' APIs: a local server on 127.0.0.1 answers with the corpus's real payloads.

One snapshot or nothing, the same events as a file export, the request trail in the events' origin,
retries that honour the server, and credentials that never show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select

from handoffkit.cli import cli
from handoffkit.errors import InputError, RemoteError
from handoffkit.record import engagements, schema
from handoffkit.record.canonical import sha256_bytes
from handoffkit.record.store import Store
from handoffkit.tickets import snapshots
from handoffkit.tickets.connection import Settings, open_client
from handoffkit.tickets.sync import sync_tickets
from tests.builders import ACTOR, DATA, events, finding, snapshot
from tests.tickets.trackers import (
    CANARY,
    FINDING_FIELD,
    Tracker,
    github_pages,
    jira_cloud,
    jira_issue,
    json_response,
    servicenow_record,
)

pytestmark = pytest.mark.corpus


@pytest.fixture
def engagement(store: Store, tmp_path: Path) -> str:
    """ACME with the test policy plus the Jira custom field that carries the finding id."""
    policy = (
        (DATA / "policy.yaml")
        .read_text()
        .replace('custom_field: "Finding ID"', f'custom_field: "Finding ID"\n  jira_finding_field_id: {FINDING_FIELD}')
    )
    (tmp_path / "policy.yaml").write_text(policy)
    engagements.init(store, "ACME", tmp_path / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    return "ACME"


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    path = tmp_path / "jira-credentials.yaml"
    path.write_text(f"user: ana@example.test\ntoken: {CANARY}\n")
    return path


def settings(url: str, creds: Path, **kw) -> Settings:
    return Settings(url=url, credentials=creds, **{"backoff": 0.01, **kw})


def sync(store: Store, system: str, s: Settings, **kw) -> dict:
    return sync_tickets(store, "ACME", system, s, actor=ACTOR, **kw)


class Told:
    """A sync's progress as a bar sees it: each message, each total it was given, the pages counted."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.totals: list[int] = []
        self.done = 0

    def __call__(self, message: str) -> None:
        self.messages.append(message)

    def expect(self, total: int) -> None:
        self.totals.append(total)

    def advance(self, units: int = 1) -> None:
        self.done += units


def counts(store: Store) -> tuple[int, int]:
    with store.read() as conn:
        imports = conn.execute(select(func.count()).select_from(schema.ticket_imports)).scalar()
        tickets = conn.execute(select(func.count()).select_from(schema.tickets)).scalar()
    return imports, tickets


# ---------------------------------------------------------------------------------------------- Jira


def test_jira_cloud_pages_become_one_snapshot_with_the_request_trail(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    issues = [jira_issue(n, [routed[n % 2]] if n < 4 else [], base=base, sample=n) for n in range(1, 8)]
    tracker = jira_cloud(httpserver, issues, size=3)

    told = Told()
    result = sync(store, "jira", settings(base, creds), progress=told)

    assert (result["tickets"], result["pages"], result["requests"]) == (7, 3, 3)
    assert told.done == 3 and told.totals == [] and told.messages[-1] == "jira: page 3"  # Cloud gives no total
    assert result["orphans"] == 4 and result["linked"] == 3
    assert [r.args.get("nextPageToken") for r in tracker.seen] == [None, "token-1", "token-2"]
    asked = tracker.seen[0].args
    assert asked["jql"] == 'project = "SEC" ORDER BY key ASC'
    assert FINDING_FIELD in asked["fields"].split(",")
    seen = events(store, "ticket_seen")
    assert len(seen) == 7
    origin = seen[0]["origin"]
    bodies = [p.get_data() for p in tracker.pages]
    assert origin["file"] == base and origin["query"]["jql"] == asked["jql"]
    assert origin["responses"] == [sha256_bytes(b) for b in bodies]
    assert origin["sha256"] == sha256_bytes("\n".join(origin["responses"]).encode())
    assert counts(store) == (1, 7)
    # The custom field is read under the policy's name: an issue carrying the id only there links too.
    assert {e["ticket_key"] for e in events(store, "link_added")} == {"SEC-1", "SEC-2", "SEC-3"}


def test_the_custom_field_alone_carries_the_finding_id(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    issue = jira_issue(1, [routed[0]], base=base, labels=[], summary="No token here")
    jira_cloud(httpserver, [issue], size=10)
    assert sync(store, "jira", settings(base, creds))["linked"] == 1


def test_jira_data_center_pages_by_start_at(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    issues = [jira_issue(n, [routed[0]], base=base, sample=n) for n in range(1, 6)]
    tracker = Tracker(httpserver, "/rest/api/2/search")
    for start in range(0, 5, 2):
        tracker.pages.append(
            json_response({"startAt": start, "maxResults": 2, "total": 5, "issues": issues[start : start + 2]})
        )

    told = Told()
    result = sync(store, "jira", settings(base, creds, deployment="datacenter", page_size=2), progress=told)

    assert [r.args["startAt"] for r in tracker.seen] == ["0", "2", "4"]
    assert (told.totals, told.done, told.messages[0]) == ([3, 3, 3], 3, "jira: page 1 of 3")  # total 5, 2 a page
    assert (result["tickets"], result["requests"]) == (5, 3)
    assert tracker.seen[0].headers["Authorization"] == f"Bearer {CANARY}"  # a Data Center personal access token


def test_a_second_sync_gives_the_same_events_as_a_file_export(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, tmp_path: Path
) -> None:
    """The same bodies, once synced and once ingested as files, leave the same events in the same order."""
    base = httpserver.url_for("").rstrip("/")
    first = [jira_issue(1, [routed[0]], base=base), jira_issue(2, [routed[1]], base=base)]
    done = json.loads(json.dumps(first))
    done[0]["fields"]["status"] = jira_issue(9, [], base=base, sample=3)["fields"]["status"]  # corpus Done status
    done[1]["fields"]["summary"] = "Renamed by engineering"
    done[1]["fields"]["priority"] = {"name": "Lowest", "id": "5"}
    pages = [{"issues": first, "isLast": True}, {"issues": done, "isLast": True}]
    tracker = Tracker(httpserver, "/rest/api/3/search/jql", pages=[json_response(p) for p in pages])
    history = Tracker(httpserver, "/rest/api/2/issue/SEC-2", pages=[json_response(_with_changelog(done[1], first[1]))])
    for _ in pages:
        sync(store, "jira", settings(base, creds))
    synced = [(e["type"], e["ticket_key"], e["finding_id"]) for e in events(store) if e["ticket_key"]]
    assert ("ticket_closed_observed", "SEC-1", routed[0]) in synced
    assert ("ticket_renamed", "SEC-2", routed[1]) in synced
    assert finding(store, routed[0])["state"] == "awaiting_verification"
    assert len(tracker.seen) == 2
    # Only the edited ticket's changelog is asked for; it says who renamed and re-prioritised, and when.
    assert [r.args["expand"] for r in history.seen] == ["changelog"]
    [renamed] = events(store, "ticket_renamed")
    assert renamed["data"]["changelog"] == [
        {"field": "title", "from": first[1]["fields"]["summary"], "to": "Renamed by engineering",
         "author": "Dev Lead", "at": "2026-03-02T11:00:00.000+0000"},
    ]  # fmt: skip
    drift = [e for e in events(store, "severity_drift_observed") if e["data"].get("changelog")]
    assert [e["data"]["changelog"][0]["to"] for e in drift] == ["Lowest"]
    assert renamed["origin"]["responses"][-1] == sha256_bytes(history.pages[0].get_data())

    other = Store(f"sqlite:///{tmp_path / 'files.db'}", clock=store.clock)
    (tmp_path / "p").mkdir()
    engagements.init(other, "ACME", tmp_path / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    from tests.builders import Record, route, validate

    ids = Record(other, "ACME", tmp_path / "p").web("https://shop.test", ("Routed SQLi", 3), ("Routed XSS", 3))
    validate(other, ids)
    route(other)
    for i, page in enumerate(pages):
        path = tmp_path / f"page{i}.json"
        path.write_text(json.dumps(page))
        [r] = snapshots.ingest_tickets(other, "ACME", [path], system="jira", actor=ACTOR)
        assert r.status == "ok", r.error
    from_files = [(e["type"], e["ticket_key"], e["finding_id"]) for e in events(other) if e["ticket_key"]]
    other.dispose()
    assert synced == from_files


def _with_changelog(issue: dict, before: dict) -> dict:
    """The issue as ``expand=changelog`` returns it: its histories in Jira's documented shape."""
    author = {"displayName": "Dev Lead", "accountId": "5b10a2844c20165700ede21g"}
    items = [
        {
            "field": "summary",
            "fieldtype": "jira",
            "fromString": before["fields"]["summary"],
            "toString": issue["fields"]["summary"],
        },
        {"field": "priority", "fieldtype": "jira", "fromString": "High", "toString": "Lowest"},
        {"field": "labels", "fieldtype": "jira", "fromString": "", "toString": "security"},
    ]
    return issue | {"changelog": {"startAt": 0, "maxResults": 1, "total": 1,
                                  "histories": [{"id": "1", "author": author, "created": "2026-03-02T11:00:00.000+0000",
                                                 "items": items}]}}  # fmt: skip


# -------------------------------------------------------------------------------------------- GitHub


def test_github_follows_the_link_header_through_the_corpus_pages(
    store: Store, engagement: str, httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    recorded = github_pages(base)
    tracker = Tracker(
        httpserver,
        "/repos/octokit-fixture-org/paginate-issues/issues",
        pages=[json_response(recorded[0][0], headers={"Link": recorded[0][1]})],
    )
    rest = Tracker(httpserver, "/repositories/1000/issues")
    rest.pages = [json_response(issues, headers={"Link": link} if link else {}) for issues, link in recorded[1:]]
    rest.page_of = lambda request: int(request.args["page"]) - 2

    told = Told()
    result = sync(
        store, "github", settings(base, creds, repo="octokit-fixture-org/paginate-issues", label="handoffkit"),
        since="2017-10-01T00:00:00Z", progress=told,
    )  # fmt: skip

    assert (result["tickets"], result["requests"], result["orphans"]) == (13, 5, 13)
    assert told.done == 5 and told.totals and set(told.totals) == {5}  # the rel="last" link, then the last page
    first = tracker.seen[0].args
    assert (first["state"], first["labels"], first["since"]) == ("all", "handoffkit", "2017-10-01T00:00:00Z")
    assert [r.args["page"] for r in rest.seen] == ["2", "3", "4", "5"]
    assert tracker.seen[0].headers["Authorization"] == f"Bearer {CANARY}"


def test_github_does_not_follow_a_next_page_on_another_host(
    store: Store, engagement: str, httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    issues, _ = github_pages(base)[0]
    Tracker(
        httpserver,
        "/repos/o/r/issues",
        pages=[json_response(issues, headers={"Link": '<https://evil.test/x?page=2>; rel="next"'})],
    )
    before = counts(store)
    with pytest.raises(RemoteError, match="another host"):
        sync(store, "github", settings(base, creds, repo="o/r"))
    assert counts(store) == before


@pytest.mark.slow  # waits in real time (Retry-After, a rate-limit reset or a client timeout)
def test_github_rate_limit_exhausted_waits_for_the_reset(
    store: Store, engagement: str, httpserver: HTTPServer, creds: Path
) -> None:
    import time

    base = httpserver.url_for("").rstrip("/")
    issues, _ = github_pages(base)[0]
    reset = str(int(time.time()) + 2)  # whole seconds, as GitHub sends: a wait of 1 to 2 s
    tracker = Tracker(httpserver, "/repos/o/r/issues", pages=[json_response(issues)])
    tracker.fail[0] = json_response(
        {"message": "API rate limit exceeded", "documentation_url": "x"}, 403,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )  # fmt: skip
    client = open_client("github", settings(base, creds, repo="o/r"))
    assert sync(store, "github", client.settings, client=client)["tickets"] == 3
    assert len(tracker.seen) == 2 and 0.5 < client.waits[0] <= 2


# ---------------------------------------------------------------------------------------- ServiceNow


def test_servicenow_pages_by_offset_with_display_values(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    records = [servicenow_record(n, routed[n % 2]) for n in range(1, 6)]
    records[4] = servicenow_record(5, routed[0], state="6", state_name="Resolved")
    tracker = Tracker(httpserver, "/api/now/table/incident")
    tracker.pages = [
        json_response({"result": records[i : i + 2]}, headers={"X-Total-Count": "5"}) for i in range(0, 6, 2)
    ]

    told = Told()
    result = sync(store, "servicenow", settings(base, creds, query="active=true", page_size=2), progress=told)
    assert (told.totals, told.done) == ([3, 3, 3], 3)  # X-Total-Count 5 at 2 a page

    assert [r.args["sysparm_offset"] for r in tracker.seen] == ["0", "2", "4"]
    first = tracker.seen[0].args
    assert (first["sysparm_query"], first["sysparm_display_value"]) == ("active=true^ORDERBYnumber", "all")
    assert (result["tickets"], result["linked"], result["closed_observed"]) == (5, 5, 1)
    with store.read() as conn:
        shown = conn.execute(
            select(schema.tickets.c.status, schema.tickets.c.assignee).where(schema.tickets.c.key == "INC0000005")
        ).one()
    assert tuple(shown) == ("Resolved", "Priya Raman")


# ------------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("failure", "error", "says"),
    [
        (json_response({"errorMessages": ["Internal server error"]}, 500), RemoteError, "HTTP 500"),
        (json_response({"message": "expired"}, 401), RemoteError, "credentials were refused"),
        (json_response({"issues": "not a list"}), InputError, "$.issues: expected a list of issues"),
        (None, InputError, ":1:13: invalid JSON"),  # a body cut off mid-page
    ],
    ids=["500", "401-expired", "wrong-shape", "malformed-json"],
)
def test_a_failure_mid_pagination_writes_no_snapshot(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, failure, error, says
) -> None:
    from werkzeug import Response

    base = httpserver.url_for("").rstrip("/")
    issues = [jira_issue(n, [routed[0]], base=base) for n in range(1, 7)]
    tracker = jira_cloud(httpserver, issues, size=2)
    tracker.fail[1] = failure or Response(b'{"issues": [', content_type="application/json")
    before = snapshot(store)

    with pytest.raises(error) as raised:
        sync(store, "jira", settings(base, creds, retries=1))

    message = str(raised.value)
    assert says in message and message.count("\n") == 0
    assert "jira: GET http://127.0.0.1" in message and "nextPageToken=token-1" in message
    after = snapshot(store)
    assert after["ticket_imports"] == before["ticket_imports"] and after["tickets"] == before["tickets"]
    assert after["links"] == before["links"]
    [refused] = events(store, "ticket_sync_refused")
    assert refused["outcome"] == "failure" and refused["data"]["reason"] == message
    assert len(tracker.seen) == 2  # a refusal (4xx, bad body) is not retried; a 500 is not in the retried set


@pytest.mark.slow  # waits in real time (Retry-After, a rate-limit reset or a client timeout)
def test_429_with_retry_after_is_honoured(store: Store, routed: list[str], httpserver: HTTPServer, creds: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    tracker = jira_cloud(httpserver, [jira_issue(n, [routed[0]], base=base) for n in range(1, 5)], size=2)
    tracker.fail[1] = json_response({"errorMessages": ["Rate limit exceeded"]}, 429, {"Retry-After": "1"})
    client = open_client("jira", settings(base, creds))
    result = sync(store, "jira", client.settings, client=client)
    assert (result["tickets"], result["requests"]) == (4, 3)
    assert client.waits == [1.0]
    assert [r.args.get("nextPageToken") for r in tracker.seen] == [None, "token-1", "token-1"]


def test_502_503_back_off_exponentially_then_give_up(
    store: Store, engagement: str, httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    tracker = jira_cloud(httpserver, [], size=2)
    tracker.fail = {i: json_response({}, 503 if i % 2 else 502) for i in range(10)}
    client = open_client("jira", settings(base, creds, retries=3, backoff=0.01))
    with pytest.raises(RemoteError, match=r"HTTP 50[23] \(gave up after 4 attempts\)"):
        sync(store, "jira", client.settings, client=client)
    assert len(tracker.seen) == 4
    assert client.waits == pytest.approx([0.01, 0.02, 0.04])


def test_503_then_success_is_one_snapshot(store: Store, routed: list[str], httpserver: HTTPServer, creds: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    tracker = jira_cloud(httpserver, [jira_issue(1, [routed[0]], base=base)], size=2)
    tracker.fail[0] = json_response({}, 503)
    assert sync(store, "jira", settings(base, creds))["tickets"] == 1
    assert counts(store) == (1, 1)


def test_a_retry_after_beyond_max_wait_fails_at_once(
    store: Store, engagement: str, httpserver: HTTPServer, creds: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    tracker = jira_cloud(httpserver, [], size=2)
    tracker.fail[0] = json_response({}, 429, {"Retry-After": "3600"})
    client = open_client("jira", settings(base, creds, max_wait=5))
    with pytest.raises(RemoteError, match="asks to wait 3600 s, more than max_wait 5 s"):
        sync(store, "jira", client.settings, client=client)
    assert client.waits == [] and len(tracker.seen) == 1


def test_a_timeout_is_retried_then_named(store: Store, engagement: str, httpserver: HTTPServer, creds: Path) -> None:
    import time

    base = httpserver.url_for("").rstrip("/")

    def slow(request):
        time.sleep(0.5)
        return json_response({"issues": [], "isLast": True})

    httpserver.expect_request("/rest/api/3/search/jql").respond_with_handler(slow)
    with pytest.raises(RemoteError, match=r"^jira: GET .* timed out after 0.1 s \(gave up after 2 attempts\)$"):
        sync(store, "jira", settings(base, creds, timeout=0.1, retries=1))


# ------------------------------------------------------------------------------------------ credentials


def test_the_canary_token_never_shows(
    store: Store, routed: list[str], httpserver: HTTPServer, creds: Path, tmp_path: Path, monkeypatch
) -> None:
    """A server that echoes the Authorization header and the token back in its error body."""
    from werkzeug import Response

    base = httpserver.url_for("").rstrip("/")

    def echo(request):
        return Response(f"bad token {CANARY} in {request.headers['Authorization']}", status=400)

    httpserver.expect_request("/rest/api/3/search/jql").respond_with_handler(echo)
    (tmp_path / "trackers.yaml").write_text(f"jira:\n  url: {base}\n  credentials: {creds.name}\n  retries: 0\n")
    log = tmp_path / "run.log"
    result = CliRunner().invoke(
        cli, ["--db", store.url, "-v", "sync", "tickets", "--system", "jira", "-e", "ACME",
              "--params", str(tmp_path / "trackers.yaml"), "--actor", ACTOR],
    )  # fmt: skip
    log.write_text(result.output + (result.stderr if result.stderr_bytes else ""))
    assert result.exit_code == 8
    assert "jira: GET http://127.0.0.1" in result.output and "HTTP 400" in result.output
    with store.read() as conn:
        everything = "\n".join(conn.execute(select(schema.events.c.payload)).scalars())
    import base64

    encoded = base64.b64encode(f"ana@example.test:{CANARY}".encode()).decode()
    for text in (result.output, everything, log.read_text()):
        assert CANARY not in text and encoded not in text
    assert "[credentials removed]" in result.output


def test_the_cli_syncs_servicenow_with_credentials_from_the_environment(
    store: Store, routed: list[str], httpserver: HTTPServer, monkeypatch
) -> None:
    base = httpserver.url_for("").rstrip("/")
    tracker = Tracker(
        httpserver, "/api/now/table/incident", pages=[json_response({"result": [servicenow_record(1, routed[0])]})]
    )
    monkeypatch.setenv("HANDOFFKIT_SERVICENOW_USER", "svc.handoffkit")
    monkeypatch.setenv("HANDOFFKIT_SERVICENOW_PASSWORD", CANARY)
    result = CliRunner().invoke(
        cli, ["--db", store.url, "--format", "json", "sync", "tickets", "--system", "servicenow", "-e", "ACME",
              "--url", base, "--actor", ACTOR],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["tickets"], out["linked"], out["requests"], out["format"]) == (1, 1, 1, "servicenow-json-sync")
    assert tracker.seen[0].authorization.username == "svc.handoffkit"  # Basic auth, user and password
    assert CANARY not in result.output
