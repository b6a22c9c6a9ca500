"""Jira CSV and REST exports (hand-written fixtures in tests/data/tickets)."""

from __future__ import annotations

import json

import pytest

from handoffkit.errors import InputError
from handoffkit.tickets.detect import parse_export
from handoffkit.tickets.jira import adf_text, category_from_status


def jira(data: bytes, source: str = "export", **kwargs):
    return parse_export(data, source, "jira", **kwargs)


def by_key(export):
    return {t.key: t for t in export.tickets}


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_export_is_read_with_bom_and_every_row(ticket_file):
    data, source = ticket_file("jira_export.csv")
    assert data.startswith(b"\xef\xbb\xbf")
    export = jira(data, source)
    assert export.format == "jira-csv"
    assert [t.key for t in export.tickets] == ["SEC-101", "SEC-102", "SEC-103"]
    # The BOM must not leak into the first header: the first column (Summary) is the title.
    assert export.tickets[0].title == "Upgrade OpenSSL on web-01 [HK-12]"


def test_csv_repeated_labels_and_sprint_columns_are_all_kept(ticket_file):
    tickets = by_key(jira(*ticket_file("jira_export.csv")))
    assert tickets["SEC-101"].labels == ("HK-12", "pentest-2025", "security")
    assert tickets["SEC-101"].fields["Sprint"] == ["SEC Sprint 1", "SEC Sprint 2"]
    assert tickets["SEC-102"].labels == ("security",)
    assert tickets["SEC-103"].labels == ()


def test_csv_custom_field_is_exposed_by_display_name(ticket_file):
    tickets = by_key(jira(*ticket_file("jira_export.csv")))
    assert tickets["SEC-101"].fields["Finding ID"] == "HK-12"
    assert tickets["SEC-101"].fields["Story Points"] == "3"
    assert tickets["SEC-102"].fields["Finding ID"] == "HK-13, HK-14"
    assert "Finding ID" not in tickets["SEC-103"].fields


def test_csv_row_fields(ticket_file):
    tickets = by_key(jira(*ticket_file("jira_export.csv")))
    first = tickets["SEC-101"]
    assert (first.status, first.status_category, first.priority, first.assignee, first.resolution) == (
        "In Progress",
        "in_progress",
        "High",
        "Dana Scully",
        None,
    )
    assert (first.created_at, first.updated_at) == ("02/Sep/25 9:14 AM", "15/Sep/25 4:02 PM")
    assert first.source_ref == "line 2"
    done = tickets["SEC-102"]
    assert (done.status_category, done.resolution) == ("done", "Done")
    assert tickets["SEC-103"].status_category == "todo"
    assert tickets["SEC-103"].assignee is None


def test_csv_multi_line_description_stays_one_row(ticket_file):
    first = jira(*ticket_file("jira_export.csv")).tickets[0]
    lines = first.description.splitlines()
    assert lines[0] == "OpenSSL 1.1.1k on web-01 is affected by CVE-2023-0286."
    assert '1. run "openssl version" on web-01' in lines
    assert lines[-1] == "2. compare with the advisory, then upgrade"


@pytest.mark.parametrize(
    ("status", "resolution", "expected"),
    [
        ("Done", "", "done"),
        ("Closed", "", "done"),
        ("Resolved", "Fixed", "done"),
        ("In Progress", "", "in_progress"),
        ("In Review", "", "in_progress"),
        ("Backlog", "", "todo"),
        ("Selected for Development", "Unresolved", "todo"),
        ("Shipped", "Done", "done"),  # unknown workflow status, but Jira resolved it
    ],
)
def test_csv_without_status_category_maps_status_names(status, resolution, expected):
    data = f"Issue key,Summary,Status,Resolution\nOPS-1,t,{status},{resolution}\n".encode()
    [ticket] = jira(data).tickets
    assert ticket.status_category == expected
    assert ticket.resolution == (resolution if resolution not in ("", "Unresolved") else None)


def test_category_from_status_ignores_case_and_spaces():
    assert category_from_status("  IN PROGRESS ") == "in_progress"


def test_single_labels_cell_with_several_labels_is_split():
    data = b"Issue key,Status,Labels\nOPS-2,To Do,security  HK-9\n"
    assert jira(data).tickets[0].labels == ("HK-9", "security")


def test_csv_without_issue_key_column_is_refused():
    data = b"Key,Summary,Status\nOPS-1,t,Done\n"
    with pytest.raises(InputError, match=r"^tickets\.csv:line 1: no `Issue key` column"):
        jira(data, "tickets.csv")


