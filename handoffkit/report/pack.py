"""The evidence pack: the report notebooks executed, rendered for readers, and sealed in a manifest.

``render(params_file)`` reads a parameter file (``params/quarterly.yaml``), then, into one directory:

1. writes the activity-log CSV for the period (:func:`handoffkit.report.log_export.export_log` — the same file
   ``handoffkit log export`` writes), logging ``log_exported``, in one process per core;
2. executes each notebook of the set with papermill (executed copies under ``notebooks/``) and renders
   it to one offline HTML page with code hidden, headed by the engagement, the as-of instant and the
   activity log's head;
3. writes the Great Expectations results for the record's findings as of then (``data_quality.json``);
4. writes ``manifest.json``: the SHA-256 of every file, the log's head as of the report
   (``{"chain_head": {"seq", "row_hash"}}``, which ``handoffkit log verify --anchor`` accepts), the
   parameters, the as-of instant, and under ``rendering`` what belongs to this run (package versions,
   when Great Expectations ran);
5. when a signing key is configured (the file's ``signing_key``, else ``HANDOFFKIT_SIGNING_KEY``), signs the
   manifest's bytes with Ed25519 into ``manifest.json.sig`` beside it (:mod:`handoffkit.record.signatures`;
   :mod:`handoffkit.report.seal` checks a pack); the key's path is kept out of the pack and the record;
6. logs ``report_rendered`` with the views rendered, the manifest's SHA-256 and whether it was signed.

The as-of instant is pinned once (``--as-of``, else the file's ``as_of``, else now), and everything the
pack shows is a function of the activity log up to it and the policy in force then. Rendered again as
of the same instant, after any later activity, the pack is the same: the CSV and ``data_quality.json``
byte for byte, every page's visible text. What may differ is named: ``manifest.json``'s ``rendering``
block, the executed notebooks' execution metadata (``notebooks/*.ipynb``), and so their digests.
"""

from __future__ import annotations

import difflib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.engine import make_url

from handoffkit.errors import ConfigError, located
from handoffkit.ingest import quality
from handoffkit.record import _memo, csvsafe, frames, replay, schema
from handoffkit.record.canonical import sha256_bytes, sha256_file
from handoffkit.record.log import Event, Source, log_event
from handoffkit.record.people import require_actor
from handoffkit.record.store import DEFAULT_URL, sqlite_file
from handoffkit.report import contents, facts, log_export, pages, pdf, views
from handoffkit.report.output import Activity

#: The report set, in reading order, with each page's title.
TITLES = {
    "quarterly_leadership": "Quarterly handoff posture",
    "routing_decisions": "Routing decisions over time",
    "ticket_mapping": "Ticket-to-finding mapping",
    "severity_calibration": "Severity calibration history",
    "closure_verification": "Closure verification status",
    "activity_log": "Activity log and control mapping",
}
LEADERSHIP = "quarterly_leadership"
#: Processes writing the activity log at once, then notebooks executed at once (each in its own kernel).
WORKERS = log_export.PROCESSES
NOTEBOOK_PARAMETERS = ("db", "engagement", "period_start", "period_end", "as_of")
#: The private key's path signs the manifest; like the database URL's secrets it never reaches the pack or
#: the record (a path says where a key is kept, which an auditor need not know).
SIGNING_KEY = "signing_key"
KEYS = (*NOTEBOOK_PARAMETERS, "notebooks", "notebooks_dir", "title", "thresholds", SIGNING_KEY)
ACTIVITY_CSV = "activity_log.csv"
QUALITY_JSON = "data_quality.json"
#: The reconciliation categories whose full lists the pack writes as ``gaps/<category>.csv`` (the pages
#: show the first rows and link the file).
GAP_FILES = (
    "routing_misses",
    "batch_misses",
    "closure_misses",
    "severity_drift",
    "orphan_tickets",
    "tickets_without_id",
)
#: The steps after the export, longest first as measured on a large record (bench/report.py; the per-view
#: pages read the reconciliation and frames the leadership page leaves in the shared memo): the workers
#: then end close together instead of one waiting on a long last step.
LONGEST_FIRST = (
    "quarterly_leadership",
    "closure_verification",
    QUALITY_JSON,
    "activity_log",
    "ticket_mapping",
    "severity_calibration",
    "routing_decisions",
)
MANIFEST = "manifest.json"
SIGNATURE = f"{MANIFEST}.sig"
VERSIONED = (
    "handoffkit",
    "pandas",
    "sqlalchemy",
    "altair",
    "vl-convert-python",
    "papermill",
    "nbconvert",
    "great-expectations",
    "ipykernel",
)


