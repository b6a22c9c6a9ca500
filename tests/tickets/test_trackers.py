"""The systems' REST dialects, request by request (the whole sync and push are in test_sync / test_push)."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from handoffkit.record.policy import parse_policy
from handoffkit.tickets import trackers
from handoffkit.tickets.connection import Settings, open_client
from tests.builders import DATA
from tests.tickets.trackers import CANARY, Tracker, json_response


def policy(field_id: str | None):
    text = (DATA / "policy.yaml").read_text()
    if field_id:
        text = text.replace(
            'custom_field: "Finding ID"', f'custom_field: "Finding ID"\n  jira_finding_field_id: {field_id}'
        )
    return parse_policy(text, "policy.yaml")


@pytest.mark.parametrize(
    ("field_id", "jql"),
    [
        (None, 'project = "SEC" AND labels = "HK-7"'),
        ("customfield_10100", 'project = "SEC" AND (labels = "HK-7" OR cf[10100] ~ "HK-7")'),
    ],
)
def test_jira_finds_a_finding_id_by_label_or_its_custom_field(
    httpserver: HTTPServer, monkeypatch, field_id: str | None, jql: str
) -> None:
    monkeypatch.setenv("HANDOFFKIT_JIRA_TOKEN", CANARY)
    tracker = Tracker(
        httpserver, "/rest/api/3/search/jql", pages=[json_response({"issues": [{"id": "9", "key": "SEC-9"}]})]
    )
    client = open_client("jira", Settings(url=httpserver.url_for("").rstrip("/")))
    assert trackers.find(client, policy(field_id), "HK-7") == [trackers.Remote("SEC-9", "9")]
    assert tracker.seen[0].args["jql"] == jql


def test_servicenow_asks_for_an_ordered_listing_with_display_values(monkeypatch) -> None:
    monkeypatch.setenv("HANDOFFKIT_SERVICENOW_TOKEN", CANARY)
    client = open_client(
        "servicenow", Settings(url="http://127.0.0.1:9", query="active=true^ORDERBYDESCsys_updated_on")
    )
    assert trackers.query(client, policy(None))["sysparm_query"] == "active=true^ORDERBYDESCsys_updated_on"
    client.settings = Settings(url="http://127.0.0.1:9")
    assert trackers.query(client, policy(None))["sysparm_query"] == "ORDERBYnumber"
    client.close()
