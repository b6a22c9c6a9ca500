"""Formula-safe CSV: the one rule, the one writer, and the fast record writer held to ``csv.writer``."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from handoffkit.record._csvline import quoted_line
from handoffkit.record.csvsafe import FORMULA_START, rows_to_csv, safe_cell, safe_cells, to_csv, unsafe_cell

TEXT = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(["=", "+", "-", "@", "'", '"', "\t", "\r", "\n"])
)


@given(st.lists(TEXT, max_size=6))
def test_the_fast_record_is_what_csv_writer_writes(cells: list[str]) -> None:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(cells)
    assert quoted_line(cells) == out.getvalue()


@given(st.lists(TEXT | st.none() | st.integers() | st.booleans(), max_size=6))
def test_the_row_rule_is_the_cell_rule(values: list[object]) -> None:
    assert safe_cells(values) == [safe_cell(v) for v in values]


@given(TEXT)
def test_no_cell_starts_a_formula_and_the_value_comes_back(text: str) -> None:
    cell = safe_cell(text)
    assert not cell.startswith(FORMULA_START)
    assert unsafe_cell(cell) == text


def test_every_writer_neutralises_a_formula_in_any_column() -> None:
    canaries = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "'=1"]
    rows = [{"a": c, "b": "plain"} for c in canaries]
    for text in (to_csv(rows, ["a", "b"]), rows_to_csv(["a", "a"], [[c, c] for c in canaries])):
        records = list(csv.reader(io.StringIO(text, newline="")))[1:]
        assert [r[0] for r in records] == ["'" + c for c in canaries]
