"""The ``handoffkit`` command: a thin layer over the library.

Each command opens the store, calls one library function and prints the result. Checks on option
combinations live here; domain rules live in the library. Every library error becomes one line on
stderr and a non-zero exit (``--verbose`` shows the traceback).
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import click

from handoffkit import __version__
from handoffkit.errors import HandoffkitError
from handoffkit.identity import require_actor
from handoffkit.output import emit
from handoffkit.store import Store

OUTPUT_FORMATS = ("table", "json", "csv")


@dataclass
class Context:
    db: str | None
    fmt: str | None
    verbose: bool
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db)
        return self._store

    def out_format(self, *candidates: str | None) -> str:
        for c in (*candidates, self.fmt):
            if c in OUTPUT_FORMATS:
                return c
        return "table"


class _Group(click.Group):
    """Maps library errors to one line and an exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HandoffkitError as exc:
            obj = ctx.find_object(Context)
            if obj is not None and obj.verbose:
                traceback.print_exc()
            click.echo(f"handoffkit: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def actor_option(fn):
    return click.option("--actor", envvar="HANDOFFKIT_ACTOR", default="", show_envvar=True,
                        help="The one named person taking this action (recorded in the activity log).")(fn)


def format_option(fn):
    return click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None,
                        help="Output format (default: table).")(fn)


def engagement_option(fn):
    return click.option("--engagement", "-e", required=True, help="Engagement key.")(fn)


def parse_instant(value: str | None) -> datetime | None:
    """``2026-09-30`` (end of that day, UTC) or any ISO 8601 instant; naive means UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.max.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 instant") from exc
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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="HANDOFFKIT_DB", show_envvar=True,
              help="Database URL (default sqlite:///handoffkit.db; postgresql+psycopg://… for PostgreSQL).")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="Output format for every command that prints results.")
@click.option("--verbose", "-v", is_flag=True, help="Show the traceback of an error.")
@click.version_option(__version__, prog_name="handoffkit")
@click.pass_context
def cli(ctx: click.Context, db: str | None, fmt: str | None, verbose: bool) -> None:
    """Keep the security finding record canonical while remediation moves into tickets."""
    ctx.obj = Context(db, fmt, verbose)


# ------------------------------------------------------------------------------- engagements


@cli.command()
@engagement_option
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              help="Handoff policy YAML (see params/policy.yaml).")
@click.option("--owners", "owners_path", type=click.Path(dir_okay=False),
              help="Owners map CSV (default: the policy's ownership.owners_file).")
@click.option("--name", help="Human-readable engagement name.")
@actor_option
@format_option
@click.pass_obj
def init(obj: Context, engagement: str, policy_path: str, owners_path: str | None, name: str | None,
         actor: str, fmt: str | None) -> None:
    """Create an engagement, or store a changed policy / owners map as a new version."""
    from handoffkit import engagements

    result = engagements.init(obj.store, engagement, policy_path, actor=require_actor(actor), name=name,
                              owners_path=owners_path)
    say(emit(result.as_dict(), obj.out_format(fmt)))


@cli.command("engagements")
@format_option
@click.pass_obj
def engagements_cmd(obj: Context, fmt: str | None) -> None:
    """List engagements."""
    from handoffkit import engagements

    say(emit(engagements.list_engagements(obj.store), obj.out_format(fmt),
             ["key", "name", "policy_version", "findings"]))


@cli.command("findings")
@engagement_option
@click.option("--as-of", "as_of", help="Reconstruct the record from the activity log as of this instant.")
@format_option
@click.pass_obj
def findings_cmd(obj: Context, engagement: str, as_of: str | None, fmt: str | None) -> None:
    """List findings (current state, or rebuilt from the log as of a date)."""
    from handoffkit import findings

    when = parse_instant(as_of)
    df = findings.as_of(obj.store, engagement, when) if when else findings.current(obj.store, engagement)
    say(emit(df, obj.out_format(fmt), [*findings.PUBLIC, "ticket_keys"]))


# ------------------------------------------------------------------------------------- the log


@cli.group("log")
def log_group() -> None:
    """The activity log: verify the hash chain, export it."""


@log_group.command("verify")
@click.option("--anchor", type=click.Path(exists=True, dir_okay=False),
              help="JSON holding an earlier head seq + row_hash (e.g. an evidence pack's manifest.json).")
@actor_option
@format_option
@click.pass_obj
def log_verify(obj: Context, anchor: str | None, actor: str, fmt: str | None) -> None:
    """Walk the hash chain; exit non-zero naming the first bad seq."""
    from handoffkit import events

    result = events.verify_logged(obj.store, require_actor(actor), anchor)
    say(emit(result.as_dict(), obj.out_format(fmt)) if obj.out_format(fmt) == "json" else
        f"ok: {result.checked} events verified, head seq {result.head_seq} {result.head_hash}"
        + (f"; anchor seq {result.anchor['seq']} matches" if result.anchor else ""))


# ------------------------------------------------------------------------------------------ demo


@cli.command()
@click.option("--engagement", "-e", default="DEMO", show_default=True)
@click.option("--size", default=2000, show_default=True, help="Approximate number of findings.")
@click.option("--seed", default=7, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the generated scanner and ticket files are written (default: a temp dir).")
@format_option
@click.pass_obj
def demo(obj: Context, engagement: str, size: int, seed: int, workdir: str | None, fmt: str | None) -> None:
    """Build the seeded demo engagement (a realistic programme with every drift pattern)."""
    from handoffkit import demo as demo_mod

    summary = demo_mod.build(obj.db, engagement=engagement, size=size, seed=seed, workdir=workdir,
                             progress=lambda m: click.echo(m, err=True))
    say(emit(summary, obj.out_format(fmt)))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="handoffkit", obj=None)


if __name__ == "__main__":
    main()
    sys.exit(0)
