"""Real, public exports from the shared corpus parse to what corpus/SOURCES.md says they hold."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from handoffkit.errors import InputError
from handoffkit.tickets.detect import parse_export

pytestmark = pytest.mark.corpus

# key, status, status category, priority, resolution, labels — as SOURCES.md lists them.
JIRA_ISSUES = [
    ("jira_issue_NTEST-3187.json", "NTEST-3187", "Backlog", "todo", "High", None, ()),
    ("jira_issue_NTEST-3079_epic.json", "NTEST-3079", "Backlog", "todo", "Medium", None, ()),
    ("jira_issue_NTEST-3104_comments.json", "NTEST-3104", "Backlog", "todo", "Low", None, ()),
    ("jira_issue_NTEST-3077_done.json", "NTEST-3077", "Done", "done", "Low", "Done", ()),
    (
        "jira_issue_NTEST-3169_labels.json",
        "NTEST-3169",
        "Backlog",
        "todo",
        "Low",
        None,
        ("tag1", "tag2", "tag3", "tag4"),
    ),
]


@pytest.mark.parametrize(("name", "key", "status", "category", "priority", "resolution", "labels"), JIRA_ISSUES)
def test_jira_issue_bodies(corpus, name, key, status, category, priority, resolution, labels):
    path = corpus / "jira" / name
    export = parse_export(path.read_bytes(), str(path), "jira")
    assert export.format == "jira-rest-issue"
    [ticket] = export.tickets
    assert (
        ticket.key,
        ticket.status,
        ticket.status_category,
        ticket.priority,
        ticket.resolution,
        ticket.labels,
    ) == (key, status, category, priority, resolution, labels)
    assert ticket.url == f"https://defectdojo.atlassian.net/browse/{key}"
    assert ticket.title and ticket.description


def test_every_corpus_jira_issue_is_listed_here(corpus):
    """A new sample added to the corpus should get its expectations above, not go unchecked."""
    assert sorted(p.name for p in (corpus / "jira").glob("jira_issue_*.json")) == sorted(n for n, *_ in JIRA_ISSUES)


def test_jira_vcr_cassette_get_issue_body(corpus):
    path = corpus / "jira" / "JIRAImportAndPushTestApi.test_engagement_epic_creation.yaml"
    interactions = yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]
    [body] = [
        i["response"]["body"]["string"]
        for i in interactions
        if i["request"]["method"] == "GET" and "/rest/api/2/issue/NTEST-" in i["request"]["uri"]
    ]
    export = parse_export(body.encode("utf-8"), f"{path}#GET issue", "jira")
    [ticket] = export.tickets
    assert (ticket.key, ticket.title, ticket.status, ticket.status_category, ticket.priority) == (
        "NTEST-3079",
        "weekly engagement",
        "Backlog",
        "todo",
        "Medium",
    )


# scenario file, issue count (SOURCES.md), spot checks: number → (title, state, labels)
GITHUB_FIXTURES = [
    (
        "paginate-issues_normalized-fixture.json",
        13,
        {13: ("Test issue 13", "open", ()), 1: ("Test issue 1", "open", ())},
    ),
    ("add-labels-to-issue_normalized-fixture.json", 1, {1: ("Issue without a label", "open", ())}),
]


_ISSUES_PATH = re.compile(r"/issues(?:/\d+)?$")
"""Endpoints whose responses are issues: lists, search, one issue (not e.g. ``…/issues/1/labels``)."""


def _issue_responses(recorded: list[dict]) -> list[object]:
    return [r["response"] for r in recorded if _ISSUES_PATH.search(r["path"].split("?")[0])]


@pytest.mark.parametrize(("name", "count", "spot"), GITHUB_FIXTURES)
def test_github_octokit_fixtures(corpus, name, count, spot):
    path = corpus / "github_issues" / name
    recorded = json.loads(path.read_text(encoding="utf-8"))
    tickets = []
    for i, body in enumerate(_issue_responses(recorded)):
        export = parse_export(json.dumps(body).encode(), f"{path}#{i}", "github")
        assert export.format in ("github-rest-list", "github-issue")
        tickets.extend(export.tickets)
    assert len(tickets) == count
    by_number = {int(t.key.rsplit("#", 1)[1]): t for t in tickets}
    for number, (title, state, labels) in spot.items():
        ticket = by_number[number]
        assert (ticket.title, ticket.status, ticket.labels) == (title, state, labels)
        assert ticket.key.startswith("octokit-fixture-org/")


def test_github_labels_response_is_not_taken_for_issues(corpus):
    path = corpus / "github_issues" / "add-labels-to-issue_normalized-fixture.json"
    [labels] = [r["response"] for r in json.loads(path.read_text(encoding="utf-8")) if r["path"].endswith("/labels")]
    with pytest.raises(InputError, match=r"\$\[0\]: expected a GitHub issue object"):
        parse_export(json.dumps(labels).encode(), str(path), "github")
