"""The control mapping (issue 19, item 7): the ticket is the change record (SOC 2 CC8.1, NIST CM-3), a
commit closure is a change, a rescan closure is a scan (PCI DSS 11.3); the coverage table names every
control, zero included; docs/controls.md is the mapping in code, row for row."""

from __future__ import annotations

import csv
import re

from handoffkit.report import controls, log_export, views
from handoffkit.workflow import verification
from tests.builders import ACTOR, DONE, ROOT, SHOP, at, route, ticket, validate


def test_ticket_change_events_and_closures_by_commit_or_rescan_carry_their_controls(store, rec, exports, tmp_path):
    at(store, 2)
    a, b, c = rec.web(SHOP, ("Fixed by commit", 3), ("Gone in the rescan", 3), ("Split across two", 3))
    validate(store, [a, b, c])
    route(store)
    exports.ingest("jira", ticket("jira", 1, [a]), ticket("jira", 2, [b]), ticket("jira", 3, [c]))
    at(store, 4)
    exports.ingest(
        "jira",
        ticket("jira", 1, [a], title=f"[{a}] Fix it now"),  # renamed
        ticket("jira", 2, [b], **DONE),  # closed
        ticket("jira", 3, [c]),
        ticket("jira", 4, [c]),  # split
    )
    at(store, 6)
    rec.web(SHOP, ("Fixed by commit", 3), ("Split across two", 3), generated="Fri, 6 Mar 2026 08:00:00")
    verification.verify_rescans(store, "ACME", actor=ACTOR, finding_ids=[b])
    verification.verify(store, a, kind="commit", evidence="shop/web@0123abcd", actor=ACTOR)

    log_export.export_log(store, "ACME", tmp_path / "log.csv", actor=ACTOR)
    with open(tmp_path / "log.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_type = {}
    for row in rows:
        by_type.setdefault((row["type"], row["detail"] if row["type"] == "finding_verified_closed" else ""), row)
    for type_ in ("link_added", "ticket_renamed", "ticket_split", "ticket_closed_observed"):
        row = by_type[(type_, "")]
        assert ("CC8.1" in row["soc2"].split(), "CM-3" in row["nist_800_53"].split()) == (True, True), type_
    commit, rescan = by_type[("finding_verified_closed", "commit")], by_type[("finding_verified_closed", "rescan")]
    assert (commit["soc2"], commit["nist_800_53"], commit["pci_dss"]) == ("CC7.2 CC8.1", "SI-2 CM-3", "6.3.3")
    assert (rescan["pci_dss"], rescan["nist_800_53"]) == ("6.3.3 11.3", "RA-5 SI-2")

    activity = views.activity(store, "ACME")
    closed = activity[activity["type"] == "finding_verified_closed"].set_index("detail")
    assert closed.loc["rescan", "pci_dss"] == "6.3.3 11.3" and closed.loc["commit", "soc2"] == "CC7.2 CC8.1"


def test_the_coverage_table_names_every_control_zero_included(store, engagement):
    coverage = views.control_coverage(views.activity(store, "ACME"))  # only the engagement's set-up events
    named = {(f, c) for f, found in zip(controls.FRAMEWORKS, controls.ALL, strict=True) for c in found}
    assert set(zip(coverage["framework"], coverage["control"], strict=True)) == named
    counts = dict(zip(coverage["control"], coverage["events"], strict=True))
    assert counts["CC8.1"] > 0 and counts["11.3"] == 0 and counts["RA-5"] == 0


def test_the_documented_table_is_the_mapping() -> None:
    text = (ROOT / "docs" / "controls.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(controls.RULES)
    for line, rule in zip(rows, controls.RULES, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert re.findall(r"`([a-z_]+)`", cells[0]) == list(rule.types)
        assert cells[1].strip("`") == (rule.detail or "")
        assert [c if c != "—" else "" for c in cells[2:6]] == [" ".join(c) for c in rule.controls]
        assert cells[6] == rule.reason
