"""handoffkit.report.contents: the pack's navigation, index and data-quality pages."""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import pytest

from handoffkit.errors import InputError
from handoffkit.report import contents
from handoffkit.report.pages import check_offline

from .fixture_notebook import CANARY

FIELDS = [("Engagement", "ACME"), ("As of", "2026-09-30 23:59 UTC"), ("Activity log head (seq)", "42")]
PAGES = {"quarterly_leadership": "Quarterly handoff posture", "activity_log": "Activity log and control mapping"}


def links(page: Path) -> list[str]:
    document = html5lib.parse(page.read_bytes(), namespaceHTMLElements=False)
    return [a.get("href") for a in document.iter("a")]


def test_the_navigation_lists_the_index_every_page_the_quality_page_and_the_manifest() -> None:
    assert [href for href, _ in contents.navigation(list(PAGES))] == [
        "index.html",
        "quarterly_leadership.html",
        "activity_log.html",
        "data_quality.html",
        "manifest.json",
    ]


@pytest.mark.parametrize(("signed", "said"), [(False, "not signed"), (True, "signed")])
def test_the_index_says_signed_only_when_a_signature_is_written(tmp_path: Path, signed: bool, said: str) -> None:
    page = contents.index_page(tmp_path, title="Q3", fields=FIELDS, pages_=PAGES, signed=signed)
    text = page.read_text("utf-8")
    assert f"<dt>Manifest signature</dt><dd>{said}</dd>" in text
    assert ("manifest.json.sig" in links(page)) is signed
    assert check_offline(text) == []
    for href in ("quarterly_leadership.html", "activity_log.html", "data_quality.html", "manifest.json"):
        assert href in links(page)
    assert text.count("<h1>") == 1


def test_the_index_escapes_the_title(tmp_path: Path) -> None:
    text = contents.index_page(tmp_path, title=CANARY, fields=FIELDS, pages_=PAGES).read_text("utf-8")
    assert "<script>alert" not in text and check_offline(text) == []


def result(kind: str, column: str, success: bool, unexpected: list, refs: list, **kwargs) -> dict:
    return {
        "expectation_config": {"type": kind, "kwargs": {"column": column, **kwargs}},
        "result": {
            "unexpected_count": len(unexpected),
            "partial_unexpected_list": unexpected,
            "unexpected_index_list": [{"source_ref": ref} for ref in refs],
        },
        "success": success,
    }


def test_the_quality_page_shows_each_expectation_with_its_failures(tmp_path: Path) -> None:
    doc = {
        "subject": "findings of ACME first seen at or before 2026-09-30T23:59:59.999999Z",
        "rows": 1200,
        "great_expectations": {
            "results": [
                result("expect_column_values_to_be_in_set", "severity", False, ["urgent", CANARY], ["HK-7", "HK-9"],
                       value_set=["critical", "high"]),
                result("expect_column_value_lengths_to_be_between", "title", True, [], [], min_value=1),
            ]
        },
    }  # fmt: skip
    source = tmp_path / "data_quality.json"
    source.write_text(json.dumps(doc), encoding="utf-8")
    text = contents.quality_page(tmp_path, fields=FIELDS, names=list(PAGES), quality_json=source).read_text("utf-8")
    assert (
        "1 of 2 expectations fail for the 1,200 findings of ACME first seen at or before 2026-09-30 23:59 UTC" in text
    )
    assert "<td>one of critical, high</td>" in text
    assert "<td>length at least 1</td>" in text
    assert "HK-7: urgent; HK-9: &lt;/script&gt;" in text
    assert '<td class="hk-nowrap hk-num">2</td>' in text
    assert check_offline(text) == []


def test_the_quality_page_refuses_a_file_that_is_not_the_results(tmp_path: Path) -> None:
    source = tmp_path / "data_quality.json"
    source.write_text('{"rows": 3}', encoding="utf-8")
    with pytest.raises(InputError, match=r"data_quality\.json: not a data-quality result file"):
        contents.quality_page(tmp_path, fields=FIELDS, names=[], quality_json=source)
    assert not (tmp_path / "data_quality.html").exists()