@dataclass
class Rendered:
    """What :func:`render` wrote."""

    out_dir: Path
    as_of: str
    chain_head: dict[str, Any]
    pages: list[Path]
    activity_csv: Path
    quality_json: Path
    manifest: Path
    manifest_sha256: str
    seconds: float
    pdf: Path | None = None
    signature: Path | None = None

    @property
    def index(self) -> Path:
        """The pack's first page: what it is, and a link to everything in it."""
        return self.out_dir / contents.INDEX

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "index": str(self.index),
            "as_of": self.as_of,
            "chain_head": self.chain_head,
            "pages": [str(p) for p in self.pages],
            "activity_csv": str(self.activity_csv),
            "quality_json": str(self.quality_json),
            "manifest": str(self.manifest),
            "manifest_sha256": self.manifest_sha256,
            "pdf": None if self.pdf is None else str(self.pdf),
            "signature": str(self.signature) if self.signature else None,
            "seconds": round(self.seconds, 1),
        }


def load_params(params_file: str | Path) -> dict[str, Any]:
    """Read a report parameter file (YAML mapping of :data:`KEYS`).

    Raises:
        ConfigError: the file is missing, not a mapping, lacks a required key or has an unknown one.
    """
    path = Path(params_file)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(located(str(path), None, "parameter file not found")) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(located(str(path), None, f"not valid YAML: {exc}")) from exc
    if not isinstance(doc, dict):
        raise ConfigError(located(str(path), None, f"expected a mapping of {', '.join(KEYS)}"))
    for key in doc:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            raise ConfigError(
                located(
                    str(path),
                    str(key),
                    "unknown key" + (f"; did you mean {close[0]!r}?" if close else f"; expected {KEYS}"),
                )
            )
    for key in ("engagement", "period_start", "period_end"):
        if doc.get(key) in (None, ""):
            raise ConfigError(located(str(path), key, "required"))
    unknown = [n for n in doc.get("notebooks") or [] if n not in TITLES]
    if unknown:
        raise ConfigError(
            located(str(path), "notebooks", f"unknown notebook {unknown[0]!r}; expected names from {', '.join(TITLES)}")
        )
    facts.thresholds(doc.get("thresholds"), where=f"{path}: thresholds")
    return doc


def absolute_db(url: str) -> str:
    """A SQLite URL with a relative path made absolute (notebook kernels run in another directory)."""
    file = sqlite_file(url)
    if file is None or Path(file).is_absolute():
        return url
    return make_url(url).set(database=str(Path(file).resolve())).render_as_string(hide_password=False)


def signing_key_path(doc: dict[str, Any]) -> Path | None:
    """The private key that signs a pack rendered with these parameters: the file's ``signing_key``,
    else ``HANDOFFKIT_SIGNING_KEY``, else none (the pack is sealed unsigned)."""
    from handoffkit.record.signatures import KEY_ENV

    configured = doc.get(SIGNING_KEY) or os.environ.get(KEY_ENV)
    return Path(str(configured)).expanduser() if configured else None


def signing_key_configured(doc: dict[str, Any]) -> bool:
    """Whether a pack rendered with these parameters (a :func:`load_params` mapping) gets a signed manifest
    (``manifest.json.sig``): a page can say so before the manifest exists."""
    return signing_key_path(doc) is not None


