"""The finding id, ``HK-<n>``: stable, global across engagements, the token every ticket carries.

Its pattern, how one is made from its number and read back, and the order people expect for ids and
ticket keys alike: by their trailing number (``HK-9`` before ``HK-10``, ``SEC-9`` before ``SEC-10``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

PREFIX = "HK-"
PATTERN = r"HK-[0-9]+"
"""One finding id, as regular-expression text (for a larger pattern, a JSON Schema, a permalink)."""
IN_TEXT = re.compile(rf"\b{PATTERN}\b")
"""A finding id anywhere in a text."""
_WHOLE = re.compile(PATTERN)


def make(number: int) -> str:
    """The id of the finding numbered ``number``."""
    return f"{PREFIX}{number}"


def number(finding_id: str) -> int:
    """The number of a finding id (``HK-12`` → 12). Raises ValueError for anything else."""
    if not is_finding_id(finding_id):
        raise ValueError(f"{finding_id!r} is not a finding id (finding ids look like HK-123)")
    return int(finding_id[len(PREFIX) :])


def is_finding_id(text: str) -> bool:
    """Exactly one finding id (``HK-12``; not ``hk-12``, ``HK-12a`` or ``[HK-12]``)."""
    return _WHOLE.fullmatch(text) is not None


def order(value: str) -> tuple[int, str]:
    """The sort key of an id or ticket key: its trailing number, then its text (no number sorts first)."""
    head, _, num = value.rpartition("-")
    return (int(num), head) if num.isdigit() else (0, value)


def ordered(values: Iterable[Any]) -> list[str]:
    """The values as text, once each, in :func:`order`."""
    found = set(map(str, values))
    if _one_numbered_series(found):
        # Same head, plain digits: number order is length then text order — two sorts in C instead of a
        # Python key per id, for the reconciliation's longest lists.
        return sorted(sorted(found), key=len)
    return sorted(found, key=order)


def _one_numbered_series(ids: set[str]) -> bool:
    """Every id is ``<the same head>-<digits without a leading zero>`` (``HK-7``, ``HK-12``): one match of
    a regular expression over the ids joined by newlines; as many newlines as ids means none holds one."""
    sample = next(iter(ids), "")
    cut = sample.rfind("-") + 1
    if cut == 0:
        return False
    text = "\n".join(ids) + "\n"
    return (
        text.count("\n") == len(ids) and re.fullmatch(f"(?:{re.escape(sample[:cut])}[1-9][0-9]*\n)*", text) is not None
    )


def frame_order(ids: pd.Series) -> Any:
    """The positions that put a column of finding ids in number order (``frame.iloc[frame_order(...)]``)."""
    return ids.str.slice(len(PREFIX)).astype("int64").argsort(kind="stable")
