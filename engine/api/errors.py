"""HTTP errors. Input: what went wrong (a PostgreSQL error from the SQL API, bad JSON, a bad
token). Output: an ApiError carrying the HTTP status and the JSON body a client gets:
``{"error": code, "message": text, "field"?: name}`` — never a stack trace.

How PostgreSQL errors map (the SQL API raises them; this module only translates):

| SQLSTATE | HTTP | when |
|---|---|---|
| 22023 | 400 `invalid_input` | bad input; the field is the error's COLUMN (set by `api_invalid`) |
| 22023 | 404 `not_found` | bad input whose message reads `unknown assignment`, `unknown unit` or `unknown staff` |
| other class 22 | 400 `invalid_input` | data the database cannot take (a NUL byte, an out-of-range number, ...) |
| class 54 | 400 `invalid_input` | a program limit the request hit: a value too long for an index, too many things |
| 42501 | 403 `forbidden` | the caller's role or staff role may not do it (grants, caller checks in the functions) |
| 55000 | 409 `conflict` | a conflicting change: the `version` the caller read no longer matches (`api_conflict`) |
| 40001, 40P01 | retried by calls.py; 503 `busy` only if every retry failed | |
| other class 40, 57014, 55P03 | 503 `busy` | a rolled-back transaction, a statement or lock time-out |
| every connection in use | 503 `busy` | the server's connections all stayed in use for the pool's time-out |
| class 08, 53, 57 (but 57014), 58 | 503 `unavailable` | the database cannot be reached or is out of resources |
| a connection refused or lost | 503 `unavailable` | the database cannot be reached |
| anything else | 500 `internal` | a bug: logged with its traceback, the client gets a request id |

Only the rows above say "retry": a client retries a 503 and never a 400, so bad input must never
land in a 503 row (a 20 KB id once did, as 54000, and clients retried it forever).
The 404 rule reads the message because the SQL API signals "unknown X" with the same
SQLSTATE as other bad input; the pattern is the one documented contract for telling them apart.
"""

from __future__ import annotations

import logging
import re
import uuid

import psycopg

from engine.api.pool import Exhausted, Unavailable

log = logging.getLogger("rulesctl.api")

NOT_FOUND_PATTERN = re.compile(r"unknown (assignment|unit|staff)\b")
RETRYABLE = ("40001", "40P01")  # serialization failure, deadlock


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        body = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="rulesctl"'})


def invalid(field: str | None, message: str) -> ApiError:
    return ApiError(400, "invalid_input", message, field)


def from_database(exc: Exception) -> ApiError:
    """Translate an error raised while running a request's SQL (or getting its connection)."""
    if isinstance(exc, Unavailable):
        log.error("database unavailable: %s", exc)
        return _unavailable()
    if isinstance(exc, Exhausted):
        log.warning("%s", exc)
        return _busy()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip()
    field = diag.column_name if diag is not None else None
    if sqlstate == "22023":
        field = field or _field_from_message(message)
        if NOT_FOUND_PATTERN.search(message):
            return ApiError(404, "not_found", message, field)
        return ApiError(400, "invalid_input", message, field)
    if sqlstate.startswith("22") or (not sqlstate and isinstance(exc, psycopg.DataError)):
        # class 22, or data psycopg refuses to send (NUL bytes)
        log.warning("data error %s: %s", sqlstate, message)
        return ApiError(400, "invalid_input", message, field)
    if sqlstate.startswith("54"):
        log.warning("program limit %s: %s", sqlstate, message)      # names indexes: not for the client
        return ApiError(400, "invalid_input", "the request is too large for the database: a value is too long "
                                              "or there are too many of something", field)
    if sqlstate == "42501":
        return ApiError(403, "forbidden", message)
    if sqlstate == "55000":
        return ApiError(409, "conflict", message, field or _field_from_message(message))
    if sqlstate.startswith("40") or sqlstate in ("57014", "55P03"):
        return _busy()
    if sqlstate[:2] in ("08", "53", "57", "58") or (not sqlstate and isinstance(exc, psycopg.OperationalError)):
        log.error("database unavailable: %s", str(exc).strip())
        return _unavailable()
    return internal(exc)


def _busy() -> ApiError:
    return ApiError(503, "busy", "the database is busy; retry the request", headers={"Retry-After": "1"})


def _unavailable() -> ApiError:
    return ApiError(503, "unavailable", "the database is unavailable; retry later", headers={"Retry-After": "5"})


def internal(exc: BaseException) -> ApiError:
    """A bug: log it in full, tell the client only a request id to quote."""
    request_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", request_id, exc_info=exc)
    return ApiError(500, "internal", f"internal error; quote request id {request_id}")


def _field_from_message(message: str) -> str | None:
    head, sep, _ = message.partition(": ")
    return head if sep and re.fullmatch(r"[a-z_][a-z0-9_]*", head) else None

