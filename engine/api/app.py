"""The ASGI application. Input: a database URL and the JWT secret. Output: a FastAPI app
serving the endpoints of routes.py, /openapi.json, one log line per request, and JSON errors
of one shape (errors.py) for everything that can go wrong — a stack trace never leaves the server.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import __version__
from engine.api.calls import Database
from engine.api.errors import ApiError, internal
from engine.api.events import QUEUE_SIZE, EventHub
from engine.api.routes import router

log = logging.getLogger("rulesctl.api")

# What the Supabase client libraries send with every call.
CORS_HEADERS = ["authorization", "apikey", "content-type", "x-client-info"]
# A browser's Origin header: scheme, host, optional port; never a path or a trailing slash.
ORIGIN = re.compile(r"https?://[^/\s:]+(:[0-9]{1,5})?")


def check_origin(origin: str) -> str:
    if not ORIGIN.fullmatch(origin):
        raise ValueError(f"CORS origin {origin!r} is not scheme://host[:port] (e.g. https://app.example.org, "
                         "no path, no trailing slash)")
    return origin

DESCRIPTION = """\
The Assignment Engine & SLA of rulesctl over HTTP: each endpoint is a thin wrapper over one
function of the SQL API, run as the caller.

**Auth** (as on Supabase): `Authorization: Bearer <JWT>`, HS256 with the project's JWT secret,
claims `role` (`anon`, `authenticated` or `service_role`), `exp`, and `sub` (the staff id);
with no Authorization header the `apikey` header (the project's anon or service key) is the
caller. Each request runs in a transaction with that role and `request.jwt.claims` set, so the
database's grants and row level security decide what the caller may do and see.

**Function names** (as Supabase deploys them): every endpoint also answers at its deployed
function name, its path with `/` turned into `-` (`/functions/v1/assignments-auto-assign`,
`/functions/v1/capacity-check`; `x-supabase-function` on each operation). There a GET endpoint
also takes POST, the way `functions.invoke()` calls, with its query parameters as a JSON object
in the body.

**Errors** are `{"error", "message", "field"?}`: 400 invalid input (`field` names it; ids
and names take at most 200 characters, free text such as `reason` 2000), 401 bad or missing
token, 403 not allowed, 404 unknown assignment/unit/staff, 409 the `version` you read is stale,
413 body over 1 MiB, 503 database busy or unavailable (retry after `Retry-After` seconds; never
for bad input), 500 a bug (logged; quote the request id). Other state conflicts (e.g.
completing a completed assignment) are bad input, 400.
"""


def create_app(database_url: str, jwt_secret: str, *, pool_min: int = 2, pool_max: int = 16,
               pool_timeout: float = 10.0, event_queue_size: int = QUEUE_SIZE,
               cors_origins: Sequence[str] = ()) -> FastAPI:
    """pool_timeout: seconds a request waits while every database connection is in use before
    its 503 (an unreachable database is a 503 at once); event_queue_size: events a stream may
    fall behind by before it is closed ("too far behind; reconnect"); cors_origins: the browser
    origins allowed to call (none by default: no CORS headers at all)."""
    if not jwt_secret:
        raise ValueError("a JWT secret is required (RULESCTL_JWT_SECRET or SUPABASE_JWT_SECRET)")
    database = Database(database_url, min_size=pool_min, max_size=pool_max, timeout=pool_timeout)
    hub = EventHub(database, event_queue_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.open()
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await database.close()

    app = _Api(title="rulesctl Assignment Engine API", version=__version__, description=DESCRIPTION,
               lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.database = database
    app.state.events = hub
    app.state.jwt_secret = jwt_secret
    app.include_router(router)
    _install_error_handlers(app)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=[check_origin(o) for o in cors_origins],
                           allow_methods=["GET", "POST"], allow_headers=CORS_HEADERS, max_age=600)
    app.add_middleware(RequestLog)
    return app


class _Api(FastAPI):
    """FastAPI documents a 422 for parameter errors; this API answers them with 400 (see below)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        document = super().openapi()        # (FastAPI keeps it as self.openapi_schema: edited once)
        for item in document["paths"].values():
            for operation in item.values():
                operation["responses"].pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            document.get("components", {}).get("schemas", {}).pop(name, None)
        return document


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ())]
        field = location[-1] if len(location) > 1 else None
        what = "is required" if first.get("type") == "missing" else first.get("msg", "is invalid")
        return JSONResponse({"error": "invalid_input", "field": field, "message": f"{field}: {what}"},
                            status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": error, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        error = internal(exc)
        return JSONResponse(error.body(), status_code=error.status)


class RequestLog:
    """One line per request: method, path, status, milliseconds (for a stream: when it ends)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status,
                     (time.perf_counter() - started) * 1000)
