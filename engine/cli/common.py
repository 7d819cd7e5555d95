"""What the command modules share: the common options, and the helpers that turn the library's
errors into messages and exit codes (build_or_exit, run_or_exit), find the database
(resolve_database_url: the given URL, or the project's local cluster) and the simulation's
scratch server. Only the engine.cli package calls sys.exit."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from engine.errors import PolicyError, RulesctlError

if TYPE_CHECKING:   # for annotations only: the commands import these modules where they use them
    from engine.compiler.objects import SqlObject
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

scratch_option = click.option("--scratch-url", metavar="URL", default=None,
                              help="Create the simulation's scratch databases on this server (the role needs "
                                   "CREATEDB) instead of a private throwaway PostgreSQL cluster in a temp "
                                   "directory; for machines without PostgreSQL's server binaries.")


def echo_problems(problems: Sequence[Problem], max_errors: int) -> None:
    for problem in problems[:max_errors]:
        click.echo(str(problem), err=True)
    if len(problems) > max_errors:
        click.echo(f"… and {len(problems) - max_errors} more", err=True)
    click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)


def scratch_server(scratch_url: str | None, database_url: Callable[[], str]) -> str | None:
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


def build_or_exit(rules_dir: Path, parse_check: bool = False) -> tuple[Policy, list[SqlObject]]:
    """The policy and its objects. The sqlglot parse check is for `render`, which has no
    database; plan, drift and apply install every object into a scratch schema, and
    PostgreSQL's own parser is the stricter check."""
    from engine.project import build
    try:
        return build(rules_dir, parse_check=parse_check)
    except PolicyError as exc:
        echo_problems(exc.problems, 50)
        click.echo("the policy is invalid; fix it first (`rulesctl validate`)", err=True)
        sys.exit(1)
    except RulesctlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


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


def resolve_database_url(explicit: str | None, rules_dir: Path | None = None) -> str:
    if explicit:
        return explicit
    from engine.database.local import LocalCluster
    base = local_dir(rules_dir)
    click.echo(f"no --database-url or DATABASE_URL: using the local cluster in {base}/", err=True)
    return run_or_exit(LocalCluster(base).start)


def run_or_exit(function: Callable[[], T]) -> T:
    try:
        return function()
    except RulesctlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
