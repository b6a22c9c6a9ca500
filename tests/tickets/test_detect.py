"""Layout detection and refusal of files that are broken or belong to another system."""

from __future__ import annotations

import re

import pytest

from handoffkit.errors import InputError
from handoffkit.tickets.detect import SYSTEMS, parse_export

FIXTURES = [
    ("jira_export.csv", "jira", "jira-csv"),
    ("jira_search_v2.json", "jira", "jira-rest-search"),
    ("jira_issue_v3_adf.json", "jira", "jira-rest-issue"),
    ("servicenow_display_all.json", "servicenow", "servicenow-json"),
    ("servicenow_plain.json", "servicenow", "servicenow-json"),
    ("servicenow_export.csv", "servicenow", "servicenow-csv"),
    ("github_issues_list.json", "github", "github-rest-list"),
    ("github_search.json", "github", "github-search"),
    ("gh_issue_list.json", "github", "gh-cli"),
]


@pytest.mark.parametrize(("name", "system", "layout"), FIXTURES)
def test_layout_is_detected(ticket_file, name, system, layout):
    export = parse_export(*ticket_file(name), system)
    assert (export.system, export.format) == (system, layout)
    assert export.tickets and all(t.system == system for t in export.tickets)


_SYSTEM_TITLE = {"jira": "Jira", "servicenow": "ServiceNow", "github": "GitHub issues"}
WRONG_SYSTEM = [(name, other) for name, system, _ in FIXTURES for other in SYSTEMS if other != system]


@pytest.mark.parametrize(("name", "other"), WRONG_SYSTEM)
def test_export_of_another_system_is_refused(ticket_file, name, other):
    data, source = ticket_file(name)
    with pytest.raises(InputError, match=rf"^{re.escape(source)}:.*expected a {_SYSTEM_TITLE[other]} export"):
        parse_export(data, source, other)


def test_truncated_json_is_refused_with_line_and_column(ticket_file):
    data, _ = ticket_file("jira_search_v2.json")
    with pytest.raises(InputError, match=r"^cut\.json:\d+:\d+: invalid JSON"):
        parse_export(data[: len(data) // 2], "cut.json", "jira")


def test_truncated_csv_is_refused_with_its_line(ticket_file):
    data, _ = ticket_file("jira_export.csv")
    cut = data[: data.index(b"Steps:")]  # inside the quoted multi-line description
    with pytest.raises(InputError, match=r"^cut\.csv:2: malformed CSV"):
        parse_export(cut, "cut.csv", "jira")


def test_empty_file_is_refused():
    with pytest.raises(InputError, match=r"^empty\.json:1: empty file"):
        parse_export(b"", "empty.json", "github")


def test_unknown_system_is_a_caller_error():
    with pytest.raises(ValueError, match="did you mean 'github'"):
        parse_export(b"[]", "x.json", "gihub")


def test_empty_github_list_is_an_empty_export():
    export = parse_export(b"[]\n", "none.json", "github")
    assert (export.format, export.tickets, sum(export.skipped.values())) == ("github-rest-list", [], 0)


def test_hostile_nesting_is_refused_not_a_crash():
    depth = 5000
    description = '{"type":"doc","content":[' + '{"type":"panel","content":[' * depth + "]}" * depth + "]}"
    body = '{"key":"A-1","fields":{"status":{"name":"x"},"description":' + description + "}}"
    with pytest.raises(InputError, match=r"^deep\.json: .*nested too deeply"):
        parse_export(body.encode(), "deep.json", "jira")
