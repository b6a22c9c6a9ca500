"""ServiceNow Table API JSON (both value styles) and list CSV exports."""

from __future__ import annotations

import json

import pytest

from handoffkit.errors import InputError
from handoffkit.tickets.detect import parse_export
from handoffkit.tickets.servicenow import state_category


def servicenow(data: bytes, source: str = "export"):
    return parse_export(data, source, "servicenow")


def test_display_value_all_objects_are_read(ticket_file):
    export = servicenow(*ticket_file("servicenow_display_all.json"))
    assert export.format == "servicenow-json"
    on_hold, resolved = export.tickets
    assert (on_hold.key, on_hold.title) == ("INC0010021", "Patch Log4j on billing-02 [HK-51]")
    assert (on_hold.status, on_hold.status_category, on_hold.priority) == (
        "On Hold",
        "in_progress",
        "1 - Critical",
    )
    assert on_hold.assignee == "Beth Anglin"  # the display value, not the sys_id
    assert on_hold.fields == {"u_finding_id": "HK-51"}
    # Timestamps come from the raw (UTC) value, not the display value in the exporting user's time zone.
    assert on_hold.updated_at == "2025-09-03 15:45:10"
    assert on_hold.description == "CVE-2021-44228 on billing-02.\nUpgrade log4j-core to 2.17.1."
    assert on_hold.source_ref == "$.result[0]"
    assert (resolved.status_category, resolved.resolution, resolved.assignee) == (
        "done",
        "Solved (Permanently)",
        None,
    )


def test_plain_values_translate_state_and_priority_codes(ticket_file):
    in_progress, canceled = servicenow(*ticket_file("servicenow_plain.json")).tickets
    assert (in_progress.status, in_progress.status_category, in_progress.priority) == (
        "In Progress",
        "in_progress",
        "2 - High",
    )
    # A reference without a display value leaves only the sys_id to show.
    assert in_progress.assignee == "5137153cc611227c000bbd1bd8cd2005"
    assert (canceled.status, canceled.status_category, canceled.priority) == (
        "Canceled",
        "done",
        "5 - Planning",
    )
    assert canceled.fields == {}  # empty u_ fields are not kept
    assert canceled.resolution == "Duplicate"


def test_csv_export(ticket_file):
    export = servicenow(*ticket_file("servicenow_export.csv"))
    assert export.format == "servicenow-csv"
    new, in_progress, closed = export.tickets
    assert (new.key, new.status_category, new.priority, new.assignee) == (
        "INC0010041",
        "todo",
        "2 - High",
        None,
    )
    assert new.description == "Certificate expired on 2025-09-09.\nRenew and deploy."
    assert new.fields == {"u_finding_id": "HK-71", "u_scanner": "nessus"}
    assert new.source_ref == "line 2"
    assert (in_progress.status, in_progress.status_category) == ("In Progress", "in_progress")
    assert (closed.status_category, closed.resolution, closed.updated_at) == (
        "done",
        "Solved (Permanently)",
        "2025-09-02 08:00:00",
    )
    assert closed.source_ref == "line 5"  # the multi-line description took two lines


def test_single_record_result():
    body = {"result": {"number": "INC1", "state": "7", "short_description": "x"}}
    [ticket] = servicenow(json.dumps(body).encode()).tickets
    assert (ticket.status, ticket.status_category, ticket.source_ref) == ("Closed", "done", "$.result")


@pytest.mark.parametrize(
    ("status", "code", "active", "expected"),
    [
        ("New", None, None, "todo"),
        ("Work in Progress", None, None, "in_progress"),
        ("Closed Complete", "3", None, "done"),  # catalog task: the name wins over the incident code
        ("Awaiting Evidence", "2", None, "in_progress"),  # unknown name: the incident code decides
        ("Awaiting Evidence", None, "false", "done"),  # nothing else known: inactive means finished
        ("Awaiting Evidence", None, "true", "todo"),
    ],
)
def test_state_category(status, code, active, expected):
    assert state_category(status, code, active) == expected


def test_csv_without_number_column_is_refused():
    with pytest.raises(InputError, match=r"^sn\.csv:line 1: no `number` column; expected a ServiceNow export"):
        servicenow(b"short_description,state\nx,New\n", "sn.csv")


def test_record_without_state_is_refused_with_its_path():
    body = {"result": [{"number": "INC1", "state": "1"}, {"number": "INC2"}]}
    with pytest.raises(InputError, match=r"^sn\.json:\$\.result\[1\]: no `state`"):
        servicenow(json.dumps(body).encode(), "sn.json")


def test_servicenow_error_response_is_named_as_such():
    body = {
        "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
        "status": "failure",
    }
    with pytest.raises(InputError, match=r"ServiceNow error response \(User Not Authenticated\)"):
        servicenow(json.dumps(body).encode(), "sn.json")
