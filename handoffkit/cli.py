"""The ``handoffkit`` command: a thin layer over the library.

Each command opens the store, calls one library function and prints the result. Checks on option
combinations live here; domain rules live in the library. Every library error becomes one line on
stderr and a non-zero exit (``--verbose`` shows the traceback).
"""

from __future__ import annotations

import gc
import sys
import traceback
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from handoffkit.errors import HandoffkitError
from handoffkit.ingest.registry import FORMATS
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.report.output import Activity, emit
from handoffkit.version import __version__

OUTPUT_FORMATS = ("table", "json", "ndjson", "csv")


@dataclass
class Context:
    db: str | None
    fmt: str | None
    verbose: bool
    _store: Store | None = None

    @property
    def store(self) -> Store:
        """The existing record: a command other than ``init``, ``demo`` or ``kev load`` never creates one."""
        if self._store is None:
            self._store = Store(self.db, create=False)
        return self._store

    @property
    def new_store(self) -> Store:
        """The record, created when the database holds none yet."""
        if self._store is None:
            self._store = Store(self.db)
        return self._store

    def out_format(self, *candidates: str | None) -> str:
        for c in (*candidates, self.fmt):
            if c in OUTPUT_FORMATS:
                return c
        return "table"


class _UsageLine(click.ClickException):
    """A usage error as one line with a hint, instead of click's usage block."""

    exit_code = 2

    def __init__(self, exc: click.UsageError) -> None:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        super().__init__(" ".join(exc.format_message().split()) + hint)

    def show(self, file: Any = None) -> None:
        click.echo(f"handoffkit: error: {self.message}", err=True)


# A group run without a command shows its help (click 8.2+): that is what was asked for, not an error.
_HELP_ASKED = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_line(exc: click.UsageError) -> click.ClickException:
    return exc if isinstance(exc, _HELP_ASKED) else _UsageLine(exc)


class _Group(click.Group):
    """Maps library errors, and click's usage errors, to one line and an exit code, in one place."""

    group_class = type  # subgroups (log, ingest, kev, exception) are _Groups too

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _usage_line(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _usage_line(exc) from exc
        except HandoffkitError as exc:
            obj = ctx.find_object(Context)
            if obj is not None and obj.verbose:
                traceback.print_exc()
            click.echo(f"handoffkit: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def actor_option(fn):
    return click.option(
        "--actor",
        envvar="HANDOFFKIT_ACTOR",
        default="",
        show_envvar=True,
        help="The one named person taking this action (recorded in the activity log).",
    )(fn)


def progress_option(fn):
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress on stderr: a bar on a terminal (the default there), lines elsewhere with --progress.",
    )(fn)


def format_option(fn):
    return click.option(
        "--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None, help="Output format (default: table)."
    )(fn)


def engagement_option(fn):
    return click.option("--engagement", "-e", required=True, help="Engagement key.")(fn)


def parse_instant(value: str | None, option: str = "--as-of") -> datetime | None:
    """``2026-09-30`` (end of that day, UTC) or any ISO 8601 instant; naive means UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.max.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 instant", param_hint=option
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def say(text: str) -> None:
    click.echo(text)


def failed_files(rows: list[dict[str, Any]]) -> None:
    """Each failed file's whole error on stderr, one line each (the table or JSON on stdout has it too)."""
    for row in rows:
        if row.get("status") == "failed":
            message = " ".join(str(row.get("error") or "failed").split())
            named = message if message.startswith(str(row["file"])) else f"{row['file']}: {message}"
            click.echo(f"handoffkit: error: {named}", err=True)


@click.group("handoffkit", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="HANDOFFKIT_DB",
    show_envvar=True,
    help="Database URL (default sqlite:///handoffkit.db; postgresql+psycopg://… for PostgreSQL).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(OUTPUT_FORMATS),
    default=None,
    help="Output format for every command that prints results.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show the traceback of an error.")
@click.version_option(__version__, prog_name="handoffkit")
@click.pass_context
def cli(ctx: click.Context, db: str | None, fmt: str | None, verbose: bool) -> None:
    """Keep the security finding record canonical while remediation moves into tickets."""
    ctx.obj = Context(db, fmt, verbose)


# ------------------------------------------------------------------------------- engagements


@cli.command()
@engagement_option
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Handoff policy YAML (see params/policy.yaml).",
)
@click.option(
    "--owners",
    "owners_path",
    type=click.Path(dir_okay=False),
    help="Owners map CSV (default: the policy's ownership.owners_file).",
)
@click.option(
    "--people",
    "people_path",
    type=click.Path(dir_okay=False),
    help="People directory CSV: id, name, email, aliases, may_approve (default: people.csv beside the policy, if any).",
)
@click.option("--name", help="Human-readable engagement name.")
@actor_option
@format_option
@click.pass_obj
def init(
    obj: Context,
    engagement: str,
    policy_path: str,
    owners_path: str | None,
    people_path: str | None,
    name: str | None,
    actor: str,
    fmt: str | None,
) -> None:
    """Create an engagement, or store a changed policy / owners map as a new version."""
    from handoffkit.record import engagements

    result = engagements.init(
        obj.new_store,
        engagement,
        policy_path,
        actor=require_actor(actor),
        name=name,
        owners_path=owners_path,
        people_path=people_path,
    )
    say(emit(result.as_dict(), obj.out_format(fmt)))
    if result.defaulted:
        click.echo(
            f"warning: {policy_path} does not state {', '.join(result.defaulted)}; their defaults apply, "
            "and the checklist's 'handoff policy documented' item fails until the file states them",
            err=True,
        )


@cli.command("engagements")
@format_option
@click.pass_obj
def engagements_cmd(obj: Context, fmt: str | None) -> None:
    """List engagements."""
    from handoffkit.record import engagements

    say(
        emit(
            engagements.list_engagements(obj.store), obj.out_format(fmt), ["key", "name", "policy_version", "findings"]
        )
    )


