"""The commands operators use on a running engine: staff import, status, the reports, token."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.cli.common import database_option, resolve_database_url, run_or_exit
from engine.errors import RulesctlError

if TYPE_CHECKING:   # for annotations only: the commands import these modules where they use them
    from engine.operations.reports.window import Since


@click.group()
def staff() -> None:
    """Staff data (people are data, not policy): bulk import from a roster file."""


@staff.command("import")
@click.argument("roster", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
@click.option("--dry-run", is_flag=True, help="Check the file and show adds, changes and leavers; write nothing.")
@click.option("--leavers", type=click.Choice(["keep", "offline"]), default="keep", show_default=True,
              help="People in the database but not in the file: leave them as they are, or set them offline.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def staff_import(roster: Path, database_url: str | None, dry_run: bool, leavers: str, fmt: str) -> None:
    """Import staff from a roster CSV in one transaction (set-based: 50,000 rows in seconds).

    \b
    Header line, then one person per line. Columns:
      id            the person's user id (a UUID; the JWT subject)
      unit          a unit id of rules/units.yaml
      full_name     one line of text
      role          staff, supervisor, unit_head or admin (empty: staff)
      skills        skill[:level] separated by ';', e.g. skill-arabic:expert;skill-sql
                    (a level by name or rank; without one, the lowest level)
      wip_limit     a whole number (empty: the unit's default)
      availability  available, busy, on_leave or offline (empty: unchanged)
    id, unit and full_name are required; a column left out of the header keeps
    everyone's current value. Every bad line is reported as file:line: field: problem,
    and then nothing is written. Load counters are never touched; people put on leave
    get the leave policy. Exit codes: 0 imported (or dry run), 1 problems or error.
    """
    from engine.operations.roster import RosterError
    from engine.operations.staff_import import as_text, import_staff
    url = resolve_database_url(database_url)
    tty = sys.stderr.isatty()

    def progress(stage: str, rows: int, seconds: float) -> None:
        if tty:
            click.echo(f"\r\033[K  {stage}: {rows:,} rows in {seconds:.1f} s ({rows / max(seconds, 1e-6):,.0f} rows/s)",
                       err=True, nl=stage == "done")

    try:
        result = import_staff(url, roster, dry_run=dry_run, leavers=leavers, progress=progress,
                              shown_path=str(roster))
    except RosterError as exc:
        if tty:
            click.echo("", err=True)
        for problem in exc.problems[:50]:
            click.echo(problem.render(exc.path), err=True)
        if len(exc.problems) > 50:
            click.echo(f"… and {len(exc.problems) - 50} more", err=True)
        click.echo(f"{len(exc.problems)} problem(s) in {exc.path}; nothing was written", err=True)
        sys.exit(1)
    except RulesctlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result.as_dict(), indent=2) if fmt == "json" else as_text(result))


@click.command()
@database_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--watch", type=click.FloatRange(min=1), default=None, is_flag=False, flag_value=5.0, metavar="[SECONDS]",
              help="Refresh every SECONDS (default 5) until Ctrl-C; clears the screen on a terminal.")
def status(database_url: str | None, fmt: str, watch: float | None) -> None:
    """One screen for operators, read-only: pg_cron jobs (last run, duration, failures),
    per unit staff, load / capacity, queue depth and oldest queued item, SLA breaches in the
    last 24 h, work at risk and overdue, escalations, drift and the last apply."""
    import time

    from engine.operations.status import read_status
    from engine.operations.status_text import as_text
    url = resolve_database_url(database_url)
    try:
        while True:
            result = run_or_exit(lambda: read_status(url))
            if watch and sys.stdout.isatty():
                click.clear()
            click.echo(json.dumps(result.as_dict(), indent=2) if fmt == "json" else as_text(result))
            if not watch:
                return
            time.sleep(watch)
            if not sys.stdout.isatty():
                click.echo("")
    except KeyboardInterrupt:            # how --watch ends
        return


@click.group()
def report() -> None:
    """Reports from the live database, read in one read-only transaction.

    \b
      rulesctl report sla --since 30d                          attainment and breaches
      rulesctl report capacity --since 30d --format html --out capacity.html
    """


def _since(ctx: click.Context, param: click.Parameter, value: str) -> Since:
    from engine.operations.reports import ReportError, parse_since
    try:
        return parse_since(value)
    except ReportError as exc:
        raise click.UsageError(str(exc), ctx) from None


def _report_options(function: Callable[..., None]) -> Callable[..., None]:
    function = click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                            help="Write the report to this file instead of standard output.")(function)
    function = click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text",
                            show_default=True, help="html: one self-contained page with charts.")(function)
    function = click.option("--since", default="30d", show_default=True, callback=_since, metavar="WHEN",
                            help="Start of the report: a duration back from now (30d, 12h, 90m, 2w) or a date "
                                 "(2026-11-01, UTC) or timestamp (2026-11-01T08:00+03:00).")(function)
    return database_option(function)


def _write_report(kind: str, database_url: str | None, since: Since, fmt: str, out_file: Path | None) -> None:
    import time

    from engine.operations.reports import build_report
    url = resolve_database_url(database_url)
    started = time.monotonic()
    if sys.stderr.isatty():      # a month of a busy engine takes seconds: say what is going on
        click.echo(f"reading the {kind} report (one read-only snapshot) ...", err=True)
    text = run_or_exit(lambda: build_report(url, kind, since, fmt))
    if sys.stderr.isatty():
        click.echo(f"read in {time.monotonic() - started:.1f} s", err=True)
    if out_file is None:
        click.echo(text, nl=False)
        return
    try:
        out_file.write_text(text)
    except OSError as exc:
        click.echo(f"error: --out {out_file}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(f"wrote {out_file}", err=True)


@report.command("sla")
@_report_options
def report_sla(database_url: str | None, since: Since, fmt: str, out_file: Path | None) -> None:
    """SLA attainment and breaches per unit, work item type and priority.

    Resolution: work completed in the window (met or late, by the engine's own SLA status at
    completion) and work still open at its end (past the deadline, at risk, on track). Response
    too where the engine keeps the response clock. Attainment = met / (met + breached).
    """
    _write_report("sla", database_url, since, fmt, out_file)


@report.command("capacity")
@_report_options
def report_capacity(database_url: str | None, since: Since, fmt: str, out_file: Path | None) -> None:
    """Utilisation per unit per day, from the daily capacity snapshots."""
    _write_report("capacity", database_url, since, fmt, out_file)


@click.command()
@click.option("--role", default="authenticated", show_default=True, help="anon, authenticated or service_role.")
@click.option("--sub", metavar="UUID", help="The staff id (what current_user_id() reads); none for anon and "
                                            "service_role keys.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: seconds, or like 90s, 30m, 1h, 7d.")
@click.option("--secret-env", metavar="VAR", help="Read the secret from this environment variable instead of "
                                                  "$RULESCTL_JWT_SECRET, then $SUPABASE_JWT_SECRET (as serve does).")
def token(role: str, sub: str | None, ttl: str, secret_env: str | None) -> None:
    """Print an access token (HS256 JWT, Supabase's claim shape) for `rulesctl serve`.

    Only the token is printed, so `curl -H "Authorization: Bearer $(rulesctl token --sub ID)"`
    works. A bad role, uuid or lifetime, or no secret, exits 2.
    """
    from engine.api.token import find_secret, mint_token, parse_ttl
    try:
        click.echo(mint_token(role, sub, parse_ttl(ttl), find_secret(secret_env)))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
