"""The command line. It parses options, calls one library function per command, prints the
result and maps errors to exit codes: 0 success, 1 error (PolicyError, RenderError, ...).
Nothing below this module calls sys.exit."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

from engine import __version__
from engine.errors import ApplyRefused, HazardsBlocked, PolicyError, RulesctlError
from engine.migrate.hazards import Hazard

if TYPE_CHECKING:   # for annotations only: the commands import these modules where they use them
    from engine.compiler.objects import SqlObject
    from engine.migrate.model import Step
    from engine.migrate.plan import Plan
    from engine.operations.reports.window import Since
    from engine.policy.model import Policy
    from engine.policy.problems import Problem

T = TypeVar("T")

DEFAULT_LOCAL_DIR = Path(".rulesctl")

rules_option = click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=Path("rules"),
                            show_default=True, help="Directory holding the policy YAML files.")
database_option = click.option("--database-url", envvar="DATABASE_URL", default=None, metavar="URL",
                               help="PostgreSQL URL (falls back to $DATABASE_URL; without either, the local "
                                    "embedded cluster in the project's .rulesctl/ is used and started if needed; "
                                    "outside a project directory rulesctl refuses).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rulesctl")
def cli() -> None:
    """rulesctl: the Assignment Engine & SLA, as policy as code.

    Policy owners edit YAML in rules/; rulesctl validates it, renders it to SQL in generated/
    and installs it into PostgreSQL, where assignment, queues, SLA clocks and escalation run.

    \b
    Typical flow:
      rulesctl validate          check rules/ (errors as file:line:col)
      rulesctl render            write generated/ (commit it; CI runs render --check)
      rulesctl plan              what would change in the database, and why
      rulesctl apply             make it so (local cluster by default)
    """


@cli.command()
@rules_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-errors", type=int, default=50, show_default=True, help="Text output shows at most this many.")
def validate(rules_dir: Path, fmt: str, max_errors: int) -> None:
    """Check the policy: JSON Schema plus semantic checks, every problem at once.

    Exits 0 when the policy is valid, 1 otherwise.
    """
    from engine.policy.validate import validate_directory
    try:
        policy = validate_directory(rules_dir)
    except PolicyError as exc:
        if fmt == "json":
            click.echo(json.dumps({"valid": False, "problems": [p.as_dict() for p in exc.problems]}, indent=2))
        else:
            _echo_problems(exc.problems, max_errors)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "problems": [], "policy_hash": policy.policy_hash}, indent=2))
    else:
        click.echo(f"{rules_dir}: valid — {len(policy.units)} units, {len(policy.skills)} skills, "
                   f"{len(policy.calendars)} calendars, {len(policy.sla_targets)} SLA targets, "
                   f"{len(policy.rules)} assignment rules, {len(policy.chains)} escalation chains, "
                   f"{len(policy.jobs)} jobs")


def _echo_problems(problems: Sequence[Problem], max_errors: int) -> None:
    for problem in problems[:max_errors]:
        click.echo(str(problem), err=True)
    if len(problems) > max_errors:
        click.echo(f"… and {len(problems) - max_errors} more", err=True)
    click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)


@cli.command()
@rules_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("generated"), show_default=True,
              help="Where the rendered SQL goes.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 and name every stale file if generated/ "
                                             "differs from a fresh render.")
def render(rules_dir: Path, out_dir: Path, check: bool) -> None:
    """Render the policy into SQL files under generated/ (deterministic: same input, same bytes)."""
    from engine.compiler.generate import generated_files, stale_files, write_generated
    _, objects = _build_or_exit(rules_dir, parse_check=True)
    files = generated_files(objects)
    if check:
        stale = stale_files(files, out_dir)
        if stale:
            for path in stale:
                state = "missing" if path in files and not (out_dir / path).exists() else (
                    "no longer produced" if path not in files else "stale")
                click.echo(f"{out_dir / path}: {state}", err=True)
            click.echo(f"{len(stale)} file(s) in {out_dir}/ do not match rules/ and templates/; run `rulesctl render`",
                       err=True)
            sys.exit(1)
        click.echo(f"{out_dir}/ is up to date ({len(files)} files, {len(objects)} objects)")
        return
    changed = write_generated(files, out_dir)
    click.echo(f"rendered {len(objects)} objects into {len(files)} files under {out_dir}/; "
               f"{len(changed)} changed" + (": " + ", ".join(changed) if 0 < len(changed) <= 10 else ""))


scratch_option = click.option("--scratch-url", metavar="URL", default=None,
                              help="Create the simulation's scratch databases on this server (the role needs "
                                   "CREATEDB) instead of a private throwaway PostgreSQL cluster in a temp "
                                   "directory; for machines without PostgreSQL's server binaries.")

hazard_option = click.option("--allow-hazard", "allowed", multiple=True, metavar="NAME",
                             type=click.Choice([h.slug for h in Hazard]),
                             help="Let steps with this hazard run (repeatable): "
                                  + ", ".join(h.slug for h in Hazard) + ".")


@cli.command()
@rules_option
@database_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True,
              help="markdown suits a pull-request comment.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Save the plan (with a fingerprint of the "
              "live state) for `rulesctl apply PLAN_FILE`.")
@click.option("--show-sql", is_flag=True, help="Text format: print each step's SQL too.")
@click.option("--detect-drift", is_flag=True, hidden=True, help="Old spelling of `rulesctl drift`.")
@click.option("--impact-days", type=click.IntRange(min=1), default=30, show_default=True,
              help="Impact: re-route the arrivals of this many past days under the new rules.")
@click.option("--simulate", "simulate_days", type=click.IntRange(1, 366), default=None, metavar="DAYS",
              help="Impact: also replay DAYS synthetic days under the live policy and the new one "
                   "(`rulesctl simulate`, in scratch databases) and show the figures.")
@scratch_option
@hazard_option
def plan(rules_dir: Path, database_url: str | None, fmt: str, out_file: Path | None, show_sql: bool,
         detect_drift: bool, impact_days: int, simulate_days: int | None, scratch_url: str | None,
         allowed: tuple[str, ...]) -> None:
    """Show what apply would change in the database, and why.

    \b
    Exit codes: 0 in sync, 2 changes pending, 3 blocked by a hazard not
    allowed (--allow-hazard), 1 error.
    """
    from engine.migrate.plan import build_plan
    from engine.migrate.report import as_json, as_markdown, as_text
    from engine.project import DEFAULT_TEMPLATES
    if detect_drift:
        if out_file:
            click.echo("error: --out saves a whole plan for apply; --detect-drift shows only part of one", err=True)
            sys.exit(1)
        _report_drift(rules_dir, database_url, fmt)
    policy, objects = _build_or_exit(rules_dir)
    url = _database_url(database_url, rules_dir)
    result = _run_or_exit(lambda: build_plan(url, policy, objects, DEFAULT_TEMPLATES, impact_days=impact_days))
    if out_file:
        out_file.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
        click.echo(f"plan saved to {out_file}", err=True)
    simulated = None
    if simulate_days:
        from engine.simulate.live import simulate_against_live
        server = _scratch_server(scratch_url, lambda: url)
        simulated = _run_or_exit(lambda: simulate_against_live(url, rules_dir, policy, objects, simulate_days,
                                                               scratch_url=server))
    render = {"text": lambda p: as_text(p, show_sql, simulation=simulated), "json": lambda p: as_json(p, simulated),
              "markdown": lambda p: as_markdown(p, simulated)}[fmt]
    click.echo(render(result))
    if result.blocked_by({Hazard.from_slug(a) for a in allowed}):
        sys.exit(3)
    sys.exit(2 if result.steps else 0)


@cli.command()
@rules_option
@database_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
def drift(rules_dir: Path, database_url: str | None, fmt: str) -> None:
    """Report objects changed by hand since rulesctl applied them (exit 2 when any, 0 when none)."""
    _report_drift(rules_dir, database_url, fmt)


def _report_drift(rules_dir: Path, database_url: str | None, fmt: str) -> NoReturn:
    """`drift`, and its old spelling `plan --detect-drift`: the plan's steps that undo drift."""
    from engine.migrate.plan import build_plan
    from engine.migrate.report import as_json, as_markdown, as_text
    from engine.project import DEFAULT_TEMPLATES
    policy, objects = _build_or_exit(rules_dir)
    url = _database_url(database_url, rules_dir)
    result = _run_or_exit(lambda: build_plan(url, policy, objects, DEFAULT_TEMPLATES))
    result.steps = [step for step in result.steps if step.drift]
    if fmt == "json":
        click.echo(as_json(result))
    elif fmt == "markdown":
        click.echo(as_markdown(result))
    else:
        click.echo(as_text(result) if result.steps else "No drift: every managed object is as rulesctl left it.")
    sys.exit(2 if result.steps else 0)


