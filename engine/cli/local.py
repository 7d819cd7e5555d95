"""`rulesctl local start|stop|status`: the embedded default database under .rulesctl/."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.cli.common import local_dir, run_or_exit

local_dir_option = click.option("--dir", "base_dir", type=click.Path(path_type=Path), default=None,
                                help="The cluster's directory [default: .rulesctl/ in the project directory].")


@click.group()
def local() -> None:
    """The embedded default database: a throwaway PostgreSQL cluster under .rulesctl/."""


@local.command("start")
@local_dir_option
def local_start(base_dir: Path | None) -> None:
    """Start the local cluster (creating it on first use); the last line printed is its URL."""
    from engine.database.local import LocalCluster
    cluster = LocalCluster((base_dir or local_dir()).resolve())
    url = run_or_exit(cluster.start)
    status = cluster.status()
    click.echo(f"local PostgreSQL {status.server_version} running in {status.data_dir} "
               f"(pg_cron {'preloaded' if status.pg_cron_available else 'not installed'})", err=True)
    click.echo(url)


@local.command("stop")
@local_dir_option
def local_stop(base_dir: Path | None) -> None:
    """Stop the local cluster (its data stays for the next start)."""
    from engine.database.local import LocalCluster
    run_or_exit(LocalCluster((base_dir or local_dir()).resolve()).stop)
    click.echo("local cluster stopped")


@local.command("status")
@local_dir_option
def local_status(base_dir: Path | None) -> None:
    """Say whether the local cluster runs, where, and its URL. Exits 3 when it is not running."""
    from engine.database.local import LocalCluster
    status = run_or_exit(LocalCluster((base_dir or local_dir()).resolve()).status)
    click.echo(f"{'running' if status.running else 'stopped'}: data {status.data_dir}, port {status.port}, "
               f"pg_cron {'available' if status.pg_cron_available else 'not installed'}")
    if status.running:
        click.echo(status.url)
    else:
        sys.exit(3)
