"""Evidence pasted into a ticket instead of linked: what a ticket's text gives away, and why it was flagged.

A ticket carries the permalink to the record, never a copy of the evidence. Two kinds of test, each
giving a reason a person can check:

- **patterns** of pasted material: an HTTP request or response line, a long base64 run (an encoded
  request, response or screenshot), an attachment embedded with Jira's markup (``!screenshot.png!``,
  ``!shot.png|thumbnail!``, ``[^trace.har]``) or an uploaded image in Markdown;
- **copied text**: word runs of the finding's stored evidence (its scanner output) reproduced in the
  ticket. Both texts are cut into shingles of :data:`SHINGLE` consecutive words (lower case, punctuation
  dropped); shingles that the record's own fields also hold (title, description, asset, location, rule,
  CVE/CWE ids, CVSS vector — what a payload or an engineer legitimately restates) do not count. The
  ticket is flagged when it holds :data:`MATCHES` or more of the evidence's remaining shingles: a copied
  run of about ten words or more, which prose written from the record does not reach by chance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from defusedxml import ElementTree

SHINGLE = 8
MATCHES = 3

_PATTERNS = (
    (
        "an HTTP message",
        re.compile(
            r"^(?:(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+ HTTP/\d(?:\.\d)?|HTTP/\d(?:\.\d)? \d{3}\b)",
            re.MULTILINE,
        ),
    ),
    ("a base64 run", re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")),
    (
        "an embedded attachment",
        re.compile(r"!(?=[^!\s|]*\.[A-Za-z0-9]{2,5}[!|])[^!\s|]+(?:\|[^!\n]*)?!|\[\^[^\]\s]+\.[A-Za-z0-9]{2,5}\]"),
    ),
    ("an uploaded image", re.compile(r"!\[[^\]]*\]\((?:https?://[^)\s]*(?:user-attachments|user-images)[^)\s]*)\)")),
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def patterns(text: str | None) -> list[str]:
    """The pasted-material patterns ``text`` shows, each as a reason naming what was found."""
    found = []
    for name, pattern in _PATTERNS:
        match = pattern.search(text or "")
        if match:
            found.append(f"{name} ({_clip(match.group(0))})")
    return found


@dataclass(frozen=True)
class Stored:
    """One finding's stored evidence, ready to compare: the shingles only the evidence holds."""

    finding_id: str
    shingles: frozenset[tuple[str, ...]]

    @classmethod
    def of(cls, finding_id: str, contents: Iterable[tuple[bytes, str | None]], record_text: Iterable[str]) -> Stored:
        """``contents`` are the evidence's (bytes, media type); ``record_text`` the record's own fields."""
        evidence = set().union(*(shingles(text) for content, media in contents for text in _texts(content, media)))
        allowed = set().union(*(shingles(t) for t in record_text if t))
        return cls(finding_id, frozenset(evidence - allowed))


def copied(text: str | None, stored: Iterable[Stored]) -> list[str]:
    """A reason per finding whose evidence the ticket's ``text`` reproduces (see the module docstring)."""
    runs = _runs(text or "")
    mine = set(runs)
    found = []
    for evidence in stored:
        shared = mine & evidence.shingles
        if len(shared) >= MATCHES:
            sample = " ".join(next(r for r in runs if r in shared))  # the first copied run, as the ticket reads
            found.append(f"{len(shared)} word runs of {evidence.finding_id}'s stored evidence ({_clip(sample)})")
    return found


def shingles(text: str) -> set[tuple[str, ...]]:
    """Every run of :data:`SHINGLE` consecutive words of ``text``, lower-cased, punctuation dropped."""
    return set(_runs(text))


def _runs(text: str) -> list[tuple[str, ...]]:
    words = [w.casefold() for w in _WORD.findall(text)]
    return [tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)]


def _texts(content: bytes, media_type: str | None) -> Iterator[str]:
    """The human-readable text of stored evidence: a JSON item's strings, an XML element's text."""
    raw = content.decode("utf-8", errors="replace")
    if (media_type or "").endswith("json"):
        try:
            yield from _strings(json.loads(raw))
            return
        except ValueError:
            pass
    elif (media_type or "").endswith("xml"):
        try:
            yield from (t for t in ElementTree.fromstring(content).itertext() if t.strip())
            return
        except ElementTree.ParseError:
            pass
    yield raw


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _clip(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