def render(
    params_file: str | Path,
    *,
    db: str | None = None,
    as_of: datetime | date | str | None = None,
    out_dir: str | Path | None = None,
    actor: str,
    progress: Callable[[str], None] | None = None,
    to_pdf: bool = False,
) -> Rendered:
    """Execute, render and seal the report set (see the module docstring).

    Args:
        params_file: the YAML parameter file (``params/quarterly.yaml``).
        db: database URL overriding the file's ``db`` (``HANDOFFKIT_DB`` does too, when ``db`` is None).
        as_of: the instant reported on, overriding the file's ``as_of`` (default: now).
        out_dir: where the pack goes (default ``outputs/<engagement>-<as-of day>/``).
        actor: the named person rendering (recorded in the activity log).
        progress: called with one line per step (the CLI prints them); an :class:`Activity` also counts
            the steps on its bar.
        to_pdf: also print the pack to one PDF (``evidence_pack.pdf``: the index, then the pages in reading
            order) with headless Chromium; it is sealed in the manifest with the rest.

    Returns:
        A :class:`Rendered` listing what was written.

    Raises:
        ConfigError: a parameter is wrong (the message names the file and key).
        HandoffkitError: a notebook failed (the message names the cell; the executed copy keeps the trace).
    """
    actor = require_actor(actor)
    if to_pdf:
        pdf.chromium()  # no Chromium: say so before rendering anything
    started = time.perf_counter()
    tell = Activity.of(progress)
    path = Path(params_file)
    doc = load_params(path)
    key_path = signing_key_path(doc)
    if key_path is not None:
        _signer(key_path)  # a key that cannot sign fails the report before any notebook runs
    url = absolute_db(db or os.environ.get("HANDOFFKIT_DB") or doc.get("db") or DEFAULT_URL)
    params = views.parameters(
        url, doc["engagement"], doc["period_start"], doc["period_end"], as_of if as_of is not None else doc.get("as_of")
    )
    store = params.store
    out = (Path(out_dir) if out_dir else Path("outputs") / f"{params.engagement}-{params.as_of[:10]}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with store.read() as conn:
        head_seq, head_hash = replay.head(conn, params.as_of)
    chain_head = {"seq": head_seq, "row_hash": head_hash}
    tell(f"report: {params.engagement} as of {params.as_of} (log head seq {head_seq}) -> {out}")

    names = list(doc.get("notebooks") or TITLES)
    # The steps a bar counts: the log export, each page, the quality check, the index, the PDF, the seal.
    tell.expect(len(names) + 4 + (1 if to_pdf else 0))
    notebook_values = {
        "db": url,
        "engagement": params.engagement,
        "period_start": params.period_start.isoformat(),
        "period_end": params.period_end.isoformat(),
        "as_of": params.as_of,
    }
    written, export, (quality_path, quality_run) = _pages_and_export(
        path, doc, names, notebook_values, params, out, chain_head, actor, tell
    )
    gap_files = _gap_files(store, params.engagement, params.as_of, out)
    meta = _meta(notebook_values, chain_head)
    fields = pages.header_fields(meta)
    contents.quality_page(out, fields=fields, names=names, quality_json=quality_path)
    title = doc.get("title") or TITLES[LEADERSHIP]
    contents.index_page(
        out,
        title=f"Evidence pack: {title}",
        fields=fields,
        pages_={name: _title(doc, name) for name in names},
        signed=key_path is not None,  # the index says "signed" only when manifest.json.sig will be written
        files=[
            (ACTIVITY_CSV, "the period's activity-log events, each mapped to the controls it evidences"),
            *((f"gaps/{name}.csv", f"the full list: {views.MAPPING_CATEGORIES[name]}") for name in gap_files),
        ],
    )
    tell(f"wrote {out / contents.INDEX}")
    tell.advance()
    printed = None
    if to_pdf:
        order = [contents.INDEX, *(f"{name}.html" for name in names), contents.QUALITY]
        header = f"{params.engagement} · as of {dict(fields)['As of']} · log head seq {head_seq}"
        printed = pdf.write_pdf(out, order, running_header=header)
        tell(f"wrote {printed}")
        tell.advance()
    rendering = {"versions": _versions(), "data_quality_run": quality_run}
    manifest = _manifest(
        out,
        doc,
        store.safe_url,
        notebook_values,
        chain_head,
        names,
        {Path(export.file): export.sha256},
        rendering,
        _signer(key_path),
    )
    digest = sha256_bytes(manifest.read_bytes())
    signature = _sign(manifest, key_path)
    log_event(
        store,
        Event(
            type="report_rendered",
            actor=actor,
            engagement=params.engagement,
            source=Source(str(manifest), digest),
            data={
                "views": names,
                "as_of": params.as_of,
                "out": str(out),
                "manifest_sha256": digest,
                "signed": signature is not None,
                "period": [notebook_values["period_start"], notebook_values["period_end"]],
                "chain_head": chain_head,
            },
        ),
    )
    tell(f"wrote {manifest}")
    tell.advance()
    return Rendered(
        out,
        params.as_of,
        chain_head,
        [written[n] for n in names],
        Path(export.file),
        quality_path,
        manifest,
        digest,
        time.perf_counter() - started,
        printed,
        signature,
    )


def _pages_and_export(
    path: Path,
    doc: dict[str, Any],
    names: list[str],
    values: dict[str, Any],
    params: views.Parameters,
    out: Path,
    chain_head: dict[str, Any],
    actor: str,
    tell: Activity,
) -> tuple[dict[str, Path], log_export.Export, tuple[Path, dict[str, Any]]]:
    """Export the period's activity log, render the pages and check the record's data quality; returns
    the pages by name, the export and the quality results' path.

    The export comes first, on every core (:data:`WORKERS` processes), because the leadership page's
    checklist reads the ``log_exported`` event it writes. Then :data:`WORKERS` pages at a time, each
    notebook in a kernel process of its own, and the quality check (Python in this process), in the
    order of :data:`LONGEST_FIRST`.
    """
    export = log_export.export_log(
        params.store,
        params.engagement,
        out / ACTIVITY_CSV,
        start=params.period_start,
        end=params.period_end,
        as_of=params.as_of,
        actor=actor,
        processes=WORKERS,
    )
    tell(f"wrote {export.file} ({export.rows:,} events)")
    tell.advance()
    nav = contents.navigation(names)
    with _shared_memo(), ThreadPoolExecutor(max_workers=WORKERS) as pool:
        queued: dict[str, Any] = {}
        for name in LONGEST_FIRST:
            if name == QUALITY_JSON:
                queued[name] = pool.submit(_quality, params.store, params.engagement, params.as_of, out / QUALITY_JSON)
            elif name in names:
                queued[name] = pool.submit(_page, path, doc, name, values, out, chain_head, tell, nav)
        for future in queued.values():
            future.add_done_callback(lambda _: tell.advance())
        quality_path, quality_run = queued.pop(QUALITY_JSON).result()
        pages = {name: queued[name].result() for name in names}
    tell(f"wrote {quality_path}")
    return pages, export, (quality_path, quality_run)


@contextmanager
def _shared_memo() -> Iterator[None]:
    """The notebook kernels started inside share their memo entries (:data:`_memo.SHARED_MEMO_ENV`): the
    reconciliation, findings frame and MTTR durations several pages read are computed once per report."""
    before = os.environ.get(_memo.SHARED_MEMO_ENV)
    with tempfile.TemporaryDirectory(prefix="hk-memo-") as folder:
        os.environ[_memo.SHARED_MEMO_ENV] = folder  # kernels inherit this process's environment
        try:
            yield
        finally:
            if before is None:
                del os.environ[_memo.SHARED_MEMO_ENV]
            else:
                os.environ[_memo.SHARED_MEMO_ENV] = before


def _page(
    params_path: Path,
    doc: dict[str, Any],
    name: str,
    values: dict[str, Any],
    out: Path,
    chain_head: dict[str, Any],
    tell: Callable[[str], None],
    nav: list[tuple[str, str]],
) -> Path:
    """Execute one notebook and render its readers' page."""
    folder = (params_path.parent / (doc.get("notebooks_dir") or "../notebooks")).resolve()
    notebook = folder / f"{name}.ipynb"
    # No cwd: papermill would chdir the whole process, and notebooks run in threads here. The kernels
    # need none: every path they get (the database URL included) is absolute.
    # the leadership page judges its tiles against the file's thresholds (facts.THRESHOLDS by default)
    given = {**values, "thresholds": doc.get("thresholds")} if name == LEADERSHIP else values
    executed = pages.execute(notebook, out / "notebooks" / f"{name}.ipynb", given, progress=tell)
    page = pages.to_html(
        executed, out / f"{name}.html", title=_title(doc, name), meta=_meta(values, chain_head), nav=nav
    )
    tell(f"rendered {page}")
    return page


def _gap_files(store: Any, engagement: str, as_of: str, out: Path) -> list[str]:
    """Write every finding or ticket behind each of :data:`GAP_FILES` as ``gaps/<category>.csv``
    (formula-safe, instants in full); returns the categories written."""
    folder = out / "gaps"
    folder.mkdir(exist_ok=True)
    for category in GAP_FILES:
        frame = views.mapping_gaps(store, engagement, category, as_of=as_of, limit=None)
        text = csvsafe.to_csv(frame.astype(object).where(frame.notna(), None).to_dict("records"), list(frame.columns))
        (folder / f"{category}.csv").write_text(text, encoding="utf-8")
    return list(GAP_FILES)


def _title(doc: dict[str, Any], name: str) -> str:
    """A page's title: the parameter file's ``title`` names the leadership page (and so the pack)."""
    return (doc.get("title") or TITLES[name]) if name == LEADERSHIP else TITLES[name]


def _meta(values: dict[str, Any], chain_head: dict[str, Any]) -> dict[str, Any]:
    """The header fields every page of the pack shows."""
    return {
        "engagement": values["engagement"],
        "as_of": values["as_of"],
        "chain_head_seq": chain_head["seq"],
        "chain_head_hash": chain_head["row_hash"],
        "period": f"{values['period_start']} to {values['period_end']}",
    }


def _quality(store: Any, engagement: str, as_of: str, target: Path) -> tuple[Path, dict[str, Any]]:
    """Run the findings suite over the record's findings as of ``as_of`` (severity as it stood then)."""
    f = schema.findings.c
    cols = [f.finding_id, f.fingerprint, f.title, f.asset_ref, f.cves, f.cwes, f.finding_id.label("source_ref")]
    with store.read() as conn:
        found = frames.driver_frame(
            conn, select(*cols).where(f.engagement == engagement, f.first_seen <= as_of).order_by(f.number)
        )
        severity = replay.state_frame(conn, engagement, as_of)[["finding_id", "severity"]]
    frame = found.merge(severity, on="finding_id", how="left").drop(columns="finding_id")
    checked = quality.check_findings(frame)
    result = dict(checked.result)
    run = result.pop("meta", {})  # when and how GX ran: this run's, not the record's
    for item in result.get("results", []):
        item.get("expectation_config", {}).pop("id", None)  # a new id per process
    doc = {
        "subject": f"findings of {engagement} first seen at or before {as_of}",
        "rows": len(frame),
        "summary": checked.summary(),
        "great_expectations": result,
    }
    target.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return target, json.loads(json.dumps(run, default=str))


def _manifest(
    out: Path,
    doc: dict[str, Any],
    safe_url: str,
    values: dict[str, Any],
    chain_head: dict[str, Any],
    names: list[str],
    known: dict[Path, str],
    rendering: dict[str, Any],
    signing: dict[str, Any] | None,
) -> Path:
    """Write ``manifest.json``: every file's SHA-256, the chain head, parameters, as-of, versions, and
    (when signed) which key signs it.

    ``known`` holds digests taken as a file was written (the activity log's: hashing its gigabytes again
    would cost seconds). The signature file is not listed (the manifest records nothing that depends on
    its own signature); one left by an earlier run in the same directory is removed first.
    """
    target, signature = out / MANIFEST, out / SIGNATURE
    signature.unlink(missing_ok=True)
    files = {
        p.relative_to(out).as_posix(): {"sha256": known.get(p) or sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(out.rglob("*"))
        if p.is_file() and p not in (target, signature) and not p.name.startswith(".")
    }
    manifest = {
        "engagement": values["engagement"],
        "as_of": values["as_of"],
        "period": {"start": values["period_start"], "end": values["period_end"]},
        "chain_head": chain_head,
        "notebooks": names,
        "parameters": {**{k: v for k, v in doc.items() if k not in ("db", SIGNING_KEY)}, **values, "db": safe_url},
        "files": files,
        "rendering": rendering,
    }
    if signing is not None:
        manifest["signing"] = signing
    target.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return target


def _signer(key_path: Path | None) -> dict[str, Any] | None:
    """What the manifest says of its signature: the algorithm, the file beside it, the public key's
    fingerprint (the key to ask for); nothing of the signature itself."""
    if key_path is None:
        return None
    from handoffkit.record import signatures

    public = signatures.load_private(key_path).public_key()
    return {
        "algorithm": signatures.ALGORITHM,
        "signature_file": SIGNATURE,
        "public_key_sha256": signatures.fingerprint(public),
    }


def _sign(manifest: Path, key_path: Path | None) -> Path | None:
    if key_path is None:
        return None
    from handoffkit.record import signatures

    return signatures.sign(manifest, key_path)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
