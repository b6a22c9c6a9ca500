"""GitHub REST issue lists, single issues, search responses and `gh issue list --json` output."""

from __future__ import annotations

import json

import pytest

from handoffkit.errors import InputError
from handoffkit.tickets.detect import parse_export
from handoffkit.tickets.github import priority_from_labels


def github(data: bytes, source: str = "export"):
    return parse_export(data, source, "github")


def test_rest_list_skips_and_counts_pull_requests(ticket_file):
    export = github(*ticket_file("github_issues_list.json"))
    assert export.format == "github-rest-list"
    assert [t.key for t in export.tickets] == ["example-org/payments#41", "example-org/payments#40"]
    assert export.skipped == {"pull_request": 1}


def test_rest_list_fields(ticket_file):
    open_issue, closed = github(*ticket_file("github_issues_list.json")).tickets
    assert (open_issue.status, open_issue.status_category, open_issue.resolution) == ("open", "todo", None)
    assert open_issue.labels == ("HK-81", "priority: high", "security")
    assert open_issue.priority == "priority: high"
    assert open_issue.assignee == "alice, bob"
    assert open_issue.url == "https://github.com/example-org/payments/issues/41"
    assert open_issue.description == "Found by gitleaks.\n\nFinding: [HK-81]"
    assert open_issue.source_ref == "$[0]"
    assert (closed.status, closed.status_category, closed.resolution) == ("closed", "done", "not_planned")
    assert closed.priority == "P3"  # P0..P4 outranks severity:*
    assert closed.source_ref == "$[2]"


def test_search_response(ticket_file):
    export = github(*ticket_file("github_search.json"))
    assert export.format == "github-search"
    [issue] = export.tickets
    assert (issue.key, issue.status_category, issue.resolution, issue.priority) == (
        "example-org/web#7",
        "done",
        "completed",
        "P1",
    )
    assert export.skipped == {"pull_request": 1}
    assert issue.source_ref == "$.items[0]"


def test_gh_cli_output(ticket_file):
    export = github(*ticket_file("gh_issue_list.json"))
    assert export.format == "gh-cli"
    open_issue, closed = export.tickets
    assert (open_issue.key, open_issue.status, open_issue.status_category) == (
        "example-org/infra#12",
        "open",
        "todo",
    )
    assert (open_issue.labels, open_issue.priority, open_issue.assignee) == (
        ("P0", "security"),
        "P0",
        "alice",
    )
    assert (open_issue.created_at, open_issue.updated_at) == ("2025-09-20T07:00:00Z", "2025-09-20T09:00:00Z")
    assert open_issue.url == "https://github.com/example-org/infra/issues/12"
    assert (closed.status, closed.status_category, closed.description) == ("closed", "done", None)


def test_single_issue_without_repository_urls_is_keyed_by_number():
    [ticket] = github(json.dumps({"number": 5, "title": "t", "state": "open"}).encode()).tickets
    assert ticket.key == "#5"


def test_single_pull_request_is_skipped():
    body = {"number": 6, "title": "t", "state": "open", "pull_request": {"url": "u"}}
    export = github(json.dumps(body).encode())
    assert (export.format, export.tickets, export.skipped) == ("github-issue", [], {"pull_request": 1})


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("bug", "priority/critical"), "priority/critical"),
        (("Severity: High", "p2"), "p2"),
        (("severity:medium",), "severity:medium"),
        (("P5", "priority"), None),  # not a P0..P4 label, and "priority" alone names no level
        ((), None),
    ],
)
def test_priority_from_labels(labels, expected):
    assert priority_from_labels(labels) == expected


def test_list_of_non_issues_is_refused_with_its_path():
    labels = [{"id": 1, "name": "Foo", "color": "ededed"}]
    with pytest.raises(InputError, match=r"^l\.json:\$\[0\]: expected a GitHub issue object"):
        github(json.dumps(labels).encode(), "l.json")


def test_unknown_state_is_refused():
    with pytest.raises(InputError, match=r"\$\[0\]\.state: state 'merged'; expected open or closed"):
        github(json.dumps([{"number": 1, "title": "t", "state": "merged"}]).encode())


def test_github_error_response_is_named_as_such():
    body = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
    with pytest.raises(InputError, match=r"GitHub error response \(Bad credentials\)"):
        github(json.dumps(body).encode(), "e.json")
