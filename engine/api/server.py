"""Running the API. Input: a database URL, host, port, JWT secret. Output: uvicorn serving
create_app() until SIGINT/SIGTERM, then a clean shutdown: open event streams are told to
close first (they would otherwise hold the shutdown up), in-flight requests finish, the pool
and the listener connection close.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from engine.api.app import create_app
from engine.api.auth import ROLES
from engine.api.events import EventHub
from engine.database.connect import connect
from engine.errors import DatabaseError

GRACEFUL_SHUTDOWN_SECONDS = 10
log = logging.getLogger("rulesctl.api")


class _Server(uvicorn.Server):
    """uvicorn, plus: on the first shutdown signal, end the event streams."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._close_streams()
        super().handle_exit(sig, frame)
        # A signalled, graceful shutdown is a clean exit: do not re-raise the signal afterwards.
        self._captured_signals.clear()

    def shutdown_soon(self) -> None:
        """Ask for a graceful shutdown from another thread (tests; no signal involved)."""
        self._close_streams()
        self.should_exit = True

    def _close_streams(self) -> None:
        hub: EventHub = self._app.state.events
        if hub.loop is not None and not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.close_streams)


def build_server(database_url: str, jwt_secret: str, host: str = "127.0.0.1", port: int = 8000,
                 log_level: str = "info", configure_logging: bool = True, **app_options: Any) -> _Server:
    """The server, not yet running. configure_logging=False leaves logging as the embedding
    program set it (tests read the request log through their own handlers); app_options go
    to create_app (pool sizes and time-out)."""
    app = create_app(database_url, jwt_secret, **app_options)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, lifespan="on",
                            log_config=_log_config(log_level) if configure_logging else None)
    return _Server(config, app)


def serve(database_url: str, jwt_secret: str, host: str = "127.0.0.1", port: int = 8000,
          sock: socket.socket | None = None, cors_origins: Sequence[str] = ()) -> None:
    """Check the database can serve the API, then serve until SIGINT/SIGTERM (uvicorn installs
    the signal handlers). Raises DatabaseError when the check fails."""
    server = build_server(database_url, jwt_secret, host, port, cors_origins=cors_origins)  # (configures logging)
    for note in check_database(database_url):
        log.warning(note)
    server.run(sockets=[sock] if sock is not None else None)


def check_database(database_url: str) -> list[str]:
    """The database answers, holds the engine (`rulesctl apply` ran) and our login may switch
    to each API role; otherwise every request would fail, so say why before serving. Returns
    notes on what works only in part."""
    with connect(database_url) as conn:
        for role in ROLES:
            row = conn.execute("SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = %s",
                               [role]).fetchone()
            if row is None:
                raise DatabaseError(f"the database has no role {role}: run `rulesctl apply` first")
            if not row[0]:
                raise DatabaseError(f"the login role may not switch to {role}: GRANT {role} TO <the login role>")
        engine = conn.execute("SELECT to_regprocedure('public.auto_assign(jsonb)')").fetchone()
        assert engine is not None, "a SELECT without FROM returns exactly one row"
        if engine[0] is None:
            raise DatabaseError("the database does not hold the engine (no auto_assign): run `rulesctl apply` first")
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.assignments'::regclass"
                                " AND tgname = 'assignment_notify_trigger'").fetchone()
        assert triggers is not None, "an aggregate without GROUP BY returns exactly one row"
        notifies = triggers[0]
    if not notifies:
        return ["assignments send no notifications (rules/realtime.yaml: notify_assignment_changes is off): "
                "the event stream will carry escalations only"]
    return []


def _log_config(level: str) -> dict[str, Any]:
    config = dict(uvicorn.config.LOGGING_CONFIG)
    config["loggers"] = {**config["loggers"],
                         "rulesctl": {"handlers": ["default"], "level": level.upper(), "propagate": False}}
    return config
