"""Finding ids in number order: one numbered series, several heads, odd and non-ASCII digits."""

from __future__ import annotations

import pytest

from handoffkit.record.ids import order, ordered


@pytest.mark.parametrize(
    "ids",
    [
        [f"HK-{n}" for n in (10, 2, 1, 100, 33, 2)],  # one numbered series: the fast path
        ["HK-1", "HK-01", "HK-2"],  # a leading zero
        ["SEC-10", "OPS-2", "SEC-1", "OPS-1"],  # two heads
        ["A-B-20", "A-B-3"],
        ["HK-1", "HK-x", "nodash"],
        ["HK-\u0661\u0662", "HK-3"],  # non-ASCII digits
        ["HK-5"],
        ["HK-1\nHK-2", "HK-3"],  # an id holding the separator of the one-pass check
        ["HK-20", "HK-3\n"],
        [],
    ],
)
def test_ids_come_in_number_order_once_each(ids):
    assert ordered(ids) == sorted(set(ids), key=order)
