"""Which handoffkit finding ids a ticket carries.

A ticket is a downstream view of a finding, so it must carry the finding id (``HK-<digits>``). Three
places are read, each one switchable (``sources``):

- ``label``: a label that *is* a finding id, exactly ``HK-123`` (case-sensitive). Prefixed forms such as
  ``hk:HK-123`` or ``finding/HK-123`` are deliberately **not** accepted: one convention keeps the
  reconciliation unambiguous, and a near-miss label shows up as an orphan ticket instead of a guess.
- ``custom_field``: every id found in the named custom field (a text field holding ``HK-1, HK-2`` or a
  multi-value field holding a list). Field names compare case-insensitively, ignoring spaces,
  underscores and ServiceNow's ``u_`` prefix, so ``"Finding ID"`` also finds ``u_finding_id``.
- ``token``: ``[HK-123]`` tokens in the title or description (the brackets are required so that prose
  merely mentioning an id does not link the ticket).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from handoffkit.record import ids
from handoffkit.record.model import TicketSnapshot

FINDING_ID = ids.IN_TEXT
"""A handoffkit finding id anywhere in a text."""

ID_SOURCES = ("label", "custom_field", "token")

_TOKEN = re.compile(rf"\[({ids.PATTERN})\]")


def extract_finding_ids(
    snapshot: TicketSnapshot,
    sources: Iterable[str] = ID_SOURCES,
    custom_field: str = "Finding ID",
) -> tuple[str, ...]:
    """Return the finding ids ``snapshot`` carries, unique, in numeric order (HK-9 before HK-10).

    Args:
        snapshot: a parsed ticket.
        sources: which of ``label``, ``custom_field`` and ``token`` to read (see the module docstring).
        custom_field: the display name of the custom field holding finding ids.

    Raises:
        ValueError: a source name is not one of :data:`ID_SOURCES`.
    """
    wanted = tuple(sources)
    unknown = [s for s in wanted if s not in ID_SOURCES]
    if unknown:
        raise ValueError(f"unknown finding-id source(s) {unknown}; expected some of {', '.join(ID_SOURCES)}")
    found: set[str] = set()
    if "label" in wanted:
        found.update(label for label in snapshot.labels if ids.is_finding_id(label))
    if "custom_field" in wanted:
        for text in _strings(_custom_field(snapshot.fields, custom_field)):
            found.update(FINDING_ID.findall(text))
    if "token" in wanted:
        for text in (snapshot.title, snapshot.description or ""):
            found.update(_TOKEN.findall(text))
    return tuple(ids.ordered(found))


def _field_key(name: str) -> str:
    """``"Finding ID"``, ``"finding_id"`` and ``"u_finding_id"`` all become ``"findingid"``."""
    name = name.strip().casefold()
    name = name.removeprefix("u_")
    return re.sub(r"[\s_]+", "", name)


def _custom_field(fields: dict[str, Any], name: str) -> Any:
    wanted = _field_key(name)
    return [value for key, value in fields.items() if _field_key(key) == wanted]


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a field value (custom fields may hold lists, possibly nested)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
