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


def test_two_engagements_never_share_a_finding_id(store, tmp_path):
    """The same scan in two engagements, ingested in turn and from two threads at once: the same findings
    (same fingerprints), never the same id; each id names one engagement's finding (issue 25)."""
    import threading

    from sqlalchemy import select

    from handoffkit.ingest import pipeline
    from handoffkit.record import engagements, schema
    from tests.builders import ACTOR, DATA, ORIGIN, add_findings, zap_scan

    for key in ("ACME", "GLOBEX"):
        engagements.init(store, key, DATA / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    scan = zap_scan(tmp_path / "scan.json", [1, 2, 3], "2026-03-01")
    for key in ("ACME", "GLOBEX", "ACME"):  # ACME's second ingest of the same scan adds nothing
        pipeline.ingest_scan(store, key, [scan], actor=ACTOR)
    workers = [threading.Thread(target=add_findings, args=(store, key, 5)) for key in ("ACME", "GLOBEX") * 2]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    f = schema.findings.c
    with store.read() as conn:
        rows = conn.execute(select(f.finding_id, f.engagement, f.fingerprint, f.asset_ref)).all()
    by_engagement = {key: {r.finding_id for r in rows if r.engagement == key} for key in ("ACME", "GLOBEX")}
    assert len(rows) == 2 * 3 + 4 * 5 == len({r.finding_id for r in rows})
    assert not by_engagement["ACME"] & by_engagement["GLOBEX"]
    scanned = {
        key: {r.fingerprint for r in rows if r.engagement == key and r.asset_ref == ORIGIN} for key in by_engagement
    }
    assert len(scanned["ACME"]) >= 3 and scanned["ACME"] & scanned["GLOBEX"]  # the same findings, other ids
