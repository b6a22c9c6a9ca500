"""The three ticket systems' REST dialects: how their tickets are listed page by page, found by a
finding id, created and updated.

- Jira Cloud: ``GET /rest/api/3/search/jql`` paged by ``nextPageToken`` (until ``isLast`` or no token);
  Jira Data Center: ``GET /rest/api/2/search`` paged by ``startAt`` (until ``total`` is reached or a page
  is empty). The JQL is the policy's project (``project = "SEC" ORDER BY key ASC``; with a ticket
  scope, ``project in (…)`` of its ``jira_projects``) unless the parameters give one; the fields are
  those the parsers read, plus the policy's finding-id custom field (``jira_finding_field_id``), which
  is then read under the policy's ``custom_field`` name.
- GitHub: ``GET /repos/{owner}/{repo}/issues?state=all`` (optionally ``labels``, ``since``) or
  ``GET /search/issues?q=…``, following the ``Link`` header's ``next`` (only on the API's own host:
  the request carries the token).
- ServiceNow: ``GET /api/now/table/{table}`` with ``sysparm_query`` (the parameters' query and the policy's
  scope ``servicenow_query``, ordered, so offsets are stable),
  ``sysparm_display_value=all``, ``sysparm_limit``/``sysparm_offset`` until a short page.

Each page's body is parsed by the same parser as a file export (:func:`handoffkit.tickets.detect.parse_export`),
so a malformed page is refused the same way, named by the request that returned it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx

from handoffkit.errors import ConfigError, RemoteError
from handoffkit.record.inputs import load_json
from handoffkit.record.policy import Policy
from handoffkit.tickets.connection import Client
from handoffkit.tickets.payload import severity_label

JIRA_FIELDS = ("summary", "status", "priority", "assignee", "labels", "description", "created", "updated", "resolution")
SERVICENOW_FIELDS = (
    "sys_id,number,short_description,state,priority,assigned_to,description,close_code,active,"
    "sys_created_on,sys_updated_on,u_finding_id"
)


@dataclass(frozen=True)
class Page:
    """One response of a listing: the request that fetched it, and its body decoded once (by the
    project's strict JSON reader, so a malformed body is refused as a malformed file is)."""

    request: str
    doc: Any
    expected: int | None = None
    """How many pages the listing has in all, where the system says (Jira Data Center's ``total``,
    GitHub's ``rel="last"`` link, ServiceNow's ``X-Total-Count``); None where it does not (Jira Cloud)."""


def _decoded(client: Client, response: httpx.Response) -> Page:
    request = f"GET {response.request.url}"
    return Page(request, load_json(response.content, f"{client.system}: {request}"))


def query(client: Client, policy: Policy, since: str | None = None) -> dict[str, Any]:
    """What the listing asks for (recorded in every event's origin)."""
    s = client.settings
    if client.system == "jira":
        fields = [*JIRA_FIELDS, *filter(None, [policy.ticket_payload.jira_finding_field_id])]
        scope = policy.ticket_payload.scope
        projects = scope.jira_projects if scope else []
        named = ", ".join(f'"{p.strip()}"' for p in projects)
        where = f"project in ({named})" if projects else f'project = "{policy.ticket_payload.jira_project}"'
        jql = s.jql or f"{where} ORDER BY key ASC"
        return {"deployment": s.deployment, "jql": jql, "fields": ",".join(fields)}
    if client.system == "github":
        if s.search:
            return {"search": s.search}
        if not s.repo:
            raise ConfigError("github: the parameters name neither `repo` nor `search`; name the repository to read")
        return {"repo": s.repo, "label": s.label, "since": since}
    # the scope first: an ORDERBY the parameters' query ends with stays last
    table_query = "^".join(filter(None, [_scope_query(policy), s.query]))
    if "ORDERBY" not in table_query:
        table_query = f"{table_query}^ORDERBYnumber" if table_query else "ORDERBYnumber"
    return {"table": s.table, "sysparm_query": table_query}


def _scope_query(policy: Policy) -> str | None:
    """The policy's ServiceNow scope, sent with the listing's query. The import checks every record
    against it again, so a query that widens the listing (``^NQ``) cannot bring another's records in."""
    scope = policy.ticket_payload.scope
    return scope.servicenow_query if scope else None


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
    page = _decoded(client, client.request("GET", url, params=params))
    return page, page.doc


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
        total = doc.get("total") if isinstance(doc, dict) else None
        yield replace(page, expected=_pages_for(total, client.settings.page_size))
        issues = doc.get("issues") if isinstance(doc, dict) else None
        if not isinstance(issues, list) or not issues:
            return
        start += len(issues)
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
    done = 0
    while True:
        response = client.request("GET", url, params=params)
        done += 1
        last = response.links.get("last", {}).get("url")
        following = response.links.get("next", {}).get("url")
        expected = None  # a next page but no link to the last one: the count is not known
        if last:
            expected = _int(httpx.URL(last).params.get("page"))
        elif not following:
            expected = done  # this page is the last
        yield replace(_decoded(client, response), expected=expected)
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
        response = client.request("GET", f"api/now/table/{asked['table']}", params=params)
        page = _decoded(client, response)
        yield replace(page, expected=_pages_for(_int(response.headers.get("X-Total-Count")), limit))
        records = page.doc.get("result") if isinstance(page.doc, dict) else None
        if not isinstance(records, list) or len(records) < limit:
            return
        offset += limit


def _pages_for(items: Any, size: int) -> int | None:
    """The pages ``items`` results take at ``size`` a page (at least one), or None for no count."""
    return max(1, -(-items // size)) if isinstance(items, int) and not isinstance(items, bool) and items >= 0 else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


# ------------------------------------------------------------------------------------------- writing

KEV_LABEL = "kev"


@dataclass(frozen=True)
class Remote:
    """A ticket on the system: its key as the record shows it, and the id its API addresses it by."""

    key: str
    remote_id: str


def find(client: Client, policy: Policy, finding_id: str) -> list[Remote]:
    """Tickets already carrying ``finding_id`` (the label, or ServiceNow's finding-id field)."""
    s = client.settings
    if client.system == "jira":
        carried = f'labels = "{finding_id}"'
        field_id = policy.ticket_payload.jira_finding_field_id or ""
        if field_id.startswith("customfield_"):  # a ticket made by hand may carry the id only in the field
            carried = f'({carried} OR cf[{field_id.removeprefix("customfield_")}] ~ "{finding_id}")'
        jql = f'project = "{policy.ticket_payload.jira_project}" AND {carried}'
        path = "rest/api/3/search/jql" if s.deployment == "cloud" else "rest/api/2/search"
        doc = _json(client, "GET", path, params={"jql": jql, "fields": "summary", "maxResults": 50})
        return [Remote(i["key"], str(i["id"])) for i in _items(doc, "issues", client)]
    if client.system == "github":
        doc = _json(client, "GET", f"repos/{_repo(client)}/issues", params={"labels": finding_id, "state": "all"})
        return [
            Remote(f"{_repo(client)}#{i['number']}", str(i["number"]))
            for i in _items(doc, None, client)
            if "pull_request" not in i
        ]
    params = {"sysparm_query": f"u_finding_id={finding_id}", "sysparm_fields": "sys_id,number"}
    doc = _json(client, "GET", f"api/now/table/{s.table}", params=params)
    return [Remote(r["number"], r["sys_id"]) for r in _items(doc, "result", client)]


def create(client: Client, rendered: dict[str, Any], kev: bool) -> Remote:
    """Create the ticket from its rendered payload (:func:`handoffkit.tickets.payload.for_target`)."""
    body = _with_kev(client.system, rendered, kev)
    if client.system == "jira":
        doc = _json(client, "POST", "rest/api/2/issue", json=body)
        return Remote(_field(doc, "key", client), str(_field(doc, "id", client)))
    if client.system == "github":
        doc = _json(client, "POST", f"repos/{_repo(client)}/issues", json=body)
        number = _field(doc, "number", client)
        return Remote(f"{_repo(client)}#{number}", str(number))
    doc = _json(client, "POST", f"api/now/table/{client.settings.table}", json=body)
    record = _field(doc, "result", client)
    return Remote(_field(record, "number", client), _field(record, "sys_id", client))


def update(client: Client, policy: Policy, remote: Remote, changes: dict[str, tuple[Any, Any]]) -> None:
    """Send only the changed fields — severity (priority), due date, KEV — never status or assignee."""
    tp = policy.ticket_payload
    if client.system == "jira":
        fields: dict[str, Any] = {}
        labels: list[dict[str, str]] = []
        if "severity" in changes:
            old, new = changes["severity"]
            fields["priority"] = {"name": tp.priority_for("jira", new)}
            labels += [{"remove": severity_label(policy, "jira", old)}, {"add": severity_label(policy, "jira", new)}]
        if "due_date" in changes:
            fields["duedate"] = changes["due_date"][1]
        if "kev" in changes:
            labels.append({"add" if changes["kev"][1] else "remove": KEV_LABEL})
        body: dict[str, Any] = {"fields": fields} | ({"update": {"labels": labels}} if labels else {})
        client.request("PUT", f"rest/api/2/issue/{remote.remote_id}", json=body)
    elif client.system == "github":
        issue = f"repos/{_repo(client)}/issues/{remote.remote_id}"
        add, drop = [], []
        if "severity" in changes:
            old, new = changes["severity"]
            add.append(severity_label(policy, "github", new))
            drop.append(severity_label(policy, "github", old))
        if "kev" in changes:
            (add if changes["kev"][1] else drop).append(KEV_LABEL)
        if add:
            client.request("POST", f"{issue}/labels", json={"labels": add})
        for label in drop:
            client.request("DELETE", f"{issue}/labels/{label}", allow=(404,))  # already gone is fine
        if "due_date" in changes:
            old, new = changes["due_date"]
            # GitHub issues have no due-date field: the change is said where engineering reads it.
            client.request(
                "POST", f"{issue}/comments", json={"body": f"Due date on the security record: {new} (was {old})."}
            )
    else:
        body = {}
        if "severity" in changes:
            body["priority"] = tp.priority_for("servicenow", changes["severity"][1])
        if "due_date" in changes:
            body["due_date"] = changes["due_date"][1]
        if "kev" in changes:
            body["u_kev"] = "true" if changes["kev"][1] else "false"
        client.request("PATCH", f"api/now/table/{client.settings.table}/{remote.remote_id}", json=body)


def _with_kev(system: str, rendered: dict[str, Any], kev: bool) -> dict[str, Any]:
    if system == "servicenow":
        return {**rendered, "u_kev": "true" if kev else "false"}
    if not kev:
        return rendered
    if system == "jira":
        return {"fields": {**rendered["fields"], "labels": [*rendered["fields"]["labels"], KEV_LABEL]}}
    return {**rendered, "labels": [*rendered["labels"], KEV_LABEL]}


def _repo(client: Client) -> str:
    if not client.settings.repo:
        raise ConfigError("github: the parameters name no `repo`; name the repository tickets are created in")
    return client.settings.repo


def _json(client: Client, method: str, url: str, **kwargs: Any) -> Any:
    response = client.request(method, url, **kwargs)
    try:
        return response.json()
    except ValueError:
        raise RemoteError(
            client.scrub(f"{client.system}: {method} {response.request.url}: the answer is not JSON")
        ) from None


def _items(doc: Any, key: str | None, client: Client) -> list[dict[str, Any]]:
    items = doc.get(key) if key and isinstance(doc, dict) else doc
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RemoteError(
            f"{client.system}: a search answered {type(doc).__name__} without a list of {key or 'issues'}"
        )
    return items


def _field(doc: Any, name: str, client: Client) -> Any:
    if not isinstance(doc, dict) or doc.get(name) in (None, ""):
        raise RemoteError(f"{client.system}: the created ticket's answer has no `{name}`")
    return doc[name]


JIRA_HISTORY_FIELDS = {"summary": "title", "priority": "priority"}


def jira_changelog(client: Client, key: str) -> list[dict[str, Any]]:
    """Who changed an issue's summary or priority, and when (``expand=changelog`` on the issue, which
    Cloud and Data Center both serve), oldest first, as ``{field, from, to, author, at}``."""
    doc = _json(client, "GET", f"rest/api/2/issue/{key}", params={"expand": "changelog", "fields": "summary"})
    histories = ((doc or {}).get("changelog") or {}).get("histories") if isinstance(doc, dict) else None
    if not isinstance(histories, list):
        raise RemoteError(f"jira: GET rest/api/2/issue/{key}?expand=changelog: the answer has no changelog.histories")
    out = []
    for history in histories:
        author = history.get("author") or {}
        for item in history.get("items") or ():
            if item.get("field") in JIRA_HISTORY_FIELDS:
                out.append(
                    {
                        "field": JIRA_HISTORY_FIELDS[item["field"]],
                        "from": item.get("fromString"),
                        "to": item.get("toString"),
                        "author": author.get("displayName") or author.get("name"),
                        "at": history.get("created"),
                    }
                )
    return sorted(out, key=lambda h: h["at"] or "")
