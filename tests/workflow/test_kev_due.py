"""The KEV due date (issue 19, item 5): the clock starts at the later of the finding's first detection and
the CVE's ``dateAdded``; due = that + the policy's KEV days; the catalog's ``dueDate`` counts only when it
falls after the clock start and is earlier. A finding is never breached at birth by a CVE listed years ago,
and a KEV listing only ever tightens a due date.
"""

from __future__ import annotations

from datetime import date

from handoffkit.demo import formats
from handoffkit.ingest import kev
from tests.builders import ACTOR, SHOP, at, events, finding, route, validate


def load_catalog(store, path, *entries: tuple[str, str, str]) -> None:
    """A catalog listing ``(cve, dateAdded, dueDate)``."""
    listed = [
        {"cve": c, "vendor": "Example", "product": "lib", "name": f"{c} flaw", "added": a, "due": d}
        for c, a, d in entries
    ]
    path.write_bytes(formats.kev_catalog(listed, "2026.03.01", "2026-03-01T12:00:00.000Z"))
    kev.load(store, path, actor=ACTOR)


def test_a_cve_listed_years_ago_gives_14_days_from_first_detection(store, rec, tmp_path):
    load_catalog(store, tmp_path / "kev.json", ("CVE-2021-44228", "2021-12-10", "2021-12-24"))
    at(store, 2)  # first detected 2 March 2026
    [fid] = rec.host(SHOP, {"name": "Log4Shell", "severity": 4, "cves": ["CVE-2021-44228"]})
    at(store, 3)
    validate(store, [fid])
    route(store)
    row = finding(store, fid)
    assert (row["kev"], row["disposition"], row["sla_due"]) == (True, "ticket", date(2026, 3, 16))


def test_the_clock_starts_at_the_later_of_detection_and_listing_and_the_catalog_due_only_tightens(store, rec, tmp_path):
    at(store, 2)
    listed_later, catalog_earlier, catalog_later = rec.host(
        SHOP,
        {"name": "Listed after detection", "severity": 1, "cves": ["CVE-2026-0001"]},
        {"name": "Catalog due soon", "severity": 1, "cves": ["CVE-2026-0002"]},
        {"name": "Catalog due late", "severity": 1, "cves": ["CVE-2026-0003"]},
    )
    load_catalog(
        store,
        tmp_path / "kev.json",
        ("CVE-2026-0001", "2026-03-10", "2026-03-31"),  # clock from 10 March: 24 March (CISA's 31st is later)
        ("CVE-2026-0002", "2026-03-01", "2026-03-08"),  # clock from 2 March: 16 March, CISA's 8th is earlier
        ("CVE-2026-0003", "2026-03-01", "2026-02-25"),  # CISA's date falls before the clock start: ignored
    )
    validate(store, [listed_later, catalog_earlier, catalog_later])
    route(store)
    due = {fid: finding(store, fid)["sla_due"] for fid in (listed_later, catalog_earlier, catalog_later)}
    assert due == {listed_later: date(2026, 3, 24), catalog_earlier: date(2026, 3, 8), catalog_later: date(2026, 3, 16)}


def test_an_open_finding_whose_cve_joins_the_catalog_gets_the_tighter_date_with_an_event(store, rec, tmp_path):
    at(store, 2)
    batched, critical = rec.host(
        SHOP,
        {"name": "Quarterly lib", "severity": 1, "cves": ["CVE-2026-0100"]},
        {"name": "Critical lib", "severity": 4, "cves": ["CVE-2026-0200"]},
    )
    validate(store, [batched, critical])
    route(store)
    assert finding(store, critical)["sla_due"] == date(2026, 4, 1)  # the critical band: 30 days
    at(store, 20)
    load_catalog(
        store,
        tmp_path / "kev.json",
        ("CVE-2026-0100", "2026-03-20", "2026-06-30"),  # tightens the quarterly band's 29 August
        ("CVE-2026-0200", "2026-03-25", "2026-06-30"),  # 8 April would loosen the critical's 1 April
    )
    route(store)
    assert (finding(store, batched)["disposition"], finding(store, batched)["sla_due"]) == ("ticket", date(2026, 4, 3))
    assert finding(store, critical)["sla_due"] == date(2026, 4, 1)
    [_, tightened] = events(store, "finding_routed", finding_id=batched)
    assert tightened["data"]["set"]["sla_due"] == "2026-04-03" and tightened["data"]["rule"] == "kev_override"
