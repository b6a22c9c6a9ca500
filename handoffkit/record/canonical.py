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

    Fast path: :func:`compact_json`, kept when its text is all ASCII (nothing to NFC-normalise) and
    decodes back to ``value`` itself (orjson writes NaN and infinities as ``null``, which this catches).
    Anything else takes the exact path that normalises every key and string before serialising.
    """
    text = compact_json(value)
    if text is not None and text.isascii() and orjson.loads(text) == value:
        return text
    return json.dumps(
        canonical_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _small_number(text: str) -> bool:
    """A number with a negative exponent, or below 1e-4, in orjson's text: Python writes these
    differently (``1e-05`` for orjson's ``0.00001``, ``1e-07`` for ``1e-7``). Only the places holding
    ``e-`` or ``0.0000`` are looked at (a regular expression over the whole text costs 5 µs a payload)."""
    for mark in ("e-", "0.0000"):
        at = text.find(mark)
        while at >= 0:
            start = at
            while start and text[start - 1] in "0123456789.-":
                start -= 1
            # In a number (``e-`` after its digits) that follows ``:``, ``,`` or ``[``: not a string's text.
            if start and text[start - 1] in ":,[" and (start < at or mark != "e-"):
                return True
            at = text.find(mark, at + 1)
    return False


def compact_json(value: Any) -> str | None:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, the same text,
    through orjson (an event's payload in a tenth of the time); None where the two could differ (a
    small float, a type only ``json`` or only orjson takes) and the caller must use ``json``.
    """
    try:
        # Instants, dates and dataclasses are refused as ``json`` refuses them (orjson would write its
        # own text); :func:`canonical_value` gives instants their canonical text on the exact path.
        text = orjson.dumps(
            value, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        ).decode()
    except TypeError:  # a non-string key, an integer over 64 bits, a surrogate, a set, an unknown type
        return None
    if text[0] in "-0123456789" or _small_number(text):
        return None  # (a bare number, never a payload or an item, is left to json whole)
    return text


def chain_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + payload.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file, read in chunks (an activity-log CSV runs to gigabytes)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