def test_csv_with_misspelt_issue_key_column_suggests_the_right_one():
    data = b"Issue Key,Status\nOPS-1,Done\n"
    with pytest.raises(InputError, match="found 'Issue Key'; Jira spells it 'Issue key'"):
        jira(data, "tickets.csv")


def test_csv_row_without_a_key_is_refused_with_its_line():
    data = b"Issue key,Status\nOPS-1,Done\n,Done\n"
    with pytest.raises(InputError, match=r"^t\.csv:line 3: empty `Issue key`"):
        jira(data, "t.csv")


# --------------------------------------------------------------------------------------------- REST


def test_rest_search_response(ticket_file):
    export = jira(*ticket_file("jira_search_v2.json"))
    assert export.format == "jira-rest-search"
    review, closed = export.tickets
    assert (review.key, review.title, review.status, review.status_category) == (
        "SEC-201",
        "SQL injection in /search endpoint",
        "In Review",
        "in_progress",
    )
    assert (review.priority, review.assignee, review.labels) == (
        "Highest",
        "Dana Scully",
        ("HK-21", "security"),
    )
    assert review.url == "https://example.atlassian.net/browse/SEC-201"
    assert review.source_ref == "$.issues[0]"
    assert (closed.status, closed.status_category, closed.resolution) == ("Closed", "done", "Won't Do")
    assert closed.assignee is None and closed.description is None


def test_rest_custom_fields_use_the_names_map_the_response_carries(ticket_file):
    review, closed = jira(*ticket_file("jira_search_v2.json")).tickets
    # Option objects are reduced to their value; null custom fields are dropped.
    assert review.fields == {"Finding ID": "HK-21", "Environment": "Production"}
    assert closed.fields == {}


def test_rest_custom_fields_keep_their_id_without_a_names_map(ticket_file):
    [ticket] = jira(*ticket_file("jira_issue_v3_adf.json")).tickets
    assert ticket.fields["customfield_10042"] == "HK-31"
    assert "customfield_10080" not in ticket.fields


def test_rest_custom_fields_use_a_names_map_given_by_the_caller(ticket_file):
    export = jira(*ticket_file("jira_issue_v3_adf.json"), jira_names={"customfield_10042": "Finding ID"})
    assert export.tickets[0].fields["Finding ID"] == "HK-31"


def test_v3_issue_description_is_the_plain_text_of_its_adf(ticket_file):
    export = jira(*ticket_file("jira_issue_v3_adf.json"))
    assert export.format == "jira-rest-issue"
    [ticket] = export.tickets
    assert ticket.description == (
        "Summary\n"
        "The bio field renders HTML unescaped. Finding [HK-31], reported by @Fox Mulder\n"
        "Evidence: https://handoffkit.example/findings/HK-31\n"
        "log in as any user\n"
        "save <script>alert(1)</script> as bio\n"
        "POST /profile HTTP/1.1"
    )
    # A rich-text custom field is ADF too.
    assert ticket.fields["customfield_10070"] == "Encode output in the bio template."
    assert (ticket.status_category, ticket.assignee) == ("todo", "Fox Mulder")


def test_adf_text_of_an_empty_document_is_empty():
    assert adf_text({"type": "doc", "version": 1, "content": []}) == ""


def test_rest_issue_without_status_category_falls_back_to_its_status_name():
    body = {"key": "OPS-9", "fields": {"summary": "s", "status": {"name": "Resolved"}}}
    assert jira(json.dumps(body).encode()).tickets[0].status_category == "done"


def test_search_item_without_fields_is_refused_with_its_path():
    # /rest/api/3/search/jql returns only ids unless fields are requested.
    body = {"issues": [{"id": "10001"}], "isLast": True}
    with pytest.raises(InputError, match=r"^s\.json:\$\.issues\[0\]: expected a Jira issue object"):
        jira(json.dumps(body).encode(), "s.json")


def test_issue_without_status_is_refused():
    body = {"key": "OPS-9", "fields": {"summary": "s"}}
    with pytest.raises(InputError, match=r"^i\.json:\$\.fields\.status: expected a status object"):
        jira(json.dumps(body).encode(), "i.json")


def test_jira_error_response_is_named_as_such():
    body = {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
    with pytest.raises(InputError, match="Jira error response \\(Issue does not exist"):
        jira(json.dumps(body).encode(), "e.json")
