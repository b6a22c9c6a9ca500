"""Which finding ids a ticket carries: labels, a custom field, [HK-n] tokens."""

from __future__ import annotations

import pytest

from handoffkit.record.model import TicketSnapshot
from handoffkit.tickets.detect import parse_export
from handoffkit.tickets.finding_ids import FINDING_ID, extract_finding_ids


def snapshot(**kwargs) -> TicketSnapshot:
    base = {"system": "jira", "key": "SEC-1", "title": "t", "status": "To Do", "status_category": "todo"}
    return TicketSnapshot(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("ticket", "source", "expected"),
    [
        (snapshot(labels=("HK-3", "security", "hk:HK-4", "HK-5x")), "label", ("HK-3",)),
        (snapshot(fields={"Finding ID": "HK-10, HK-9"}), "custom_field", ("HK-9", "HK-10")),
        (snapshot(fields={"Finding ID": ["HK-2", "HK-1"]}), "custom_field", ("HK-1", "HK-2")),
        (snapshot(fields={"u_finding_id": "HK-7"}), "custom_field", ("HK-7",)),
        (snapshot(fields={"Other": "HK-7"}), "custom_field", ()),
        (snapshot(title="Fix [HK-8]", description="see [HK-6] and HK-99"), "token", ("HK-6", "HK-8")),
    ],
)
def test_each_source(ticket, source, expected):
    assert extract_finding_ids(ticket, sources=(source,)) == expected


def test_all_sources_are_merged_sorted_and_unique():
    ticket = snapshot(labels=("HK-2",), fields={"Finding ID": "HK-2"}, title="[HK-1]")
    assert extract_finding_ids(ticket) == ("HK-1", "HK-2")


def test_sources_not_asked_for_are_ignored():
    ticket = snapshot(labels=("HK-2",), title="[HK-1]")
    assert extract_finding_ids(ticket, sources=("custom_field",)) == ()


def test_custom_field_name_is_configurable():
    ticket = snapshot(fields={"Security Finding": "HK-4"})
    assert extract_finding_ids(ticket, custom_field="security finding") == ("HK-4",)


def test_unknown_source_is_a_caller_error():
    with pytest.raises(ValueError, match="unknown finding-id source"):
        extract_finding_ids(snapshot(), sources=("labels",))


def test_pattern_does_not_match_inside_longer_words():
    assert FINDING_ID.findall("XHK-1 HK-2 HK-3b HK-4") == ["HK-2", "HK-4"]


def test_ids_from_parsed_fixtures(ticket_file):
    """End to end: each fixture's tickets carry the ids their exports put there."""
    csv = parse_export(*ticket_file("jira_export.csv"), "jira").tickets
    assert [extract_finding_ids(t) for t in csv] == [("HK-12",), ("HK-13", "HK-14"), ()]
    sn = parse_export(*ticket_file("servicenow_export.csv"), "servicenow").tickets
    assert [extract_finding_ids(t) for t in sn] == [("HK-71",), ("HK-72",), ("HK-73",)]
    gh = parse_export(*ticket_file("gh_issue_list.json"), "github").tickets
    assert [extract_finding_ids(t) for t in gh] == [("HK-101",), ("HK-102",)]
