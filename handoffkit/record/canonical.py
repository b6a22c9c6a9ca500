"""Canonical JSON: the exact text the activity log hashes and stores.

Sorted keys, no whitespace, NFC-normalised strings, NaN and infinities refused, instants as UTC text
with microseconds and ``Z`` (``2026-11-28T03:55:40.123456Z``), dates as ``YYYY-MM-DD``. The same
value gives the same bytes on every machine, time zone and database backend.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from handoffkit.record._fastjson import _small_number, compact_json, orjson_text
from handoffkit.record.schema import format_ts


def canonical_value(value: Any) -> Any:
    """``value`` with every string (and key) NFC-normalised and instants as canonical text."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored in the activity log (NaN and infinities are refused)")
        return value
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        # Keys keep their type (only strings are normalised) so both paths of canonical_json order and
        # render them the same way json.dumps does.
        return {
            unicodedata.normalize("NFC", k) if isinstance(k, str) else k: canonical_value(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [canonical_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(canonical_value(v) for v in value)
    raise TypeError(f"cannot put {type(value).__name__} into the activity log")


def canonical_json(value: Any) -> str:
    """The canonical text of ``value`` (the exact bytes that are hashed and stored).

    Fast path: :func:`~handoffkit.record._fastjson.compact_json`, kept when its text is all ASCII (nothing
    to NFC-normalise) and decodes back to ``value`` itself (orjson writes NaN and infinities as ``null``,
    which this catches). Anything else takes the exact path that normalises every key and string first.
    """
    text = compact_json(value)
    if text is not None and text.isascii() and orjson.loads(text) == value:
        return text
    return json.dumps(
        canonical_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def part_text(value: Any) -> str | None:
    """orjson's text of ``value`` when it decodes back to ``value`` itself, else None (orjson refuses it,
    or writes something else for it: ``null`` for a NaN, a list for a tuple, a value for an enum).

    For composing a large document from parts written once each (:func:`handoffkit.record.log.append`):
    a dict whose every value has such a text is written by orjson as ``{"key":text,...}`` in sorted-key
    order, and that text decodes back to the dict, which is the check :func:`canonical_json` makes of the
    whole; :func:`composed_is_canonical` makes the rest of its checks on the composed text.
    """
    text = orjson_text(value)
    return text if text is not None and orjson.loads(text) == value else None


def composed_is_canonical(text: str) -> bool:
    """Whether a document composed of :func:`part_text` parts (see there) is what :func:`canonical_json`
    writes for it: its text is all ASCII (nothing to NFC-normalise) and holds no number that ``json``
    writes differently. False means: take :func:`canonical_json` of the whole value instead."""
    return text.isascii() and not _small_number(text)


def chain_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + payload.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file, read in chunks (an activity-log CSV runs to gigabytes)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
