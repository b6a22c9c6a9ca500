"""A speed shortcut with a twin: ``json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` written by orjson in C, or None where the two texts could differ.

Every event's payload and every JSON scanner item goes through here. The twin is ``json.dumps``; the
property tests in ``tests/record/test_canonical.py`` (arbitrary JSON values plus tuples, non-string
keys, big integers, small floats, NaN and odd text) hold :func:`handoffkit.record.canonical.canonical_json`
and :func:`handoffkit.ingest.common.json_raw` to it.
"""

from __future__ import annotations

from typing import Any

import orjson


def _small_number(text: str) -> bool:
    """A number with a negative exponent, or below 1e-4, in orjson's text: Python writes these
    differently (``1e-05`` for orjson's ``0.00001``, ``1e-07`` for ``1e-7``). Only the places holding
    ``e-`` or ``0.0000`` are looked at, not the whole text."""
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


OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Sorted keys; instants, dates and dataclasses are refused as ``json`` refuses them (orjson would write its
own text); :func:`handoffkit.record.canonical.canonical_value` gives instants their canonical text on the
exact path."""


def orjson_text(value: Any) -> str | None:
    """orjson's text of ``value`` with :data:`OPTIONS`, or None where orjson refuses it (a non-string key,
    an integer over 64 bits, a surrogate, a set, an unknown type); no check of how ``json`` would write it."""
    try:
        return orjson.dumps(value, option=OPTIONS).decode()
    except TypeError:
        return None


def compact_json(value: Any) -> str | None:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, the same text,
    through orjson, which writes it in C; None where the two could differ (a
    small float, a type only ``json`` or only orjson takes) and the caller must use ``json``.
    """
    text = orjson_text(value)
    if text is None or text[0] in "-0123456789" or _small_number(text):
        return None  # (a bare number, never a payload or an item, is left to json whole)
    return text
