"""The commands that move a database to the policy and record it: plan, drift, apply, and the
ledger's history and show."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from engine.cli.common import (
    build_or_exit,
    database_option,
    resolve_database_url,
    rules_option,
    run_or_exit,
    scratch_option,
    scratch_server,
)
from engine.errors import ApplyRefused, HazardsBlocked, RulesctlError
from engine.migrate.hazards import Hazard

if TYPE_CHECKING:   # for annotations only: the commands import these modules where they use them
    from engine.migrate.model import Step
    from engine.migrate.plan import Plan

hazard_option = click.option("--allow-hazard", "allowed", multiple=True, metavar="NAME",
                             type=click.Choice([h.slug for h in Hazard]),
                             help="Let steps with this hazard run (repeatable): "
                                  + ", ".join(h.slug for h in Hazard) + ".")


@click.command()
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
    policy, objects = build_or_exit(rules_dir)
    url = resolve_database_url(database_url, rules_dir)
    result = run_or_exit(lambda: build_plan(url, policy, objects, DEFAULT_TEMPLATES, impact_days=impact_days))
    if out_file:
        out_file.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
        click.echo(f"plan saved to {out_file}", err=True)
    simulated = None
    if simulate_days:
        from engine.simulate.live import simulate_against_live
        server = scratch_server(scratch_url, lambda: url)
        simulated = run_or_exit(lambda: simulate_against_live(url, rules_dir, policy, objects, simulate_days,
                                                               scratch_url=server))
    render = {"text": lambda p: as_text(p, show_sql, simulation=simulated), "json": lambda p: as_json(p, simulated),
              "markdown": lambda p: as_markdown(p, simulated)}[fmt]
    click.echo(render(result))
    if result.blocked_by({Hazard.from_slug(a) for a in allowed}):
        sys.exit(3)
    sys.exit(2 if result.steps else 0)


@click.command()
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
    policy, objects = build_or_exit(rules_dir)
    url = resolve_database_url(database_url, rules_dir)
    result = run_or_exit(lambda: build_plan(url, policy, objects, DEFAULT_TEMPLATES))
    result.steps = [step for step in result.steps if step.drift]
    if fmt == "json":
        click.echo(as_json(result))
    elif fmt == "markdown":
        click.echo(as_markdown(result))
    else:
        click.echo(as_text(result) if result.steps else "No drift: every managed object is as rulesctl left it.")
    sys.exit(2 if result.steps else 0)


@click.command()
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
    policy, objects = build_or_exit(rules_dir)
    url = resolve_database_url(database_url, rules_dir)
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


@click.command()
@database_option
@click.option("--limit", type=int, default=20, show_default=True)
def history(database_url: str | None, limit: int) -> None:
    """List the ledger: every apply with its outcome, newest first."""
    from engine.migrate.ledger import describe_git, read_history
    rows = run_or_exit(lambda: read_history(resolve_database_url(database_url), limit))
    if not rows:
        click.echo("no applies recorded")
    for row in rows:
        click.echo(f"#{row['id']:<4} {row['finished_at']:%Y-%m-%d %H:%M:%S} {row['outcome']:<9} "
                   f"{row['statement_count']:>4} steps  policy {row['policy_hash'][:12]}  "
                   f"{describe_git(row['git_commit'], row['git_dirty']):<22} by {row['applied_by']}"
                   f"/{row['os_user']}  {row['message'][:90]}")


@click.command()
@click.argument("apply_id", type=int)
@database_option
def show(apply_id: int, database_url: str | None) -> None:
    """Print what one apply ran: its outcome, message and every statement."""
    from engine.migrate.ledger import describe_git, read_apply
    row = run_or_exit(lambda: read_apply(resolve_database_url(database_url), apply_id))
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


NO_TERMINAL = ("no terminal to confirm on: pass --auto-approve, or apply a saved plan file "
               "(`rulesctl plan --out plan.json`, then `rulesctl apply plan.json`); nothing was changed")