def list_options(fn):
    """--limit, the shared filters and --fields, for every list command (see handoffkit.report.listing)."""
    options = [
        click.option("--limit", type=click.IntRange(min=0), help="At most this many rows."),
        click.option("--state", "states", multiple=True, help="Only this state (repeatable: any of them)."),
        click.option("--severity", "severities", multiple=True, help="Only this severity band (repeatable)."),
        click.option("--tool", "tools", multiple=True, help="Only this tool / ticket system (repeatable)."),
        click.option("--owner", "owners", multiple=True, help="Only this owner team, role or person (repeatable)."),
        click.option("--since", help="Only rows from this instant on (date or ISO 8601)."),
        click.option(
            "--fields",
            help="Comma-separated columns to print, in this order (findings also take any column of the record, "
            "e.g. location,batch_id).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def list_filters(
    limit: int | None,
    states: tuple[str, ...],
    severities: tuple[str, ...],
    tools: tuple[str, ...],
    owners: tuple[str, ...],
    since: str | None,
    fields: str | None,
) -> Any:
    from handoffkit.report.listing import Filters

    start = parse_instant(since, "--since")
    if since is not None and len(since) == 10 and start is not None:  # a day means from its start
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    chosen = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else ()
    return Filters(states, severities, tools, owners, start, chosen, limit)


def say_list(df: Any, fmt: str) -> None:
    from handoffkit.report.listing import as_rows

    rows, columns = as_rows(df)
    say(emit(rows, fmt, columns))


@cli.command("findings")
@engagement_option
@click.option("--as-of", "as_of", help="Reconstruct the record from the activity log as of this instant.")
@list_options
@format_option
@click.pass_obj
def findings_cmd(obj: Context, engagement: str, as_of: str | None, fmt: str | None, **filters: Any) -> None:
    """List findings (current state, or rebuilt from the log as of a date)."""
    from handoffkit.report import listing

    when, chosen = parse_instant(as_of), list_filters(**filters)  # bad options fail before the store opens
    say_list(listing.finding_list(obj.store, engagement, chosen, when), obj.out_format(fmt))


@cli.command("tickets")
@engagement_option
@list_options
@format_option
@click.pass_obj
def tickets_cmd(obj: Context, engagement: str, fmt: str | None, **filters: Any) -> None:
    """List tickets as last observed (--state: status category; --severity: priority band; --tool: system)."""
    from handoffkit.report import listing

    chosen = list_filters(**filters)
    say_list(listing.ticket_list(obj.store, engagement, chosen), obj.out_format(fmt))


@cli.command("events")
@engagement_option
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
@click.option("--finding", "finding_id", help="Only events of this finding.")
@click.option("--as-of", "as_of", help="Only events at or before this instant.")
@list_options
@format_option
@click.pass_obj
def events_cmd(
    obj: Context,
    engagement: str,
    types: tuple[str, ...],
    finding_id: str | None,
    as_of: str | None,
    fmt: str | None,
    **filters: Any,
) -> None:
    """List activity-log events, newest first (hashes and payloads are in `log export`)."""
    from handoffkit.report import listing

    when, chosen = parse_instant(as_of), list_filters(**filters)
    df = listing.event_list(obj.store, engagement, chosen, types=types, finding_id=finding_id, as_of=when)
    say_list(df, obj.out_format(fmt))


# ------------------------------------------------------------------------------------- the log


@cli.group("log")
def log_group() -> None:
    """The activity log: verify the hash chain, export it."""


@log_group.command("verify")
@click.option(
    "--anchor",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON holding an earlier head seq + row_hash (e.g. an evidence pack's manifest.json).",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Check the anchor's signature (ANCHOR.sig) with this Ed25519 public key before the anchor itself.",
)
@click.option(
    "--replay",
    is_flag=True,
    help="Also rebuild findings, links and first ticket snapshots from the log and compare them with the tables.",
)
@actor_option
@format_option
@click.pass_obj
def log_verify(
    obj: Context, anchor: str | None, public_key: str | None, replay: bool, actor: str, fmt: str | None
) -> None:
    """Walk the hash chain; exit non-zero naming the first bad seq (a failing check writes nothing)."""
    from handoffkit.record import log

    if public_key and not anchor:
        raise click.UsageError("--public-key checks a signed anchor: give --anchor manifest.json too")
    result = log.verify_logged(obj.store, require_actor(actor), anchor, public_key, replay=replay)
    say(
        emit(result.as_dict(), obj.out_format(fmt))
        if obj.out_format(fmt) == "json"
        else f"ok: {result.checked} events verified, head seq {result.head_seq} {result.head_hash}"
        + (f"; anchor seq {result.anchor['seq']} matches" if result.anchor else "")
        + (
            "; the tables equal the log replayed ("
            + ", ".join(f"{n} {table}" for table, n in result.replayed.items())
            + ")"
            if result.replayed is not None
            else ""
        )
    )


@log_group.command("export")
@engagement_option
@click.option("--from", "start", help="First day (UTC, YYYY-MM-DD) of events to export.")
@click.option("--to", "end", help="Last day (UTC, YYYY-MM-DD, inclusive) of events to export.")
@click.option("--as-of", "as_of", help="Only events at or before this instant (default: now).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The CSV file to write.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="Write a large log in this many parts at once (default: one per core, at most 4).",
)
@actor_option
@format_option
@progress_option
@click.pass_obj
def log_export(
    obj: Context,
    engagement: str,
    start: str | None,
    end: str | None,
    as_of: str | None,
    out: str,
    processes: int | None,
    actor: str,
    fmt: str | None,
    progress: bool | None,
) -> None:
    """Write the activity log as CSV with ISO 27001 / SOC 2 / PCI DSS / NIST control-mapping columns."""
    from handoffkit.report import log_export

    first, last = parse_day(start), parse_day(end)
    if first and last and first > last:
        raise click.BadParameter(f"--from {first} is after --to {last}", param_hint="--from")
    with Activity.choose(None, progress) as activity:
        result = log_export.export_log(
            obj.store,
            engagement,
            out,
            start=first,
            end=last,
            as_of=parse_instant(as_of),
            actor=require_actor(actor),
            processes=processes or log_export.PROCESSES,
            progress=activity,
        )
    say(
        emit(result.as_dict(), "json")
        if obj.out_format(fmt) == "json"
        else f"wrote {result.file}: {result.rows} events (seq {result.first_seq}-{result.last_seq}), "
        f"sha256 {result.sha256}"
    )


# ------------------------------------------------------------------------------- keys and packs


@cli.group("keys")
def keys_group() -> None:
    """Ed25519 key pairs that sign evidence packs."""


@keys_group.command("generate")
@click.option(
    "--private-key",
    "private_key",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the private key (PEM, mode 0600; keep it off the record's machine if you can).",
)
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False),
    help="Where to write the public key for auditors (default: the private key's path + .pub).",
)
def keys_generate(private_key: str, public_key: str | None) -> None:
    """Write a new signing key pair; neither file may exist."""
    from handoffkit.record import signatures

    public = public_key or f"{private_key}.pub"
    key_id = signatures.generate(private_key, public)
    say(f"wrote {private_key} (private, mode 0600) and {public} (public, sha256 {key_id})")


@cli.group("pack")
def pack_group() -> None:
    """Evidence packs written by `handoffkit report`."""


@pack_group.command("verify")
@click.argument("pack_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--public-key", required=True, type=click.Path(exists=True, dir_okay=False), help="The signer's public key."
)
@format_option
@click.pass_obj
def pack_verify(obj: Context, pack_dir: str, public_key: str, fmt: str | None) -> None:
    """Check a pack's manifest signature and every file it lists (no database needed)."""
    from handoffkit.report import seal

    result = seal.verify_pack(pack_dir, public_key)
    say(
        emit(result.as_dict(), "json")
        if obj.out_format(fmt) == "json"
        else f"ok: {pack_dir}: manifest signed by key sha256 {result.signed_by}, {result.files} files match; "
        f"log head seq {result.chain_head.get('seq')} (check the record with log verify --anchor)"
    )


@cli.group("gate")
def gate_group() -> None:
    """The data-quality gate process that serves ingests.

    It holds Great Expectations, loaded once, for the ingests that follow the one that started it.
    """


@gate_group.command("status")
@format_option
@click.pass_obj
def gate_status(obj: Context, fmt: str | None) -> None:
    """Whether a gate process is running (no database needed)."""
    from handoffkit.ingest import gate_server

    state = gate_server.status()
    if obj.out_format(fmt) == "json":
        say(emit({"running": state is not None, "gate": state, "enabled": gate_server.enabled()}, "json"))
    elif state is None:
        off = "" if gate_server.enabled() else " (HANDOFFKIT_GATE=inprocess: ingests check in their own process)"
        say(f"no gate process is running; the next `ingest scan` starts one{off}")
    elif state.get("loading"):
        say(f"gate process {state['pid']} is loading; ingests check in their own process until it serves")
    else:
        say(
            f"gate process {state['pid']} running since {state['started_at']}, {state['checks']} check(s) answered; "
            f"it exits after {state['idle_seconds']:.0f} s without a request"
        )


@gate_group.command("stop")
def gate_stop() -> None:
    """Stop the gate process; the next `ingest scan` starts a new one."""
    from handoffkit.ingest import gate_server

    say("stopped the gate process" if gate_server.stop() else "no gate process was running")


# ---------------------------------------------------------------------------------------- ingest


@cli.group("ingest")
def ingest_group() -> None:
    """Read scanner outputs and ticket exports into the record."""


SCAN_FORMATS = ("auto", *FORMATS)


def each_file(files: tuple[str, ...], asked: bool | None, ingest: Any) -> list[Any]:
    """``ingest([file], progress)`` for each file in turn (each is its own transaction anyway), with a
    progress bar over the files on a terminal."""
    results: list[Any] = []
    with Activity.choose(len(files), asked) as activity:
        for file in files:
            results += ingest([file], activity)
            activity.advance()
    return results


@ingest_group.command("scan")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@engagement_option
@actor_option
@click.option(
    "--scanner",
    "--input-format",
    "scanner",
    type=click.Choice(SCAN_FORMATS),
    default="auto",
    show_default=True,
    help="The scanner format of the files (auto: detected from their content, never from their names).",
)
@format_option
@click.option("--scope", help="Asset glob the scan covered (default: the assets it reports).")
@click.option(
    "--scanned-at",
    help="When the scan ran, for files that do not say (ISO 8601 instant or date; default: now). The same "
    "file at the same scan instant is a duplicate; at a later one, a rescan.",
)
@click.option(
    "--encoding-fallback", type=click.Choice(["cp1252"]), help="Read a non-UTF-8 CSV as Windows-1252 (logged)."
)
@progress_option
@click.pass_obj
def ingest_scan(
    obj: Context,
    files: tuple[str, ...],
    engagement: str,
    actor: str,
    scanner: str,
    fmt: str | None,
    scope: str | None,
    scanned_at: str | None,
    encoding_fallback: str | None,
    progress: bool | None,
) -> None:
    """Ingest scanner files (each file all-or-nothing); exit non-zero if any file failed."""
    from handoffkit.ingest import gate_server, pipeline

    out = obj.out_format(fmt)
    actor, when = require_actor(actor), parse_instant(scanned_at, "--scanned-at")
    results = each_file(
        files,
        progress,
        lambda batch, activity: pipeline.ingest_scan(
            obj.store,
            engagement,
            batch,
            actor=actor,
            fmt=scanner,
            scope=scope,
            fallback_encoding=encoding_fallback,
            progress=activity,
            scanned_at=when,
            served_gate=gate_server.enabled(),
        ),
    )
    rows = [r.as_dict() for r in results]
    if out == "json":
        say(emit({"files": rows}, "json"))
    else:
        say(
            emit(
                rows,
                out,
                ["file", "format", "parsed", "new", "seen_again", "reopened", "absent_in_rescan", "status", "error"],
            )
        )
    failed_files(rows)
    if pipeline.failed(results):
        sys.exit(3)


@ingest_group.command("tickets")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--system",
    required=True,
    type=click.Choice(["jira", "servicenow", "github", "defectdojo"]),
    help="The ticket system the export comes from (defectdojo: a jira_finding_mappings export).",
)
@engagement_option
@actor_option
@format_option
@progress_option
@click.pass_obj
def ingest_tickets(
    obj: Context,
    files: tuple[str, ...],
    system: str,
    engagement: str,
    actor: str,
    fmt: str | None,
    progress: bool | None,
) -> None:
    """Import ticket exports as snapshots (closure → awaiting verification, never further)."""
    from handoffkit.tickets import snapshots

    actor = require_actor(actor)
    results = each_file(
        files,
        progress,
        lambda batch, activity: snapshots.ingest_tickets(
            obj.store, engagement, batch, system=system, actor=actor, progress=activity
        ),
    )
    rows = [r.as_dict() for r in results]
    out = obj.out_format(fmt)
    if out == "json":
        say(emit({"files": rows}, "json"))
    else:
        say(
            emit(
                rows,
                out,
                [
                    "file",
                    "format",
                    "tickets",
                    "new_tickets",
                    "linked",
                    "orphans",
                    "closed_observed",
                    "reopened",
                    "renamed",
                    "split",
                    "severity_drift",
                    "out_of_scope",
                    "status",
                    "error",
                ],
            )
        )
    failed_files(rows)
    if any(r.status == "failed" for r in results):
        sys.exit(3)


