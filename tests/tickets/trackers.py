"""Ticket systems on 127.0.0.1 (pytest-httpserver) answering with the real API payloads of the shared
corpus: Jira issue bodies (``jira/jira_issue_*.json``) re-keyed and paged, octokit's recorded GitHub
issue pages (``github_issues/paginate-issues_…``) with their ``Link`` headers pointed at the local server,
and ServiceNow Table API records in the ``sysparm_display_value=all`` shape.

A :class:`Tracker` serves a list of pages in order for one path and remembers every request, and can be
told to answer one request with a failure (status, headers, body) instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.builders import corpus_path

JIRA_SAMPLES = ("NTEST-3187", "NTEST-3079_epic", "NTEST-3104_comments", "NTEST-3077_done", "NTEST-3169_labels")
FINDING_FIELD = "customfield_10100"
CANARY = "canary-9f3c2e7d-token-must-never-leak"


def jira_issue(n: int, finding_ids: list[str], *, base: str, sample: int = 0, **fields: Any) -> dict[str, Any]:
    """Corpus issue body ``JIRA_SAMPLES[sample]`` as ``SEC-n`` carrying ``finding_ids`` (label and field)."""
    name = JIRA_SAMPLES[sample % len(JIRA_SAMPLES)]
    doc = copy.deepcopy(json.loads(corpus_path(f"jira/jira_issue_{name}.json").read_bytes()))
    doc["key"], doc["id"] = f"SEC-{n}", str(30_000 + n)
    doc["self"] = f"{base}/rest/api/2/issue/{doc['id']}"
    doc["fields"]["labels"] = [*finding_ids, "security"]
    doc["fields"][FINDING_FIELD] = " ".join(finding_ids) or None
    doc["fields"].update(fields)
    return doc


def github_pages(base: str) -> list[tuple[list[dict[str, Any]], str | None]]:
    """The corpus's five recorded ``GET …/issues`` pages: (issues, Link header pointed at ``base``)."""
    recorded = json.loads(corpus_path("github_issues/paginate-issues_normalized-fixture.json").read_bytes())
    return [
        (r["response"], (r["headers"].get("link") or "").replace("https://api.github.com", base) or None)
        for r in recorded
    ]


def servicenow_record(n: int, finding_id: str, *, state: str = "2", state_name: str = "In Progress") -> dict[str, Any]:
    """A Table API incident in the ``sysparm_display_value=all`` shape."""

    def both(value: str, display: str | None = None) -> dict[str, str]:
        return {"display_value": display or value, "value": value}

    return {
        "sys_id": both(f"{n:032x}"),
        "number": both(f"INC{n:07d}"),
        "short_description": both(f"[{finding_id}] Fix it"),
        "state": both(state, state_name),
        "priority": both("2", "2 - High"),
        "assigned_to": both("6816f79cc0a8016401c5a33be04be441", "Priya Raman"),
        "description": both("See the record."),
        "close_code": both(""),
        "active": both("true"),
        "sys_created_on": both("2026-03-02 10:00:00", "03/02/2026 11:00:00"),
        "sys_updated_on": both("2026-03-02 10:00:00", "03/02/2026 11:00:00"),
        "u_finding_id": both(finding_id),
    }


@dataclass
class Tracker:
    """Pages served in order on one path; ``fail[i]`` answers request ``i`` (0-based) instead."""

    server: HTTPServer
    path: str
    pages: list[Response] = field(default_factory=list)
    fail: dict[int, Response] = field(default_factory=dict)
    seen: list[Request] = field(default_factory=list)
    page_of: Callable[[Request], int] | None = None

    def __post_init__(self) -> None:
        self.server.expect_request(self.path).respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        index = len(self.seen)
        self.seen.append(request)
        if index in self.fail:
            return self.fail[index]
        page = self.page_of(request) if self.page_of else index - sum(1 for i in self.fail if i < index)
        return self.pages[page]

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(doc), status=status, headers=headers or {}, content_type="application/json")


def jira_cloud(server: HTTPServer, issues: list[dict[str, Any]], size: int) -> Tracker:
    """Jira Cloud's ``/search/jql``: pages of ``size`` chained by ``nextPageToken``."""
    tracker = Tracker(server, "/rest/api/3/search/jql")
    chunks = [issues[i : i + size] for i in range(0, len(issues), size)] or [[]]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        body: dict[str, Any] = {"issues": chunk, "isLast": last}
        if not last:
            body["nextPageToken"] = f"token-{i + 1}"
        tracker.pages.append(json_response(body))

    def page_of(request: Request) -> int:
        token = request.args.get("nextPageToken")
        return int(token.removeprefix("token-")) if token else 0

    tracker.page_of = page_of
    return tracker


# ----------------------------------------------------------------------------- trackers that keep state


