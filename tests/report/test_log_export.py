"""The activity-log export: control mapping, formula safety, determinism, the event it logs, the CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from handoffkit.cli import cli
from handoffkit.errors import ConfigError
from handoffkit.record import log, schema
from handoffkit.record._csvline import quoted_line
from handoffkit.record.canonical import canonical_json
from handoffkit.record.csvsafe import FORMULA_START, safe_cell, unsafe_cell
from handoffkit.record.log import Event, log_event
from handoffkit.record.store import Store
from handoffkit.report import checklist, controls, log_export
from tests.builders import ACTOR, AS_OF, END, START


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [{k: unsafe_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def test_the_frameworks_are_the_ones_the_checklist_looks_for() -> None:
    assert log_export.FRAMEWORKS == checklist.FRAMEWORKS


def test_every_event_type_of_the_demo_is_mapped_to_controls(demo_store: Store) -> None:
    with demo_store.read() as conn:
        types = set(conn.execute(select(schema.events.c.type).distinct()).scalars())
    assert {t for t in types if controls.controls(t) == controls.UNMAPPED} == set()
    assert {controls.controls(t)[3] for t in ("scan_ingested", "finding_verified_closed", "policy_versioned")} == {
        "RA-5",
        "SI-2",
        "CM-3",
    }
    assert controls.controls("severity_calibrated") == ("A.8.8", "CC7.1", "6.3.3", "RA-5")
    assert controls.controls("policy_versioned")[1] == "CC8.1"


def test_export_writes_every_event_with_its_chain_and_controls(programme: Store, tmp_path: Path) -> None:
    result = log_export.export_log(programme, "ACME", tmp_path / "log.csv", actor=ACTOR)
    rows = read(tmp_path / "log.csv")
    assert [r["seq"] for r in rows] == [str(n) for n in range(1, len(rows) + 1)] and result.rows == len(rows)
    assert all(a["row_hash"] == b["prev_hash"] for a, b in itertools.pairwise(rows))
    assert list(rows[0]) == list(log_export.COLUMNS)
    verified = [r for r in rows if r["type"] == "finding_verified_closed"]
    assert [(r["finding_id"], r["detail"], r["nist_800_53"], r["pci_dss"]) for r in verified] == [
        ("HK-1", "retest", "SI-2", "6.3.3"),
        ("HK-2", "commit", "SI-2 CM-3", "6.3.3"),
    ]
    assert "state: routed → verified_closed" in verified[0]["summary"]
    scan = next(r for r in rows if r["type"] == "scan_ingested")
    assert scan["origin_file"].endswith("scan1.json") and len(scan["origin_sha256"]) == 64
    # Who the system knew was writing, beside what the actor typed.
    principal = programme.principal  # asked of the store the events were written through
    with programme.read() as conn:
        expected = principal(conn)
    assert {r["origin_principal"] for r in rows} == {f"{expected['name']} ({expected['source']})"}
    assert (scan["iso27001"], scan["soc2"], scan["pci_dss"]) == ("A.8.8", "CC7.1", "11.3")


def test_every_cell_is_quoted(programme: Store, tmp_path: Path) -> None:
    log_export.export_log(programme, "ACME", tmp_path / "log.csv", actor=ACTOR)
    lines = (tmp_path / "log.csv").read_text(encoding="utf-8").splitlines()
    cells = [
        c for row in csv.reader(io.StringIO("\n".join(lines)), quoting=csv.QUOTE_NONE, escapechar=None) for c in row
    ]
    assert cells and all(c.startswith('"') and c.endswith('"') for c in cells)


def test_export_logs_what_the_checklist_reads(programme: Store, tmp_path: Path) -> None:
    result = log_export.export_log(programme, "ACME", tmp_path / "log.csv", start="2026-03-02", actor=ACTOR)
    ev = schema.events.c
    with programme.read() as conn:
        payload = conn.execute(select(ev.payload).where(ev.type == "log_exported")).scalar_one()
    doc = json.loads(payload)
    assert doc["data"]["rows"] == result.rows and doc["data"]["sha256"] == result.sha256
    assert result.sha256 == hashlib.sha256((tmp_path / "log.csv").read_bytes()).hexdigest()
    assert doc["data"]["frameworks"] == list(log_export.FRAMEWORKS) and doc["data"]["file"] == str(tmp_path / "log.csv")
    assert doc["origin"]["sha256"] == result.sha256 and doc["engagement"] == "ACME"
    items = {i.number: i for i in checklist.evaluate(programme, "ACME")}
    assert items[12].status == "pass"


def test_the_same_record_as_of_the_same_instant_exports_identical_bytes(demo_copy: Store, tmp_path: Path) -> None:
    first = log_export.export_log(demo_copy, "DEMO", tmp_path / "a.csv", start=START, end=END, as_of=AS_OF, actor=ACTOR)
    second = log_export.export_log(
        demo_copy, "DEMO", tmp_path / "b.csv", start=START, end=END, as_of=AS_OF, actor=ACTOR
    )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert first.sha256 == second.sha256 and first.rows > 0
    rows = read(tmp_path / "a.csv")
    assert min(r["occurred_at"] for r in rows) >= START and max(r["occurred_at"] for r in rows) < "2026-10-01"


def test_a_window_exports_exactly_the_events_of_its_days(demo_copy: Store, tmp_path: Path) -> None:
    """The window is read as a range of ``seq``: nothing in the window is lost, nothing outside it added."""
    log_export.export_log(demo_copy, "DEMO", tmp_path / "all.csv", as_of=AS_OF, actor=ACTOR)
    log_export.export_log(demo_copy, "DEMO", tmp_path / "window.csv", start=START, end=END, as_of=AS_OF, actor=ACTOR)
    everything = read(tmp_path / "all.csv")
    inside = [r for r in everything if START <= r["occurred_at"] < "2026-10-01"]
    assert 0 < len(inside) < len(everything)
    assert read(tmp_path / "window.csv") == inside
    empty = log_export.export_log(
        demo_copy, "DEMO", tmp_path / "none.csv", start="2020-01-01", end="2020-01-31", actor=ACTOR
    )
    assert empty.rows == 0 and read(tmp_path / "none.csv") == []


def test_an_integer_beyond_64_bits_in_an_event_is_exported_whole(programme: Store, tmp_path: Path) -> None:
    log_event(programme, Event(type="owners_loaded", actor=ACTOR, engagement="ACME", data={"owners": 2**70}))
    log_export.export_log(programme, "ACME", tmp_path / "log.csv", actor=ACTOR)
    *_, row = (r for r in read(tmp_path / "log.csv") if r["type"] == "owners_loaded")
    assert row["summary"] == f"owners={2**70}"


def test_data_the_database_reads_out_is_summarised_as_python_reads_it(programme: Store, tmp_path: Path) -> None:
    """The export takes ``data`` from the database's JSON functions (on each backend), not from Python."""
    data = {"note": 'a "quote", a back\\slash, \u00e9, \u2028, a\ttab', "n": -(2**70), "f": 1.5e-7, "z": [1, None]}
    log_event(programme, Event(type="owners_loaded", actor=ACTOR, engagement="ACME", data=data))
    log_export.export_log(programme, "ACME", tmp_path / "log.csv", actor=ACTOR)
    *_, row = (r for r in read(tmp_path / "log.csv") if r["type"] == "owners_loaded")
    assert row["summary"] == log_export.summarise(json.loads(canonical_json(data)))


