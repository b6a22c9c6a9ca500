"""One count per concept (issue 19, item 2): every page of the demo pack that shows a headline concept
shows the same value, the one the facts define, and the narrative names every reconciliation gap (item 9).

The same report once said 223 routing decisions in the narrative and 230 in checklist item 6: they counted
two things under one name. A routing decision is one ``finding_routed`` event in the period; the
checklist's item 6 counts findings holding a decision and says so.
"""

from __future__ import annotations

import re

import html5lib
import pytest

from handoffkit.record.store import Store
from handoffkit.report import facts
from handoffkit.report.facts import GAP_WORDS
from tests.builders import AS_OF, END, START

from .packs import Pack

pytestmark = [pytest.mark.slow]
PAGES = (
    "quarterly_leadership",
    "routing_decisions",
    "ticket_mapping",
    "severity_calibration",
    "closure_verification",
    "activity_log",
)


def tiles(pack: Pack) -> dict[str, str]:
    """The leadership tiles, label → value as shown."""
    document = html5lib.parse((pack.out / "quarterly_leadership.html").read_bytes(), namespaceHTMLElements=False)
    return {
        "".join(t.find("div[@class='hk-tile-label']").itertext()): "".join(
            t.find("div[@class='hk-tile-value']").itertext()
        )
        for t in document.iter("div")
        if (t.get("class") or "").startswith("hk-tile ") or t.get("class") == "hk-tile"
    }


def lines(pack: Pack, name: str) -> list[str]:
    body = html5lib.parse((pack.out / f"{name}.html").read_bytes(), namespaceHTMLElements=False).find("body")
    return [t.strip() for t in body.itertext() if t.strip()]


def numbers(text: str, pattern: str) -> set[int]:
    return {int(m.replace(",", "")) for m in re.findall(pattern, text)}


@pytest.fixture(scope="module")
def shown(demo_pack: Pack) -> tuple[dict[str, list[str]], facts.Facts, dict[str, str]]:
    store = Store(demo_pack.url, create=False)
    try:
        return (
            {n: lines(demo_pack, n) for n in PAGES},
            facts.compute(store, "DEMO", START, END, AS_OF),
            tiles(demo_pack),
        )
    finally:
        store.dispose()


def test_every_page_shows_one_value_per_concept(shown) -> None:
    pages, f, tile = shown
    everything = "\n".join(t for page in pages.values() for t in page)
    mapping = pages["ticket_mapping"]
    table = mapping[mapping.index("Meaning") + 1 :][: 3 * 6]  # category, count, meaning per row
    row = dict(zip(table[0::3], table[1::3], strict=True))

    assert numbers(everything, r"(\d[\d,]*) routing decisions") == {f.routing_decisions}
    assert "findings with a routing decision" in everything  # item 6 names what it counts
    closures = numbers(everything, r"(\d[\d,]*) (?:findings sit behind a closed ticket|administrative closures)")
    assert closures == {f.closure_misses} == {int(tile["administrative closures (unverified)"])}
    assert int(row["closure_misses"]) == f.closure_misses
    assert numbers(everything, r"(\d[\d,]*) routing misses") == {f.routing_misses}
    assert int(tile["routing misses"]) == int(row["routing_misses"]) == f.routing_misses
    assert numbers(everything, r"(\d[\d,]*) of [\d,]+ findings are open") == {f.open_findings}
    assert int(tile["open findings"].replace(",", "")) == f.open_findings
    passing = f.checklist_counts["pass"]
    assert tile["checklist items passing"] == f"{passing} of 14"
    assert numbers(everything, r"(\d[\d,]*) of 14 items pass") == {passing}
    assert numbers(everything, r"(\d[\d,]*) findings were closed on verification evidence") == {f.verified_total}
    assert int(tile["verified closures in period"]) == f.verified_total


def test_the_narrative_names_every_reconciliation_gap_with_a_count(shown) -> None:
    pages, f, _ = shown
    story = "\n".join(pages["quarterly_leadership"])
    found = {k: n for k, n in f.reconciliation.items() if n and k != "reconciliation_overdue"}
    assert {"shared_queue_tickets", "evidence_copied", "tickets_without_id"} <= set(found)
    for category, n in found.items():
        assert f"{n:,} {GAP_WORDS[category]}" in story, category
    assert ("The reconciliation itself is overdue." in story) == bool(f.reconciliation["reconciliation_overdue"])