@dataclass
class Desk:
    """A ticket system that keeps the tickets pushed to it: creates, searches by finding id, updates.

    Created tickets answer in the corpus's shapes: Jira's ``POST /rest/api/2/issue`` answer of the
    DefectDojo cassette, octokit's recorded ``POST …/issues`` issue object, a Table API ``result``.
    ``fail_create`` maps the n-th create (0-based) to a failure; ``act_then_hang`` makes the n-th create
    take effect but answer only after ``hang`` seconds (a client that timed out never learns the key).
    """

    server: HTTPServer
    system: str
    tickets: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[str, str, Any]] = field(default_factory=list)
    fail_create: dict[int, Response] = field(default_factory=dict)
    act_then_hang: set[int] = field(default_factory=set)
    hang: float = 0.0
    creates: int = 0

    def __post_init__(self) -> None:
        import re

        # The corpus files the answers are built from, checked here in the test's own thread: a missing
        # corpus skips the test (and fails CI) instead of failing inside the server's handler thread.
        corpus_path("jira/JIRAImportAndPushTestApi.test_engagement_epic_creation.yaml")
        corpus_path("github_issues/add-labels-to-issue_normalized-fixture.json")
        e = self.server.expect_request
        if self.system == "jira":
            e("/rest/api/2/issue", method="POST").respond_with_handler(self._create)
            e("/rest/api/3/search/jql", method="GET").respond_with_handler(self._search)
            e(re.compile(r"^/rest/api/2/issue/\w+$"), method="PUT").respond_with_handler(self._update)
        elif self.system == "github":
            e("/repos/o/r/issues", method="POST").respond_with_handler(self._create)
            e("/repos/o/r/issues", method="GET").respond_with_handler(self._search)
            e(re.compile(r"^/repos/o/r/issues/\d+/.+$")).respond_with_handler(self._update)
        else:
            e("/api/now/table/incident", method="POST").respond_with_handler(self._create)
            e("/api/now/table/incident", method="GET").respond_with_handler(self._search)
            e(re.compile(r"^/api/now/table/incident/\w+$"), method="PATCH").respond_with_handler(self._update)

    def _create(self, request: Request) -> Response:
        import time

        index, self.creates = self.creates, self.creates + 1
        if index in self.fail_create:
            return self.fail_create[index]
        body = request.get_json()
        n = len(self.tickets) + 1
        if self.system == "jira":
            answer = _cassette_create(n, self.server.url_for("").rstrip("/"))
            ticket = {"key": answer["key"], "id": answer["id"], "labels": body["fields"]["labels"], "body": body}
        elif self.system == "github":
            answer = _octokit_issue(n, body)
            ticket = {"key": f"o/r#{n}", "id": str(n), "labels": body["labels"], "body": body}
        else:
            answer = {"result": {"sys_id": f"{n:032x}", "number": f"INC{n:07d}", "u_finding_id": body["u_finding_id"]}}
            ticket = {"key": f"INC{n:07d}", "id": f"{n:032x}", "labels": [body["u_finding_id"]], "body": body}
        self.tickets.append(ticket)
        if index in self.act_then_hang:
            time.sleep(self.hang)
        return json_response(answer, 201)

    def _search(self, request: Request) -> Response:
        import re

        if self.system == "jira":
            wanted = re.search(r'labels = "([^"]+)"', request.args["jql"])[1]
        elif self.system == "github":
            wanted = request.args["labels"]
        else:
            wanted = request.args["sysparm_query"].removeprefix("u_finding_id=")
        hits = [t for t in self.tickets if wanted in t["labels"]]
        if self.system == "jira":
            return json_response({"issues": [{"id": t["id"], "key": t["key"]} for t in hits], "isLast": True})
        if self.system == "github":
            return json_response([_octokit_issue(int(t["id"]), t["body"]) for t in hits])
        return json_response({"result": [{"sys_id": t["id"], "number": t["key"]} for t in hits]})

    def _update(self, request: Request) -> Response:
        self.updates.append((request.method, request.path, request.get_json(silent=True)))
        return Response(status=204) if self.system == "jira" else json_response({})

    def created(self, finding_id: str) -> list[str]:
        return [t["key"] for t in self.tickets if finding_id in t["labels"]]


def _cassette_create(n: int, base: str) -> dict[str, Any]:
    import yaml

    cassette = yaml.safe_load(
        corpus_path("jira/JIRAImportAndPushTestApi.test_engagement_epic_creation.yaml").read_text(encoding="utf-8")
    )
    [post] = [i for i in cassette["interactions"] if i["request"]["method"] == "POST"]
    answer = json.loads(post["response"]["body"]["string"])
    answer["id"], answer["key"] = str(40_000 + n), f"SEC-{n}"
    answer["self"] = f"{base}/rest/api/2/issue/{answer['id']}"
    return answer


def _octokit_issue(n: int, body: dict[str, Any]) -> dict[str, Any]:
    recorded = json.loads(corpus_path("github_issues/add-labels-to-issue_normalized-fixture.json").read_bytes())
    issue = copy.deepcopy(next(r["response"] for r in recorded if r["method"] == "post" and r["status"] == 201))
    issue.update(number=n, title=body["title"], body=body["body"], labels=[{"name": x} for x in body["labels"]])
    issue["url"] = f"https://api.github.com/repos/o/r/issues/{n}"
    issue["repository_url"] = "https://api.github.com/repos/o/r"
    return issue
