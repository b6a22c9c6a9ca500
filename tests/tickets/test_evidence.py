"""Evidence pasted into a ticket (issue 19, item 8): attachment markup, and text copied from the finding's
stored scanner output, are caught beside the HTTP and base64 patterns, and each ticket says what matched.
Restating the record (title, description, asset) is not copying evidence, nor is a short quote."""

from __future__ import annotations

import pytest

from handoffkit import reconcile
from handoffkit.demo import formats
from handoffkit.tickets import evidence
from tests.builders import route, ticket, validate

OUTPUT = (
    "Server header leaks build 4711 of the gateway; the TLS endpoint answered the probe with a stack trace "
    "naming internal hosts db01 and cache02 and the session key format in use"
)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("See !screenshot.png! for the proof", "an embedded attachment (!screenshot.png!)"),
        ("Attached: !shot-1.png|thumbnail!", "an embedded attachment (!shot-1.png|thumbnail!)"),
        ("The capture [^trace.har] shows it", "an embedded attachment ([^trace.har])"),
        (
            "![proof](https://github.com/user-attachments/assets/1f2e)",
            "an uploaded image (![proof](https://github.com/user-attachments/assets/1f2e))",
        ),
        ("GET /admin HTTP/1.1\nHost: shop.test", "an HTTP message (GET /admin HTTP/1.1)"),
    ],
)
def test_pasted_material_is_named(text: str, found: str) -> None:
    assert evidence.patterns(text) == [found]


@pytest.mark.parametrize(
    "text",
    ["Fix this now! It is urgent!", "Release notes: see CHANGES.md", "[link](https://example.test/page)", "a!b!c"],
)
def test_prose_with_exclamation_marks_or_links_is_not_pasted_material(text: str) -> None:
    assert evidence.patterns(text) == []


def test_copied_scanner_output_is_flagged_and_restating_the_record_is_not(store, rec, exports) -> None:
    items = [
        {"port": port, "protocol": "tcp", "svc": "www", "severity": 3, "plugin": 150000 + port, "name": name,
         "family": "General", "cves": [], "vector": None, "score": None, "output": OUTPUT,
         "description": f"{name}: the gateway discloses its internal build and topology to anyone.",
         "solution": "Upgrade.", "risk": "High"}
        for name, port in (("Gateway leak", 443), ("Gateway leak on 8443", 8443), ("Gateway leak on 9443", 9443))
    ]  # fmt: skip
    rec.ingest("hosts.nessus", formats.nessus([{"name": "shop.test", "ip": "10.0.0.1", "items": items}], "weekly"))
    pasted, restated, quoted = rec.ids("shop.test", [i["name"] for i in items])
    validate(store, [pasted, restated, quoted])
    route(store)
    exports.ingest(
        "jira",
        ticket("jira", 1, [pasted], description=f"[{pasted}] The scanner said:\n{OUTPUT}"),
        ticket("jira", 2, [restated], description=f"[{restated}] {items[1]['description']} Seen on shop.test:8443."),
        ticket("jira", 3, [quoted], description=f"[{quoted}] It answered the probe with a stack trace!"),
        ticket("jira", 4, [quoted], description=f"[{quoted}] See !proof.png|thumbnail!"),
    )
    with store.read() as conn:
        gaps = reconcile.gaps(conn, "ACME")
    runs = len(evidence.shingles(OUTPUT))
    assert gaps.reasons["evidence_copied"] == {
        "SEC-1": [f"{runs} word runs of {pasted}'s stored evidence (server header leaks build 4711 of the gateway)"],
        "SEC-4": ["an embedded attachment (!proof.png|thumbnail!)"],
    }
    assert gaps.ids["evidence_copied"] == ["SEC-1", "SEC-4"]
