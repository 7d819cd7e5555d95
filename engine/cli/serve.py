"""`rulesctl serve`: the HTTP API."""

from __future__ import annotations

import sys

import click

from engine.cli.common import database_option, resolve_database_url, run_or_exit


def _cors_origins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from engine.api.app import check_origin
    try:
        return tuple(check_origin(origin) for origin in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
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
    run_or_exit(lambda: run_server(resolve_database_url(database_url), jwt_secret, host=host, port=port,
                                    cors_origins=cors_origins))