@cli.command()
@click.argument("plan_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@rules_option
@database_option
@hazard_option
@click.option("--auto-approve", is_flag=True, help="Do not ask before applying. Without a terminal to ask on, "
              "apply refuses unless this is given or PLAN_FILE is (a saved plan never asks: it was reviewed).")
@click.option("--lock-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for another apply to finish.")
@click.option("--statement-timeout", default="5min", show_default=True, help="Longest a single step may run.")
def apply(plan_file: Path | None, rules_dir: Path, database_url: str | None, allowed: tuple[str, ...],
          auto_approve: bool, lock_timeout: float, statement_timeout: str) -> None:
    """Move the database to the policy: plan under a lock, then run the steps.

    Without PLAN_FILE it shows the plan and asks at the terminal; with no terminal (CI) it
    refuses unless --auto-approve is given. With PLAN_FILE (from `plan --out`) it applies exactly
    that plan without asking, and refuses if the file was edited, if the database changed since,
    or if its steps are not what rulesctl plans now from rules/ (plan and apply from the same
    policy). Every attempt is recorded in rulesctl.applies. Exit codes: 0 applied or already in
    sync, 3 blocked by a hazard not allowed, 1 error or refused.
    """
    from engine.migrate.apply import apply as run_apply
    from engine.migrate.plan import Plan
    from engine.migrate.report import as_text
    from engine.project import DEFAULT_TEMPLATES
    policy, objects = _build_or_exit(rules_dir)
    url = _database_url(database_url, rules_dir)
    saved = Plan.from_dict(json.loads(plan_file.read_text())) if plan_file else None

    def confirm(pending: Plan) -> bool:
        click.echo(as_text(pending))
        return click.confirm("Apply these steps?", default=False)

    def progress(step: int, total: int, item: Step) -> None:
        if step == 1 or step == total or step % 25 == 0:
            click.echo(f"  [{step:3d}/{total}] {item.key}", err=True)

    def no_terminal(pending: Plan) -> bool:
        raise ApplyRefused(NO_TERMINAL)

    # Like Terraform: a saved plan was reviewed and --auto-approve says yes; otherwise ask, and
    # with no one to ask (stdin is not a terminal: CI, a pipe) refuse rather than apply unasked.
    ask = None if auto_approve or saved is not None else confirm if sys.stdin.isatty() else no_terminal
    try:
        result = run_apply(url, objects, policy, DEFAULT_TEMPLATES, saved_plan=saved,
                           allowed={Hazard.from_slug(a) for a in allowed}, rules_dir=rules_dir,
                           lock_timeout_s=lock_timeout, statement_timeout=statement_timeout, confirm=ask,
                           progress=progress)
    except HazardsBlocked as exc:
        click.echo(f"apply blocked: {exc}", err=True)
        sys.exit(3)
    except ApplyRefused as exc:
        click.echo(f"apply refused: {exc}", err=True)
        sys.exit(1)
    except RulesctlError as exc:
        click.echo(f"apply failed: {exc}", err=True)
        sys.exit(1)
    if result.outcome == "no_change":
        click.echo(f"no changes: {result.message} (ledger #{result.ledger_id})")
    else:
        click.echo(f"applied: {result.message} in {result.seconds:.2f}s (ledger #{result.ledger_id})")
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.plan.foreign:
        click.echo(f"not managed by rulesctl (left alone): {', '.join(result.plan.foreign)}")


@cli.command()
@database_option
@click.option("--limit", type=int, default=20, show_default=True)
def history(database_url: str | None, limit: int) -> None:
    """List the ledger: every apply with its outcome, newest first."""
    from engine.migrate.ledger import describe_git, read_history
    rows = _run_or_exit(lambda: read_history(_database_url(database_url), limit))
    if not rows:
        click.echo("no applies recorded")
    for row in rows:
        click.echo(f"#{row['id']:<4} {row['finished_at']:%Y-%m-%d %H:%M:%S} {row['outcome']:<9} "
                   f"{row['statement_count']:>4} steps  policy {row['policy_hash'][:12]}  "
                   f"{describe_git(row['git_commit'], row['git_dirty']):<22} by {row['applied_by']}"
                   f"/{row['os_user']}  {row['message'][:90]}")


@cli.command()
@click.argument("apply_id", type=int)
@database_option
def show(apply_id: int, database_url: str | None) -> None:
    """Print what one apply ran: its outcome, message and every statement."""
    from engine.migrate.ledger import describe_git, read_apply
    row = _run_or_exit(lambda: read_apply(_database_url(database_url), apply_id))
    if row is None:
        click.echo(f"error: no apply #{apply_id} in the ledger", err=True)
        sys.exit(1)
    click.echo(f"apply #{row['id']}: {row['outcome']} at {row['finished_at']:%Y-%m-%d %H:%M:%S %Z} by "
               f"{row['applied_by']} ({row['os_user']}@{row['client_host']}), tool {row['tool_version']}, "
               f"policy {row['policy_hash'][:12]}, {describe_git(row['git_commit'], row['git_dirty'], 40)}"
               + (" (uncommitted changes in the rules directory: the commit is not what was applied)"
                  if row["git_dirty"] else ""))
    click.echo(row["message"])
    for number, statement in enumerate(row["statements"], start=1):
        click.echo(f"\n-- {number}. {statement.get('action', '')} {statement.get('step') or statement.get('object')}")
        click.echo(statement["sql"].rstrip())


@cli.group()
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
    url = _database_url(database_url)
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


@cli.command()
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
    url = _database_url(database_url)
    try:
        while True:
            result = _run_or_exit(lambda: read_status(url))
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


local_dir_option = click.option("--dir", "base_dir", type=click.Path(path_type=Path), default=None,
                                help="The cluster's directory [default: .rulesctl/ in the project directory].")


@cli.group()
def local() -> None:
    """The embedded default database: a throwaway PostgreSQL cluster under .rulesctl/."""


@local.command("start")
@local_dir_option
def local_start(base_dir: Path | None) -> None:
    """Start the local cluster (creating it on first use); the last line printed is its URL."""
    from engine.database.local import LocalCluster
    cluster = LocalCluster((base_dir or local_dir()).resolve())
    url = _run_or_exit(cluster.start)
    status = cluster.status()
    click.echo(f"local PostgreSQL {status.server_version} running in {status.data_dir} "
               f"(pg_cron {'preloaded' if status.pg_cron_available else 'not installed'})", err=True)
    click.echo(url)


@local.command("stop")
@local_dir_option
def local_stop(base_dir: Path | None) -> None:
    """Stop the local cluster (its data stays for the next start)."""
    from engine.database.local import LocalCluster
    _run_or_exit(LocalCluster((base_dir or local_dir()).resolve()).stop)
    click.echo("local cluster stopped")


@local.command("status")
@local_dir_option
def local_status(base_dir: Path | None) -> None:
    """Say whether the local cluster runs, where, and its URL. Exits 3 when it is not running."""
    from engine.database.local import LocalCluster
    status = _run_or_exit(LocalCluster((base_dir or local_dir()).resolve()).status)
    click.echo(f"{'running' if status.running else 'stopped'}: data {status.data_dir}, port {status.port}, "
               f"pg_cron {'available' if status.pg_cron_available else 'not installed'}")
    if status.running:
        click.echo(status.url)
    else:
        sys.exit(3)


def _cors_origins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from engine.api.app import check_origin
    try:
        return tuple(check_origin(origin) for origin in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--jwt-secret", envvar=["RULESCTL_JWT_SECRET", "SUPABASE_JWT_SECRET"], metavar="SECRET",
              help="HS256 secret the bearer tokens are signed with (falls back to $RULESCTL_JWT_SECRET, "
                   "then $SUPABASE_JWT_SECRET).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN", callback=_cors_origins,
              help="A browser origin allowed to call the API, e.g. https://app.example.org (repeatable; "
                   "default none: no CORS).")
def serve(database_url: str | None, host: str, port: int, jwt_secret: str | None, cors_origins: tuple[str, ...]
          ) -> None:
    """Serve the HTTP API (/functions/v1/..., /openapi.json) until SIGINT or SIGTERM.

    Each request runs as the token's role with its claims set, so the database's grants and
    row level security decide. Logs one line per request; exits 0 after a clean shutdown.
    """
    if not jwt_secret:
        click.echo("error: no JWT secret: pass --jwt-secret or set RULESCTL_JWT_SECRET (or SUPABASE_JWT_SECRET)",
                   err=True)
        sys.exit(1)
    from engine.api import serve as run_server
    _run_or_exit(lambda: run_server(_database_url(database_url), jwt_secret, host=host, port=port,
                                    cors_origins=cors_origins))


@cli.group()
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
    url = _database_url(database_url)
    started = time.monotonic()
    if sys.stderr.isatty():      # a month of a busy engine takes seconds: say what is going on
        click.echo(f"reading the {kind} report (one read-only snapshot) ...", err=True)
    text = _run_or_exit(lambda: build_report(url, kind, since, fmt))
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


@cli.command()
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


@cli.command()
@rules_option
@click.option("--baseline", "baseline_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The policy to compare with (e.g. a checkout of the main branch's rules/).")
@click.option("--baseline-live", is_flag=True, help="Compare with the policy --database-url runs (its ledger's "
              "last apply, read back from that git commit).")
@click.option("--workload", "workload_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Arrivals as CSV or JSONL: arrived_at, work_item_id, work_item_type, priority, "
                   "required_skills, target_unit_id?, handling_minutes?.")
@click.option("--synthetic", is_flag=True, help="Arrivals generated from the policy (needs --days).")
@click.option("--from-history", "history", metavar="DAYS", help="The last DAYS days (e.g. 30d) of arrivals, "
              "handling times and staff of --database-url (read-only).")
@click.option("--days", type=click.IntRange(1, 366), help="Synthetic: how many days of arrivals; with --workload: "
              "how long to replay (default: until the last arrival's handling time has passed).")
@click.option("--per-day", type=click.IntRange(1), default=3300, show_default=True,
              help="Synthetic: arrivals per day for the whole organisation.")
@click.option("--staff", "staff_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="People as CSV: id, unit, role, skills, wip_limit, leave (default: sized for the load).")
@click.option("--seed", type=int, default=11, show_default=True, help="Same inputs and seed, same figures.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "html"]), default="text",
              show_default=True, help="markdown suits a pull-request comment; html is one self-contained page.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option("--keep", is_flag=True, help="Keep the scratch databases (rulesctl_sim_*) to look at afterwards; "
              "with the private cluster, keep it running and print its URL and how to stop it.")
@scratch_option
@database_option
def simulate(rules_dir: Path, baseline_dir: Path | None, baseline_live: bool, workload_file: Path | None,
             synthetic: bool, history: str | None, days: int | None, per_day: int, staff_file: Path | None,
             seed: int, fmt: str, out_file: Path | None, keep: bool, scratch_url: str | None,
             database_url: str | None) -> None:
    """Replay a workload under the proposed policy (--rules) and a baseline on the real engine.

    Each policy is installed by `rulesctl apply` into its own scratch database
    (rulesctl_sim_*) in a private throwaway PostgreSQL cluster, started in a temp directory
    and removed at the end (--scratch-url URL puts them on that server instead). The
    database of --database-url is only read (--from-history, --baseline-live). Arrivals
    call auto_assign, items complete after their handling time, the SLA sweep runs on its
    jobs.yaml schedule, all in virtual time. Reports breaches, waits, queues and
    utilisation side by side.
    """
    import functools
    import tempfile

    from engine.database.connect import redact
    from engine.simulate.live import live_rules
    from engine.simulate.progress import TerminalProgress
    from engine.simulate.report import render
    from engine.simulate.run import PolicyUnderTest, WorkloadSpec
    from engine.simulate.run import simulate as run_simulation
    if baseline_dir and baseline_live:
        click.echo("error: give one baseline: --baseline DIR or --baseline-live", err=True)
        sys.exit(1)
    if [workload_file is not None, synthetic, history is not None].count(True) != 1:
        click.echo("error: give one workload: --workload FILE, --synthetic --days N or --from-history DAYS", err=True)
        sys.exit(1)
    history_days = int(history.removesuffix("d")) if history and history.removesuffix("d").isdigit() else None
    if history is not None and not history_days:
        click.echo(f"error: --from-history: a number of days such as 30d, not {history!r}", err=True)
        sys.exit(1)
    if synthetic and days is None:
        click.echo("error: --synthetic needs --days N (how many days of arrivals to generate)", err=True)
        sys.exit(1)
    # Only read, and only resolved when needed: a synthetic run starts no project cluster.
    url = functools.cache(lambda: _database_url(database_url, rules_dir))
    live_dir = tempfile.TemporaryDirectory(prefix="rulesctl-live-")
    if baseline_live:
        baseline_dir = _run_or_exit(lambda: live_rules(url(), rules_dir, Path(live_dir.name)))
    subjects = [PolicyUnderTest(label, path, *_build_or_exit(path))
                for label, path in (("baseline", baseline_dir), ("proposed", rules_dir)) if path is not None]
    live_dir.cleanup()
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    spec = WorkloadSpec(workload_file, days, per_day, staff_file=staff_file,
                        history_url=url() if history_days else None, history_days=history_days)
    server = _scratch_server(scratch_url, url)
    if progress:
        click.echo("scratch databases: " + (f"on {redact(server)}" if server else "a throwaway PostgreSQL cluster "
                   "in a temp directory, removed at the end"), err=True)
    result = _run_or_exit(lambda: run_simulation(server, subjects, spec, seed, keep=keep, progress=progress))
    if progress:
        progress.done()
    if result.cluster:
        click.echo(f"kept the scratch cluster: {result.cluster.url} (data directory {result.cluster.data_dir}); "
                   f"stop it with `rulesctl local stop --dir {result.cluster.base_dir}`, then delete that "
                   "directory", err=True)
    for label, kept in result.databases.items():     # the private cluster's URLs have no password
        click.echo(f"kept the {label} scratch database: {kept if result.cluster else redact(kept)}", err=True)
    report = render(result, fmt)
    if out_file:
        out_file.write_text(report)
        click.echo(f"report written to {out_file}", err=True)
    else:
        click.echo(report, nl=False)


def _scratch_server(scratch_url: str | None, database_url: Callable[[], str]) -> str | None:
    """Where simulate's scratch databases go: --scratch-url's server; else None (a private
    throwaway cluster) when this machine has PostgreSQL's server binaries; else, with a note, the
    server of the database rulesctl reads (the behaviour before the private cluster)."""
    from engine.simulate.scratch import NO_SERVER_BINARIES, private_cluster_possible
    if scratch_url:
        return scratch_url
    if private_cluster_possible():
        return None
    click.echo(f"note: {NO_SERVER_BINARIES}", err=True)
    return database_url()


def _build_or_exit(rules_dir: Path, parse_check: bool = False) -> tuple[Policy, list[SqlObject]]:
    """The policy and its objects. The sqlglot parse check is for `render`, which has no
    database; plan, drift and apply install every object into a scratch schema, and
    PostgreSQL's own parser is the stricter check."""
    from engine.project import build
    try:
        return build(rules_dir, parse_check=parse_check)
    except PolicyError as exc:
        _echo_problems(exc.problems, 50)
        click.echo("the policy is invalid; fix it first (`rulesctl validate`)", err=True)
        sys.exit(1)
    except RulesctlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


NO_TERMINAL = ("no terminal to confirm on: pass --auto-approve, or apply a saved plan file "
               "(`rulesctl plan --out plan.json`, then `rulesctl apply plan.json`); nothing was changed")

NO_DATABASE = ("no database: pass --database-url URL or set DATABASE_URL. Without one rulesctl uses a local "
               "cluster in the project's .rulesctl/, and {where} is not a project directory (one holding rules/ or "
               "pyproject.toml); `rulesctl local start --dir DIR` starts one anywhere you choose")


def project_dir(rules_dir: Path | None = None) -> Path | None:
    """Where the project lives: the directory holding the policy folder in use, or the working
    directory when it holds rules/ or pyproject.toml. None anywhere else (/, $HOME, /tmp ...)."""
    if rules_dir is not None and rules_dir.is_dir():
        return rules_dir.resolve().parent
    cwd = Path.cwd()
    if (cwd / "rules").is_dir() or (cwd / "pyproject.toml").is_file():
        return cwd
    return None


def local_dir(rules_dir: Path | None = None) -> Path:
    """The local cluster's directory: .rulesctl/ in the project, never in an arbitrary directory."""
    project = project_dir(rules_dir)
    if project is None:
        click.echo(f"error: {NO_DATABASE.format(where=Path.cwd())}", err=True)
        sys.exit(1)
    return project / DEFAULT_LOCAL_DIR


def _database_url(explicit: str | None, rules_dir: Path | None = None) -> str:
    if explicit:
        return explicit
    from engine.database.local import LocalCluster
    base = local_dir(rules_dir)
    click.echo(f"no --database-url or DATABASE_URL: using the local cluster in {base}/", err=True)
    return _run_or_exit(LocalCluster(base).start)


def _run_or_exit(function: Callable[[], T]) -> T:
    try:
        return function()
    except RulesctlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def main() -> None:
    try:
        cli(prog_name="rulesctl")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:                     # a bug in rulesctl itself: say so plainly
        if os.environ.get("RULESCTL_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}. This is a rulesctl bug; "
                   "run again with RULESCTL_DEBUG=1 for the traceback and report it.", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