@cli.group("sync")
def sync_group() -> None:
    """Read current state from a ticket system's API (one snapshot or nothing)."""


def tracker_options(fn):
    for option in reversed(
        [
            click.option(
                "--params",
                "params_file",
                type=click.Path(dir_okay=False, exists=True),
                help="Tracker parameters (YAML, one section per system: url, credentials, query …).",
            ),
            click.option("--url", help="The system's base URL (overrides the parameters)."),
            click.option(
                "--credentials",
                type=click.Path(dir_okay=False),
                help="A credentials file (token, user, password); default: HANDOFFKIT_<SYSTEM>_TOKEN etc.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@sync_group.command("tickets")
@click.option("--system", required=True, type=click.Choice(["jira", "github", "servicenow"]))
@engagement_option
@tracker_options
@click.option("--since", help="GitHub: only issues updated since this ISO 8601 instant.")
@actor_option
@format_option
@progress_option
@click.pass_obj
def sync_tickets(
    obj: Context,
    system: str,
    engagement: str,
    params_file: str | None,
    url: str | None,
    credentials: str | None,
    since: str | None,
    actor: str,
    fmt: str | None,
    progress: bool | None,
) -> None:
    """Pull the tickets' current state through the API and compare it with the last snapshot."""
    from handoffkit.tickets import connection, sync

    settings = connection.load_settings(params_file, system, url=url, credentials=credentials)
    with Activity.choose(None, progress) as activity:
        result = sync.sync_tickets(
            obj.store, engagement, system, settings, actor=require_actor(actor), since=since, progress=activity
        )
    columns = ["file", "format", "requests", "pages", "tickets", "new_tickets", "linked", "orphans",
               "closed_observed", "reopened", "renamed", "split", "severity_drift", "out_of_scope"]  # fmt: skip
    say(emit(result if obj.out_format(fmt) == "json" else [result], obj.out_format(fmt), columns))


@cli.group("kev")
def kev_group() -> None:
    """The CISA Known Exploited Vulnerabilities catalog."""


@kev_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Validate against this published schema file instead of the bundled statement of it.",
)
@actor_option
@format_option
@click.pass_obj
def kev_load(obj: Context, file: str, schema_path: str | None, actor: str, fmt: str | None) -> None:
    """Load a KEV catalog JSON and flag the findings whose CVEs it lists."""
    from handoffkit.ingest import kev

    say(
        emit(
            kev.load(obj.new_store, file, actor=require_actor(actor), schema_path=schema_path).as_dict(),
            obj.out_format(fmt),
        )
    )


# ------------------------------------------------------------------------------------ governance


@cli.command("triage")
@click.argument("finding_ids", nargs=-1)
@click.option("--engagement", "-e", help="Engagement key (required with a filter).")
@click.option("--as", "outcome", required=True, type=click.Choice(["validated", "false_positive", "duplicate"]))
@click.option("--duplicate-of", help="The finding this one duplicates (with --as duplicate).")
@click.option("--reason", required=True, help="Why (recorded in the activity log).")
@click.option("--tool", help="Filter: findings from this tool.")
@click.option("--rule", help="Filter: findings of this rule / plugin id.")
@click.option("--asset", help="Filter: asset glob (* and ?).")
@click.option("--severity", help="Filter: severity band.")
@actor_option
@format_option
@click.pass_obj
def triage_cmd(
    obj: Context,
    finding_ids: tuple[str, ...],
    engagement: str | None,
    outcome: str,
    duplicate_of: str | None,
    reason: str,
    tool: str | None,
    rule: str | None,
    asset: str | None,
    severity: str | None,
    actor: str,
    fmt: str | None,
) -> None:
    """Triage findings by id or by filter (untriaged findings only); only validated findings route."""
    from handoffkit.workflow import triage

    filtered = any((tool, rule, asset, severity))
    if filtered == bool(finding_ids):
        raise click.UsageError("give finding ids or a filter (--tool/--rule/--asset/--severity), not both")
    if filtered and not engagement:
        raise click.UsageError("a filter needs --engagement")
    ids = list(finding_ids) or triage.select_ids(
        obj.store, engagement, tool=tool, rule=rule, asset=asset, severity=severity
    )
    result = triage.triage(
        obj.store, ids, outcome, reason=reason, actor=require_actor(actor), duplicate_of=duplicate_of
    )
    say(emit(result, obj.out_format(fmt), ["finding_id", "triage", "state"]))


@cli.command("calibrate")
@click.argument("finding_id")
@click.option("--cvss", help="CVSS 3.1 or 4.0 vector.")
@click.option("--env-from-asset", is_flag=True, help="Add environmental metrics from the asset's context.")
@click.option("--severity", help="Set the band explicitly (with or without a vector).")
@click.option("--reason", required=True)
@click.option("--expect-version", type=int, help="Fail unless the finding is still at this row version.")
@actor_option
@format_option
@click.pass_obj
def calibrate_cmd(
    obj: Context,
    finding_id: str,
    cvss: str | None,
    env_from_asset: bool,
    severity: str | None,
    reason: str,
    expect_version: int | None,
    actor: str,
    fmt: str | None,
) -> None:
    """Calibrate a finding's severity on the record (the value tickets carry)."""
    from handoffkit.workflow import calibration

    say(
        emit(
            calibration.calibrate(
                obj.store,
                finding_id,
                cvss=cvss,
                env_from_asset=env_from_asset,
                severity=severity,
                reason=reason,
                actor=require_actor(actor),
                expected_version=expect_version,
            ),
            obj.out_format(fmt),
        )
    )


@cli.command("route")
@engagement_option
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@actor_option
@format_option
@click.pass_obj
def route_cmd(obj: Context, engagement: str, dry_run: bool, actor: str, fmt: str | None) -> None:
    """Apply the engagement's policy to every validated finding."""
    from handoffkit.workflow import routing

    result = routing.route(obj.store, engagement, actor=require_actor(actor), dry_run=dry_run)
    out = obj.out_format(fmt)
    if out == "json":
        say(emit(result.as_dict(), "json"))
        return
    say(
        f"{'plan (dry run, nothing written)' if dry_run else 'routed'}: {engagement}, policy v{result.policy_version}, "
        f"{len(result.changes)} decision(s) {'would change' if dry_run else 'changed'}"
    )
    say(emit([{"disposition": k, "findings": v} for k, v in result.by_disposition.items()], out))
    say(emit([{"owner_team": k, "findings": v} for k, v in result.by_owner_team.items()], out))
    say(emit([{"held_back": k, "findings": v} for k, v in result.held_back.items()], out))
    if result.changes:
        say(emit(result.changes[:200], out, ["finding_id", "from", "to", "owner_team", "sla_due", "rule"]))


@cli.command("escalate")
@engagement_option
@click.option("--dry-run", is_flag=True, help="Print what would be escalated; write nothing.")
@actor_option
@format_option
@click.pass_obj
def escalate_cmd(obj: Context, engagement: str, dry_run: bool, actor: str, fmt: str | None) -> None:
    """Escalate findings past their SLA due date to their band's escalation owner (once per breach)."""
    from handoffkit.workflow import escalation

    result = escalation.escalate(obj.store, engagement, actor=require_actor(actor), dry_run=dry_run)
    out = obj.out_format(fmt)
    if out == "json":
        say(emit(result.as_dict(), "json"))
        return
    say(
        f"{'plan (dry run, nothing written)' if dry_run else 'escalated'}: {engagement}, {len(result.escalated)} "
        f"finding(s) past due on {result.today}; {result.already_escalated} already escalated for that due date"
    )
    if result.unescalated:
        say(emit([{"band": k, "no_escalation_owner": v} for k, v in result.unescalated.items()], out))
    if result.escalated:
        cols = ["finding_id", "band", "sla_due", "days_overdue", "escalated_to", "owner"]
        say(emit(result.escalated[:200], out, cols))


@cli.command("queue")
@engagement_option
@click.option("--as-of", "as_of", help="The queue as the log shows it at this instant (default: now).")
@format_option
@click.pass_obj
def queue_cmd(obj: Context, engagement: str, as_of: str | None, fmt: str | None) -> None:
    """The retest queue: findings awaiting verification, their owner, age, SLA and the evidence each accepts."""
    from handoffkit.report import views

    df = views.retest_queue(obj.store, engagement, parse_instant(as_of))
    out = obj.out_format(fmt)
    say_list(df, out)
    if out == "table":
        needs = [f"  {kind}: {what}" for kind, what in views.EVIDENCE_NEEDS.items()]
        click.echo("\n".join([f"{len(df)} finding(s) awaiting verification; evidence each kind needs:", *needs]))


@cli.command("decide")
@click.argument("finding_id")
@click.option("--owner", help="TEAM/ROLE[/NAME] as the owners map names them: route the finding to this owner.")
@click.option("--hold", is_flag=True, help="Keep the finding out of routing until --until.")
@click.option("--until", "until", help="With --hold: the day (YYYY-MM-DD) the hold ends.")
@click.option("--reason", required=True, help="Why (recorded in the activity log).")
@actor_option
@format_option
@click.pass_obj
def decide_cmd(
    obj: Context,
    finding_id: str,
    owner: str | None,
    hold: bool,
    until: str | None,
    reason: str,
    actor: str,
    fmt: str | None,
) -> None:
    """Record a routing decision on one finding: its owner, or a hold until a date."""
    from handoffkit.workflow import decisions

    if bool(owner) == hold:
        raise click.UsageError("give either --owner TEAM/ROLE[/NAME] or --hold --until DATE")
    if hold != bool(until):
        raise click.UsageError("--hold needs --until DATE (and --until goes with --hold)")
    result = decisions.decide(
        obj.store, finding_id, reason=reason, actor=require_actor(actor), owner=owner, hold_until=parse_day(until)
    )
    say(emit(result, obj.out_format(fmt)))


@cli.group("exception")
def exception_group() -> None:
    """The exception register (accepted risk with a different approver and an expiry)."""


@exception_group.command("grant")
@click.argument("finding_id")
@click.option("--approver", required=True, help="A named person other than the requester (--actor).")
@click.option("--reason", required=True)
@click.option("--expires", required=True, help="Expiry date, YYYY-MM-DD.")
@actor_option
@format_option
@click.pass_obj
def exception_grant(
    obj: Context, finding_id: str, approver: str, reason: str, expires: str, actor: str, fmt: str | None
) -> None:
    """Grant an exception (the requester is --actor)."""
    from handoffkit.workflow import exceptions

    say(
        emit(
            exceptions.grant(
                obj.store,
                finding_id,
                approver=approver,
                reason=reason,
                expires=parse_day(expires),
                actor=require_actor(actor),
            ),
            obj.out_format(fmt),
        )
    )


@exception_group.command("revoke")
@click.argument("finding_id")
@click.option("--reason", required=True)
@actor_option
@format_option
@click.pass_obj
def exception_revoke(obj: Context, finding_id: str, reason: str, actor: str, fmt: str | None) -> None:
    """Revoke a finding's active exception (it returns to routing)."""
    from handoffkit.workflow import exceptions

    say(
        emit(
            exceptions.revoke(obj.store, finding_id, reason=reason, actor=require_actor(actor)),
            obj.out_format(fmt),
        )
    )


@exception_group.command("list")
@engagement_option
@click.option("--status", type=click.Choice(["active", "revoked", "expired"]), help="Same as --state.")
@list_options
@format_option
@click.pass_obj
def exception_list(obj: Context, engagement: str, status: str | None, fmt: str | None, **filters: Any) -> None:
    """List the exception register (--owner matches the requester or the approver)."""
    from handoffkit.report import listing

    if status:
        filters["states"] = (*filters["states"], status)
    chosen = list_filters(**filters)
    say_list(listing.exception_list(obj.store, engagement, chosen), obj.out_format(fmt))


@cli.command("payload")
@engagement_option
@click.option("--finding", "finding_ids", multiple=True, help="Only these findings (repeatable).")
@click.option("--target", required=True, type=click.Choice(["jira", "servicenow", "github"]))
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "md"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option(
    "--batch",
    is_flag=True,
    help="One ticket per owner team per sprint or quarter for the bands the policy batches (docs/policy.md).",
)
@click.option(
    "--updates", "owed", is_flag=True, help="The updates owed to linked tickets (severity, due date) instead."
)
@actor_option
@click.pass_obj
def payload_cmd(
    obj: Context,
    engagement: str,
    finding_ids: tuple[str, ...],
    target: str,
    fmt: str,
    out: str | None,
    batch: bool,
    owed: bool,
    actor: str,
) -> None:
    """Ticket payloads for findings routed to a ticket with an owner (a person imports them); with --batch,
    one ticket per owner team per batch for the bands the policy batches; with --updates, the updates owed
    to their tickets since the handoff (docs/operations.md)."""
    from handoffkit.tickets import batches, payload, updates

    if batch and owed:
        raise click.UsageError("--batch and --updates are two different handoffs: give one")
    if (batch or owed) and finding_ids:
        what = "--batch takes every finding due a batch" if batch else "--updates lists every update owed"
        raise click.UsageError(f"{what}; it cannot be combined with --finding")
    if batch:
        result = batches.issue(obj.store, engagement, target=target, actor=require_actor(actor), fmt=fmt)
    elif owed:
        result = updates.issue(obj.store, engagement, target=target, actor=require_actor(actor), fmt=fmt)
    else:
        result = payload.issue(
            obj.store,
            engagement,
            target=target,
            actor=require_actor(actor),
            finding_ids=list(finding_ids) or None,
            fmt=fmt,
        )
    if batch and not result["count"]:
        click.echo("nothing to batch: every finding of a batching band is in an open batch", err=True)
    if out:
        Path(out).write_text(result["text"], encoding="utf-8")
        kind = "batch payload" if batch else "update" if owed else "payload"
        click.echo(f"{result['count']} {kind}(s) written to {out}", err=True)
    else:
        say(result["text"])


@cli.command("push")
@engagement_option
@click.option("--target", required=True, type=click.Choice(["jira", "github", "servicenow"]))
@tracker_options
@click.option("--apply", is_flag=True, help="Create and update the tickets (default: print the plan only).")
@actor_option
@format_option
@click.pass_obj
def push_cmd(
    obj: Context,
    engagement: str,
    target: str,
    params_file: str | None,
    url: str | None,
    credentials: str | None,
    apply: bool,
    actor: str,
    fmt: str | None,
) -> None:
    """Create the tickets routed findings call for; update severity, due date and KEV on linked ones."""
    from handoffkit.tickets import connection, push

    settings = connection.load_settings(params_file, target, url=url, credentials=credentials)
    result = push.push(obj.store, engagement, target, settings, actor=require_actor(actor), apply=apply)
    out = obj.out_format(fmt)
    if out == "json":
        say(emit(result, "json"))
        return
    say(emit(result["steps"], out, ["finding_id", "action", "ticket_key", "changes", "done"]))
    if out == "table":
        verb = "done" if apply else "planned (dry run; --apply to write)"
        counts = ", ".join(f"{n} {a}" for a, n in sorted(result["counts"].items())) or "nothing"
        click.echo(f"{counts} {verb}; {result['requests']} request(s)", err=True)


@cli.command("check")
@engagement_option
@click.option("--as-of", help="The instant to evaluate (ISO 8601 or YYYY-MM-DD = end of that day, UTC).")
@format_option
@click.pass_obj
def check_cmd(obj: Context, engagement: str, as_of: str | None, fmt: str | None) -> None:
    """Evaluate the 14-item governance checklist from the record (as of now, or of --as-of)."""
    from handoffkit.report import checklist

    items = [i.as_dict() for i in checklist.evaluate(obj.store, engagement, parse_instant(as_of))]
    out = obj.out_format(fmt)
    say(emit(items, out, None if out == "json" else ["number", "item", "status", "summary"]))


# ------------------------------------------------------------------------------ tickets & closure


@cli.command("link")
@click.argument("finding_id")
@click.argument("ticket_key")
@click.option("--system", required=True, type=click.Choice(["jira", "servicenow", "github"]))
@click.option("--note")
@actor_option
@format_option
@click.pass_obj
def link_cmd(
    obj: Context, finding_id: str, ticket_key: str, system: str, note: str | None, actor: str, fmt: str | None
) -> None:
    """Link a finding to a ticket by hand."""
    from handoffkit.tickets import links

    say(
        emit(
            links.link(obj.store, finding_id, ticket_key, system=system, actor=require_actor(actor), note=note),
            obj.out_format(fmt),
        )
    )


@cli.command("unlink")
@click.argument("finding_id")
@click.argument("ticket_key")
@click.option("--system", required=True, type=click.Choice(["jira", "servicenow", "github"]))
@click.option("--reason", default="unlinked by hand", show_default=True)
@actor_option
@format_option
@click.pass_obj
def unlink_cmd(
    obj: Context, finding_id: str, ticket_key: str, system: str, reason: str, actor: str, fmt: str | None
) -> None:
    """Deactivate a finding-ticket link (the history stays)."""
    from handoffkit.tickets import links

    say(
        emit(
            links.unlink(obj.store, finding_id, ticket_key, system=system, actor=require_actor(actor), reason=reason),
            obj.out_format(fmt),
        )
    )


@cli.command("verify")
@click.argument("finding_id", required=False)
@click.option("--kind", required=True, type=click.Choice(["rescan", "retest", "commit", "attestation"]))
@click.option(
    "--evidence",
    help="A file in the evidence directory, sha256:<hex> or run:<id> + note (retest), repo@sha or URL (commit), "
    "text (attestation).",
)
@click.option(
    "--evidence-dir",
    envvar="HANDOFFKIT_EVIDENCE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="The only directory a retest's evidence file is read from (regular files, size-capped).",
)
@click.option("--approver", help="Attestation: a named approver other than the owner.")
@click.option(
    "--all-absent",
    is_flag=True,
    help="With --kind rescan and --engagement: close every open finding a rescan proved absent.",
)
@click.option("--engagement", "-e", help="Engagement key (with --all-absent).")
@actor_option
@format_option
@click.pass_obj
def verify_cmd(
    obj: Context,
    finding_id: str | None,
    kind: str,
    evidence: str | None,
    evidence_dir: str | None,
    approver: str | None,
    all_absent: bool,
    engagement: str | None,
    actor: str,
    fmt: str | None,
) -> None:
    """Close a finding on verification evidence (a ticket's closure never does)."""
    from handoffkit.workflow import verification
    from handoffkit.workflow.evidence_files import EvidenceFiles

    if all_absent:
        if kind != "rescan" or not engagement or finding_id:
            raise click.UsageError("--all-absent goes with --kind rescan and --engagement, without a finding id")
        result = verification.verify_rescans(obj.store, engagement, actor=require_actor(actor), evidence=evidence)
        say(
            emit(result, obj.out_format(fmt))
            if obj.out_format(fmt) == "json"
            else f"{result['verified']} finding(s) verified closed by rescan evidence"
        )
        return
    if not finding_id:
        raise click.UsageError("give a FINDING_ID (or --all-absent with --kind rescan)")
    say(
        emit(
            verification.verify(
                obj.store,
                finding_id,
                kind=kind,
                evidence=evidence,
                actor=require_actor(actor),
                approver=approver,
                evidence_files=EvidenceFiles.configured(evidence_dir),
            ),
            obj.out_format(fmt),
        )
    )


@cli.command("reconcile")
@engagement_option
@click.option("--as-of", "as_of", help="Reconcile the record as it stood at this instant.")
@actor_option
@format_option
@click.pass_obj
def reconcile_cmd(obj: Context, engagement: str, as_of: str | None, actor: str, fmt: str | None) -> None:
    """Join the record and the ticket exports on the finding id; counts and the ids behind each gap."""
    from handoffkit import reconcile

    result = reconcile.reconcile(
        obj.store, engagement, record=True, actor=require_actor(actor), as_of=parse_instant(as_of)
    )
    out = obj.out_format(fmt)
    if out == "json":
        say(emit(result.as_dict(), "json"))
        return
    say(f"reconciliation of {engagement} as of {result.as_of} (last run {result.last_reconciled})")
    say(
        emit(
            [
                {"category": k, "count": v, "ids": ", ".join(result.ids[k][:8]) + (" …" if v > 8 else "")}
                for k, v in result.counts.items()
            ],
            out,
            ["category", "count", "ids"],
        )
    )


# ---------------------------------------------------------------------------------------- report


@cli.command("notify")
@engagement_option
@click.option(
    "--webhook",
    envvar="HANDOFFKIT_WEBHOOK_URL",
    show_envvar=True,
    help="Post the digest to this Slack or Teams incoming webhook (the URL is a secret: prefer the variable).",
)
@click.option("--webhook-format", type=click.Choice(["slack", "teams"]), default="slack", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the digest as Markdown to this file instead.")
@click.option("--days", type=click.IntRange(min=0), default=7, show_default=True,
              help="Exceptions expiring, and KEV matches flagged, within this many days.")  # fmt: skip
@actor_option
@format_option
@click.pass_obj
def notify_cmd(
    obj: Context,
    engagement: str,
    webhook: str | None,
    webhook_format: str,
    out: str | None,
    days: int,
    actor: str,
    fmt: str | None,
) -> None:
    """Send the digest (SLA breaches and due-soon, overdue reconciliation, expiring exceptions, new KEV)."""
    from handoffkit.reconcile import digest

    if out:
        webhook = None  # --out wins over a webhook set in the environment
    if not webhook and not out:
        raise click.UsageError("give --webhook (or HANDOFFKIT_WEBHOOK_URL) or --out")
    result = digest.notify(
        obj.store, engagement, actor=require_actor(actor), webhook=webhook, webhook_format=webhook_format,
        out=out, days=days,
    )  # fmt: skip
    if obj.out_format(fmt) == "json":
        say(emit({k: v for k, v in result.items() if k != "markdown"}, "json"))
        return
    state = "sent to" if result["sent"] else "unchanged since the last digest to"
    click.echo(f"digest {result['sha256'][:12]} {state} {result['destination']}", err=True)


@cli.command("report")
@click.option(
    "--params",
    "params_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Report parameter file (e.g. params/quarterly.yaml); required unless --portfolio.",
)
@click.option(
    "--portfolio",
    is_flag=True,
    help="Render the leadership page across every engagement instead (no parameter file).",
)
@click.option("--as-of", "as_of", help="Report the record as of this instant (default: the file's as_of, else now).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Output directory (default outputs/<engagement>-<as-of day>/, or outputs/portfolio-<as-of day>/).",
)
@click.option("--pdf", "to_pdf", is_flag=True, help="Also print the pack to one PDF with headless Chromium.")
@actor_option
@format_option
@progress_option
@click.pass_obj
def report_cmd(
    obj: Context,
    params_file: str | None,
    portfolio: bool,
    as_of: str | None,
    out_dir: str | None,
    to_pdf: bool,
    actor: str,
    fmt: str | None,
    progress: bool | None,
) -> None:
    """Execute the report notebooks, render them to offline HTML and seal the evidence pack; with
    --portfolio, one leadership page across every engagement instead."""
    from handoffkit.report import pack

    if portfolio:
        if params_file or to_pdf:
            raise click.UsageError("--portfolio takes no --params or --pdf (it covers every engagement)")
        report_portfolio(obj, as_of, out_dir, actor, fmt)
        return
    if not params_file:
        raise click.UsageError("Missing option '--params' (or --portfolio for the page across engagements)")
    with Activity.choose(None, progress) as activity:
        result = pack.render(
            params_file,
            db=obj.db,
            as_of=parse_instant(as_of),
            out_dir=out_dir,
            actor=require_actor(actor),
            progress=activity,
            to_pdf=to_pdf,
        )
    if obj.out_format(fmt) == "json":
        say(emit(result.as_dict(), "json"))
        return
    say(f"{result.index} (the pack's index: open this first)")
    for page in result.pages:
        say(str(page))
    if result.pdf is not None:
        say(str(result.pdf))
    say(str(result.activity_csv))
    say(str(result.quality_json))
    say(f"{result.manifest} (sha256 {result.manifest_sha256}; log head seq {result.chain_head['seq']})")
    if result.signature:
        say(f"{result.signature} (Ed25519 signature of the manifest)")


def report_portfolio(obj: Context, as_of: str | None, out_dir: str | None, actor: str, fmt: str | None) -> None:
    from handoffkit.report import portfolio

    result = portfolio.render(obj.store, as_of=parse_instant(as_of), out_dir=out_dir, actor=require_actor(actor))
    if obj.out_format(fmt) == "json":
        say(emit(result.as_dict(), "json"))
        return
    count = len(result.engagements)
    say(f"{result.page} (the portfolio as of {result.as_of}: {count} engagement{'s' * (count != 1)})")
    say(str(result.csv))
    say(f"{result.manifest} (sha256 {result.manifest_sha256}; log head seq {result.chain_head['seq']})")


# ------------------------------------------------------------------------------------------ demo


@cli.command()
@click.option("--engagement", "-e", default="DEMO", show_default=True)
@click.option("--size", default=2000, show_default=True, help="Approximate number of findings.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the generated scanner and ticket files are written (default: a temp dir).",
)
@format_option
@click.pass_obj
def demo(obj: Context, engagement: str, size: int, seed: int, workdir: str | None, fmt: str | None) -> None:
    """Build the seeded demo engagement (a realistic programme with every drift pattern)."""
    from handoffkit import demo as demo_mod

    summary = demo_mod.build(
        obj.db, engagement=engagement, size=size, seed=seed, workdir=workdir, progress=lambda m: click.echo(m, err=True)
    )
    out = obj.out_format(fmt)
    if out == "json":
        say(emit(summary, "json"))
        return
    say(
        f"demo engagement {summary['engagement']} in {summary['database']}: {summary['findings']:,} findings, "
        f"{summary['tickets']:,} tickets, {summary['events']:,} activity-log events, "
        f"{summary['period'][0]} to {summary['period'][1]} (inputs in {summary['inputs']})"
    )
    for title in ("by_state", "by_severity", "by_tool"):
        say(emit([{title.removeprefix("by_"): k, "findings": v} for k, v in summary[title].items()], out))
    say(
        emit(
            [{"planted drift": k, "count": len(v), "e.g.": ", ".join(v[:3])} for k, v in summary["planted"].items()],
            out,
        )
    )


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="handoffkit", obj=None)
    finally:
        # The interpreter's last garbage collection walks every object still alive, and Great Expectations
        # leaves a large graph of model classes behind: freezing them skips that walk, while atexit
        # handlers and module teardown still run as usual.
        gc.freeze()


if __name__ == "__main__":
    main()
    sys.exit(0)
