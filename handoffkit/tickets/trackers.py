"""The three ticket systems' REST dialects: how their tickets are listed page by page, found by a
finding id, created and updated.

- Jira Cloud: ``GET /rest/api/3/search/jql`` paged by ``nextPageToken`` (until ``isLast`` or no token);
  Jira Data Center: ``GET /rest/api/2/search`` paged by ``startAt`` (until ``total`` is reached or a page
  is empty). The JQL is the policy's project (``project = "SEC" ORDER BY key ASC``) unless the
  parameters give one; the fields are those the parsers read, plus the policy's finding-id custom
  field (``jira_finding_field_id``), which is then read under the policy's ``custom_field`` name.
- GitHub: ``GET /repos/{owner}/{repo}/issues?state=all`` (optionally ``labels``, ``since``) or
  ``GET /search/issues?q=…``, following the ``Link`` header's ``next`` (only on the API's own host:
  the request carries the token).
- ServiceNow: ``GET /api/now/table/{table}`` with ``sysparm_query`` (ordered, so offsets are stable),
  ``sysparm_display_value=all``, ``sysparm_limit``/``sysparm_offset`` until a short page.

Each page's body is parsed by the same parser as a file export (:func:`handoffkit.tickets.detect.parse_export`),
so a malformed page is refused the same way, named by the request that returned it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from handoffkit.errors import RemoteError
from handoffkit.record.canonical import sha256_bytes
from handoffkit.record.policy import Policy
from handoffkit.tickets.connection import Client

JIRA_FIELDS = ("summary", "status", "priority", "assignee", "labels", "description", "created", "updated", "resolution")
SERVICENOW_FIELDS = (
    "sys_id,number,short_description,state,priority,assigned_to,description,close_code,active,"
    "sys_created_on,sys_updated_on,u_finding_id"
)


@dataclass(frozen=True)
class Page:
    """One response of a listing: the request that fetched it and the bytes it returned."""

    request: str
    body: bytes

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.body)


def query(client: Client, policy: Policy, since: str | None = None) -> dict[str, Any]:
    """What the listing asks for (recorded in every event's origin)."""
    s = client.settings
    if client.system == "jira":
        fields = [*JIRA_FIELDS, *filter(None, [policy.ticket_payload.jira_finding_field_id])]
        jql = s.jql or f'project = "{policy.ticket_payload.jira_project}" ORDER BY key ASC'
        return {"deployment": s.deployment, "jql": jql, "fields": ",".join(fields)}
    if client.system == "github":
        if s.search:
            return {"search": s.search}
        if not s.repo:
            raise RemoteError("github: the parameters name neither `repo` nor `search`; name the repository to read")
        return {"repo": s.repo, "label": s.label, "since": since}
    table_query = s.query or ""
    if "ORDERBY" not in table_query:
        table_query = f"{table_query}^ORDERBYnumber" if table_query else "ORDERBYnumber"
    return {"table": s.table, "sysparm_query": table_query}


def jira_names(policy: Policy) -> dict[str, str] | None:
    """The finding-id field's id → the name the policy reads it under."""
    tp = policy.ticket_payload
    return {tp.jira_finding_field_id: tp.custom_field} if tp.jira_finding_field_id else None


def pages(client: Client, asked: dict[str, Any]) -> Iterator[Page]:
    """Every page of the listing, in order."""
    if client.system == "jira":
        yield from (_jira_cloud if asked["deployment"] == "cloud" else _jira_datacenter)(client, asked)
    elif client.system == "github":
        yield from _github(client, asked)
    else:
        yield from _servicenow(client, asked)


def _page(client: Client, url: str, params: Any = None) -> tuple[Page, Any]:
    response = client.request("GET", url, params=params)
    page = Page(f"GET {response.request.url}", response.content)
    try:
        return page, response.json()
    except ValueError:
        return page, None  # the parser names the malformed body and the request


def _jira_cloud(client: Client, asked: dict[str, Any]) -> Iterator[Page]:
    params: dict[str, Any] = {"jql": asked["jql"], "fields": asked["fields"], "maxResults": client.settings.page_size}
    while True:
        page, doc = _page(client, "rest/api/3/search/jql", params)
        yield page
        token = doc.get("nextPageToken") if isinstance(doc, dict) else None
        if not token or doc.get("isLast"):
            return
        params = {**params, "nextPageToken": token}


def _jira_datacenter(client: Client, asked: dict[str, Any]) -> Iterator[Page]:
    start = 0
    while True:
        params = {"jql": asked["jql"], "fields": asked["fields"], "maxResults": client.settings.page_size}
        page, doc = _page(client, "rest/api/2/search", {**params, "startAt": start})
        yield page
        issues = doc.get("issues") if isinstance(doc, dict) else None
        if not isinstance(issues, list) or not issues:
            return
        start += len(issues)
        total = doc.get("total")
        if not isinstance(total, int) or start >= total:
            return


def _github(client: Client, asked: dict[str, Any]) -> Iterator[Page]:
    size = client.settings.page_size
    if "search" in asked:
        url, params = "search/issues", {"q": asked["search"], "per_page": size}
    else:
        wanted = {"state": "all", "per_page": size, "labels": asked["label"], "since": asked["since"]}
        url, params = f"repos/{asked['repo']}/issues", {k: v for k, v in wanted.items() if v}
    home = httpx.URL(client.settings.url).host
    while True:
        response = client.request("GET", url, params=params)
        yield Page(f"GET {response.request.url}", response.content)
        following = response.links.get("next", {}).get("url")
        if not following:
            return
        if httpx.URL(following).host != home:
            raise RemoteError(
                client.scrub(f"github: GET {response.request.url}: the next page is on another host "
                             f"({httpx.URL(following).host}); not following it with these credentials")
            )  # fmt: skip
        url, params = following, None


def _servicenow(client: Client, asked: dict[str, Any]) -> Iterator[Page]:
    limit, offset = client.settings.page_size, 0
    while True:
        params = {
            "sysparm_query": asked["sysparm_query"],
            "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true",
            "sysparm_fields": SERVICENOW_FIELDS,
            "sysparm_limit": limit,
            "sysparm_offset": offset,
        }
        page, doc = _page(client, f"api/now/table/{asked['table']}", params)
        yield page
        records = doc.get("result") if isinstance(doc, dict) else None
        if not isinstance(records, list) or len(records) < limit:
            return
        offset += limit