def test_the_preview_shows_the_last_rows_exactly_as_the_file_holds_them(demo_copy: Store, tmp_path: Path) -> None:
    """The file is written by a faster path than the preview's cells (shared parts quoted once per export)."""
    log_export.export_log(demo_copy, "DEMO", tmp_path / "log.csv", start=START, end=END, as_of=AS_OF, actor=ACTOR)
    with (tmp_path / "log.csv").open(encoding="utf-8", newline="") as fh:
        written = list(csv.reader(fh))
    shown = log_export.preview(demo_copy, "DEMO", start=START, end=END, as_of=AS_OF, limit=500)
    assert len(written) > 500 and written[0] == list(log_export.COLUMNS)
    assert shown.values.tolist() == written[-500:]


@pytest.mark.slow  # two spawned processes, each importing handoffkit, pandas and SQLAlchemy: 5-7 s of CPU
def test_a_log_written_in_parts_is_the_same_file(
    programme: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts in processes of their own, appended in order: the same bytes, rows, seqs and digest."""
    monkeypatch.setattr(log_export, "PART_MIN_EVENTS", 0)
    programme.clock.fixed = datetime(2026, 10, 1, tzinfo=UTC)  # each export's own event comes after AS_OF
    here: list[tuple[int, int] | None] = []  # the seqs this process wrote (the other parts' processes are not seen)
    write_rows = log_export.write_rows
    monkeypatch.setattr(log_export, "write_rows", lambda *a, **kw: here.append(kw.get("seqs")) or write_rows(*a, **kw))
    whole = log_export.export_log(programme, "ACME", tmp_path / "whole.csv", as_of=AS_OF, actor=ACTOR)
    split = log_export.export_log(programme, "ACME", tmp_path / "parts.csv", as_of=AS_OF, actor=ACTOR, processes=3)
    assert here[0] is None and here[1] is not None and here[1][1] < whole.last_seq  # the rest came from the parts
    assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (split.rows, split.first_seq, split.last_seq, split.sha256) == (
        whole.rows,
        whole.first_seq,
        whole.last_seq,
        whole.sha256,
    )
    assert whole.rows > 3
    assert split.sha256 == hashlib.sha256((tmp_path / "parts.csv").read_bytes()).hexdigest()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no part or temporary file left


def test_parts_of_a_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_export, "PART_MIN_EVENTS", 10)
    assert log_export._parts_of((1, 100), 3) == [(1, 33), (34, 66), (67, 100)]
    assert log_export._parts_of((1, 5), 3) == [None] and log_export._parts_of(None, 3) == [None]
    assert log_export._parts_of((1, 100), 1) == [None]


def test_a_reversed_window_is_refused(programme: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--from 2026-03-05 is after --to 2026-03-01"):
        log_export.export_log(programme, "ACME", tmp_path / "x.csv", start="2026-03-05", end="2026-03-01", actor=ACTOR)
    assert not (tmp_path / "x.csv").exists()


FORMULAS = ["=1+1", "@x", "-2", "+SUM(A1)", "\t=1", "\r=1", "\n=1", '=HYPERLINK("http://x")', "'=1", "plain", ""]


@pytest.mark.parametrize("value", FORMULAS)
def test_formula_cells_are_neutralised_and_round_trip(value: str) -> None:
    cell = safe_cell(value)
    assert not cell.startswith(FORMULA_START)
    assert unsafe_cell(cell) == value


@given(st.text())
def test_every_string_round_trips(value: str) -> None:
    assert unsafe_cell(safe_cell(value)) == value and not safe_cell(value).startswith(FORMULA_START)


@example(actor='","data":{"evil":1},"z":"', data={"a": 1})
@example(actor="ends in a backslash \\", data={"a": 1})
@given(st.text(), st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8) | st.none(), max_size=4))
def test_event_data_reads_what_json_reads_whatever_the_actor(actor: str, data: dict) -> None:
    payload = canonical_json({"actor": actor, "data": data, "origin": {"data": "not this"}, "type": "x"})
    assert log.event_data(payload) == json.loads(payload)["data"]


def test_events_with_the_same_data_keep_the_detail_of_their_own_type(programme: Store, tmp_path: Path) -> None:
    """The export remembers (detail, summary) by type and data text: the type must be part of the key."""
    for type_ in ("link_added", "ticket_seen", "link_removed"):
        log_event(programme, Event(type=type_, actor=ACTOR, engagement="ACME", data={"system": "jira"}))
    log_export.export_log(programme, "ACME", tmp_path / "log.csv", actor=ACTOR)
    rows = read(tmp_path / "log.csv")[-3:]
    assert [(r["type"], r["detail"], r["summary"]) for r in rows] == [
        ("link_added", "jira", "system=jira"),
        ("ticket_seen", "", "system=jira"),
        ("link_removed", "jira", "system=jira"),
    ]


def test_what_the_export_remembers_does_not_change_its_bytes(
    demo_copy: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_export.export_log(demo_copy, "DEMO", tmp_path / "a.csv", as_of=AS_OF, actor=ACTOR)
    monkeypatch.setattr(log_export._Seen, "LIMIT", 1)  # forgets after every row
    log_export.export_log(demo_copy, "DEMO", tmp_path / "b.csv", as_of=AS_OF, actor=ACTOR)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize(
    "payload", ['{"data":{"a":1},"actor":"x"}', '{"actor":"x","origin":{"data":2},"data":{"a":1}}']
)
def test_event_data_of_a_payload_in_another_key_order_is_read_whole(payload: str) -> None:
    assert log.event_data(payload) == {"a": 1}


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12), min_size=1, max_size=6))
def test_a_csv_line_is_what_the_csv_module_writes_and_reads_back(cells: list[str]) -> None:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(cells)
    assert quoted_line(cells) == out.getvalue()
    assert next(csv.reader(io.StringIO(quoted_line(cells), newline=""))) == cells


def test_record_strings_that_look_like_formulas_are_exported_safely(
    store: Store, engagement: str, tmp_path: Path
) -> None:
    from handoffkit.ingest import pipeline
    from handoffkit.workflow import triage
    from tests.builders import at, zap_scan

    at(store, 3)  # after the engagement was set up (2 March): the log's time does not go back
    pipeline.ingest_scan(
        store, engagement, [zap_scan(tmp_path / "s.json", [1], "2026-03-01")], actor="=cmd|' /C calc'!A0"
    )
    triage.triage(store, ["HK-1"], "validated", reason="@SUM(1+1)", actor="-2+3")
    at(store, 4)
    triage.triage(store, ["HK-1"], "validated", reason="again", actor="'=quoted")
    log_export.export_log(store, engagement, tmp_path / "log.csv", actor=ACTOR)
    raw = list(csv.DictReader((tmp_path / "log.csv").open(encoding="utf-8", newline="")))
    created = next(r for r in raw if r["type"] == "finding_created")
    triaged, again = (r for r in raw if r["type"] == "finding_triaged")
    assert created["actor"] == "'=cmd|' /C calc'!A0" and unsafe_cell(created["actor"]) == "=cmd|' /C calc'!A0"
    assert triaged["actor"] == "'-2+3" and "reason=@SUM(1+1)" in triaged["summary"]
    assert again["actor"] == "''=quoted" and unsafe_cell(again["actor"]) == "'=quoted"


def test_the_cli_writes_the_same_file(demo_copy: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.csv"
    result = runner.invoke(
        cli,
        [
            "--db",
            demo_copy.url,
            "log",
            "export",
            "--engagement",
            "DEMO",
            "--from",
            START,
            "--to",
            END,
            "--as-of",
            AS_OF,
            "--out",
            str(out),
            "--actor",
            ACTOR,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out}: ")
    library = log_export.export_log(
        demo_copy, "DEMO", tmp_path / "lib.csv", start=START, end=END, as_of=AS_OF, actor=ACTOR
    )
    assert out.read_bytes() == (tmp_path / "lib.csv").read_bytes() and library.rows > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-09-01", "--to", "2026-08-01"], "--from 2026-09-01 is after --to 2026-08-01"),
        (["--from", "01/09/2026"], "is not a date"),
        (["--engagement", "NOPE"], "no engagement 'NOPE'"),
    ],
)
def test_the_cli_refuses_bad_options(demo_copy: Store, tmp_path: Path, args: list[str], message: str) -> None:
    base = [
        "--db",
        demo_copy.url,
        "log",
        "export",
        "--engagement",
        "DEMO",
        "--out",
        str(tmp_path / "x.csv"),
        "--actor",
        ACTOR,
    ]
    result = CliRunner().invoke(cli, base + args)
    assert result.exit_code != 0 and message in result.output
