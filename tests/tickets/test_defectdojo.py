"""DefectDojo jira_finding_mappings exports → finding ↔ Jira key links."""

from __future__ import annotations

import json

import pytest

from handoffkit.errors import InputError
from handoffkit.tickets.defectdojo import JiraLink
from handoffkit.tickets.detect import parse_links


def test_page_of_mappings(ticket_file):
    export = parse_links(*ticket_file("defectdojo_jira_mappings.json"))
    assert [(link.dojo_finding_id, link.jira_key) for link in export.links] == [
        ("236", "NTEST-3077"),
        ("241", "NTEST-3104"),
    ]
    assert export.skipped == {"engagement": 1, "finding_group": 1}
    assert export.links[1].source_ref == "$.results[1]"
    assert export.next_page is None


def test_bare_list_and_next_page():
    rows = [{"jira_key": "OPS-1", "finding": "7"}]
    assert parse_links(json.dumps(rows).encode(), "m.json").links == [JiraLink("7", "OPS-1", "$[0]")]
    page = {"count": 300, "next": "https://dojo/api/v2/jira_finding_mappings/?offset=100", "results": rows}
    assert parse_links(json.dumps(page).encode(), "m.json").next_page.endswith("offset=100")


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (
            {"results": [{"finding": 1}]},
            r"^m\.json:\$\.results\[0\]: expected a mapping row with a `jira_key`",
        ),
        ([{"jira_key": "OPS-1", "finding": "abc"}], r"^m\.json:\$\[0\]\.finding: finding 'abc'"),
        ({"issues": []}, r"^m\.json: expected a DefectDojo /api/v2/jira_finding_mappings/ export"),
    ],
)
def test_malformed_mappings_are_refused(doc, match):
    with pytest.raises(InputError, match=match):
        parse_links(json.dumps(doc).encode(), "m.json")
