"""The command line. It parses options, calls one library function per command, prints the
result and maps errors to exit codes: 0 success, 1 error (PolicyError, RenderError, ...).
Nothing outside this package calls sys.exit.

One module per command group: policy (validate, render), migrate (plan, drift, apply, history,
show), operations (staff, status, report, token), local, serve, simulate; common holds the
shared options and helpers. This module holds the group and `main`, the console script."""

from __future__ import annotations

import os
import sys

import click

from engine import __version__
from engine.cli import local, migrate, operations, policy, serve, simulate


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


for command in (policy.validate, policy.render, migrate.plan, migrate.drift, migrate.apply, migrate.history,
                migrate.show, operations.staff, operations.status, operations.report, operations.token,
                local.local, serve.serve, simulate.simulate):
    cli.add_command(command)


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
