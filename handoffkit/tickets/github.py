"""GitHub Issues exports → ticket snapshots.

Accepted layouts (``format`` names):

- ``github-rest-list`` — a ``GET /repos/{owner}/{repo}/issues`` page (or ``/issues``, ``/orgs/…/issues``):
  a JSON array of issue objects.
- ``github-issue`` — a single issue object (``GET`` or ``POST …/issues[/{number}]``).
- ``github-search`` — a ``GET /search/issues`` body, ``{"total_count", "items": [...]}``.
- ``gh-cli`` — ``gh issue list --json
  number,title,state,labels,assignees,url,body,createdAt,updatedAt,closedAt`` output (camelCase keys,
  ``state`` ``OPEN``/``CLOSED``). An array is read as gh output when an item has a camelCase date key
  or an upper-case state; ``--json number,title`` alone reads the same either way.

Pull requests (REST objects with a ``pull_request`` key) are not tickets: they are skipped and counted
under ``skipped["pull_request"]``.

Mappings: key = ``owner/repo#number`` when the repository is known (from ``repository_url``, ``url`` or
``html_url``), else ``#number``; ``title``; status = ``state`` in lower case; status category open → todo,
closed → done; resolution = ``state_reason``/``stateReason`` of a closed issue, lower case (``completed``,
``not_planned``), none while open; assignee = the assignees' logins joined by ", "; labels = label names
(sorted, unique); description = ``body``; url = the web URL; created/updated as exported (ISO 8601 UTC).

Priority: GitHub has no priority field, so it comes from a label, shown verbatim. The first kind found
wins: ``priority:<x>`` or ``priority/<x>``, then ``P0``…``P4``, then ``severity:<x>`` or ``severity/<x>``
(each case-insensitive; when several labels of one kind exist, the alphabetically first).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from handoffkit.errors import InputError, located
from handoffkit.record.inputs import CsvTable
from handoffkit.record.model import TicketSnapshot

SYSTEM = "github"

CATEGORY_BY_STATE = {"open": "todo", "closed": "done"}

PRIORITY_LABELS = (
    re.compile(r"^priority\s*[:/]\s*\S", re.IGNORECASE),
    re.compile(r"^P[0-4]$", re.IGNORECASE),
    re.compile(r"^severity\s*[:/]\s*\S", re.IGNORECASE),
)
"""Label patterns that carry a priority, in order of precedence."""

# The two layouts name the same facts differently; everything else is shared.
_REST_KEYS = {"created": "created_at", "updated": "updated_at", "reason": "state_reason", "web": "html_url"}
_GH_CLI_KEYS = {"created": "createdAt", "updated": "updatedAt", "reason": "stateReason", "web": "url"}
_GH_CLI_MARKERS = frozenset({"createdAt", "updatedAt", "closedAt", "stateReason"})

_API_REPO = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+?)(?:/|$)")
_WEB_REPO = re.compile(r"^https?://[^/]+/(?P<repo>[^/]+/[^/]+)/(?:issues|pull)/\d+")

NOT_GITHUB = (
    "expected a GitHub issues export: a REST issue list (JSON array), a single issue object, "
    'a search response {"total_count", "items"} or `gh issue list --json ...` output'
)


def parse_document(doc: Any, source: str) -> tuple[str, list[TicketSnapshot], Counter[str]]:
    """Parse a decoded GitHub export (a JSON value) into snapshots, skipping pull requests.

    Returns ``(format, tickets, skipped)``.

    Raises:
        InputError: not one of the layouts in the module docstring, or an item is not an issue object.
    """
    if isinstance(doc, list):
        layout = "gh-cli" if _is_gh_cli(doc) else "github-rest-list"
        return layout, *parse_issues(doc, source, "$", _GH_CLI_KEYS if layout == "gh-cli" else _REST_KEYS)
    if isinstance(doc, dict) and "items" in doc and "total_count" in doc:
        if not isinstance(doc["items"], list):
            raise InputError(located(source, "$.items", "expected a list of issues"))
        return "github-search", *parse_issues(doc["items"], source, "$.items", _REST_KEYS)
    if isinstance(doc, dict) and "number" in doc:
        if _is_pull_request(doc):
            return "github-issue", [], Counter(pull_request=1)
        return "github-issue", [_snapshot(doc, source, "$", _REST_KEYS)], Counter()
    if isinstance(doc, dict) and "message" in doc and "documentation_url" in doc:
        raise InputError(
            located(
                source,
                "$.message",
                f"this is a GitHub error response ({doc['message']}), "
                "not an export; re-run the request that produced it",
            )
        )
    found = "CSV" if isinstance(doc, CsvTable) else "a JSON object of another kind"
    raise InputError(located(source, None, f"{NOT_GITHUB}; found {found}"))


def parse_issues(
    items: list[Any],
    source: str,
    base: str,
    keys: dict[str, str] = _REST_KEYS,
) -> tuple[list[TicketSnapshot], Counter[str]]:
    """Snapshots for the issues in ``items`` and the count of pull requests skipped."""
    tickets: list[TicketSnapshot] = []
    skipped: Counter[str] = Counter()
    for i, item in enumerate(items):
        if _is_pull_request(item):
            skipped["pull_request"] += 1
        else:
            tickets.append(_snapshot(item, source, f"{base}[{i}]", keys))
    return tickets, skipped


def _is_pull_request(item: Any) -> bool:
    # The issues API returns pull requests too; they carry this key and are not remediation tickets.
    return isinstance(item, dict) and "pull_request" in item


def _is_gh_cli(items: list[Any]) -> bool:
    return any(
        isinstance(item, dict) and (_GH_CLI_MARKERS & item.keys() or item.get("state") in ("OPEN", "CLOSED"))
        for item in items
    )


def _snapshot(item: Any, source: str, ref: str, keys: dict[str, str]) -> TicketSnapshot:
    if not isinstance(item, dict) or not isinstance(item.get("number"), int) or not isinstance(item.get("title"), str):
        raise InputError(located(source, ref, "expected a GitHub issue object with `number` and `title`"))
    state = str(item.get("state") or "").casefold()
    if state not in CATEGORY_BY_STATE:
        raise InputError(located(source, f"{ref}.state", f"state {item.get('state')!r}; expected open or closed"))
    labels = tuple(sorted({name for label in item.get("labels") or () if (name := _label_name(label))}))
    repo = _repository(item)
    reason = item.get(keys["reason"])
    return TicketSnapshot(
        system=SYSTEM,
        key=f"{repo}#{item['number']}" if repo else f"#{item['number']}",
        title=item["title"],
        status=state,
        status_category=CATEGORY_BY_STATE[state],
        priority=priority_from_labels(labels),
        assignee=_assignees(item),
        labels=labels,
        description=item.get("body") or None,
        url=item.get(keys["web"]),
        created_at=item.get(keys["created"]),
        updated_at=item.get(keys["updated"]),
        resolution=reason.casefold() if state == "closed" and isinstance(reason, str) and reason else None,
        source_ref=ref,
    )


def priority_from_labels(labels: tuple[str, ...]) -> str | None:
    """The label that states the priority (see the module docstring for precedence), or None."""
    for pattern in PRIORITY_LABELS:
        for label in sorted(labels):
            if pattern.match(label):
                return label
    return None


def _label_name(label: Any) -> str | None:
    # REST and gh give label objects; older payloads and hand-made lists give plain names.
    name = label.get("name") if isinstance(label, dict) else label
    return name if isinstance(name, str) and name else None


def _assignees(item: dict[str, Any]) -> str | None:
    people = item.get("assignees") or ([item["assignee"]] if item.get("assignee") else [])
    logins = [p["login"] for p in people if isinstance(p, dict) and isinstance(p.get("login"), str)]
    return ", ".join(logins) or None


def _repository(item: dict[str, Any]) -> str | None:
    """``owner/repo`` from whichever URL the layout carries."""
    for name in ("repository_url", "url", "html_url"):
        url = item.get(name)
        if isinstance(url, str) and (match := _API_REPO.search(url) or _WEB_REPO.match(url)):
            return match["repo"]
    return None
