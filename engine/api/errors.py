"""HTTP errors. Input: what went wrong (a PostgreSQL error from the SQL API, bad JSON, a bad
token). Output: an ApiError carrying the HTTP status and the JSON body a client gets:
``{"error": code, "message": text, "field"?: name}`` — never a stack trace.

How PostgreSQL errors map (the SQL API raises them; this module only translates):

| SQLSTATE | HTTP | when |
|---|---|---|
| 22023 | 400 `invalid_input` | bad input; the field is the error's COLUMN (set by `api_invalid`) |
| 22023 | 404 `not_found` | bad input whose message reads `unknown assignment`, `unknown unit` or `unknown staff` |
| other class 22 | 400 `invalid_input` | data the database cannot take (a NUL byte, an out-of-range number, ...) |
| 42501 | 403 `forbidden` | the caller's role or staff role may not do it (grants, caller checks in the functions) |
| 55000 | 409 `conflict` | a conflicting change: the `version` the caller read no longer matches (`api_conflict`) |
| 40001, 40P01 | retried by db.py; 503 `busy` only if every retry failed | |
| 08*, 53*, 57P*, pool time-outs | 503 `unavailable` | the database cannot be reached or is overloaded |
| anything else | 500 `internal` | a bug: logged with its traceback, the client gets a request id |

The 404 rule reads the message because the SQL API signals "unknown X" with the same
SQLSTATE as other bad input; the pattern is the one documented contract for telling them apart.
"""

from __future__ import annotations

import logging
import re
import uuid

import psycopg
from psycopg import errors as pg_errors

log = logging.getLogger("rulesctl.api")

NOT_FOUND_PATTERN = re.compile(r"unknown (assignment|unit|staff)\b")
RETRYABLE = ("40001", "40P01")  # serialization failure, deadlock


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None, headers=None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict:
        body = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="rulesctl"'})


def invalid(field: str | None, message: str) -> ApiError:
    return ApiError(400, "invalid_input", message, field)


def from_database(exc: Exception) -> ApiError:
    """Translate an error raised while running a request's SQL."""
    sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip()
    field = diag.column_name if diag is not None else None
    if sqlstate == "22023":
        field = field or _field_from_message(message)
        if NOT_FOUND_PATTERN.search(message):
            return ApiError(404, "not_found", message, field)
        return ApiError(400, "invalid_input", message, field)
    if isinstance(exc, psycopg.DataError):  # class 22, or data psycopg refuses to send (NUL bytes)
        log.warning("data error %s: %s", sqlstate, message)
        return ApiError(400, "invalid_input", message, field)
    if sqlstate == "42501":
        return ApiError(403, "forbidden", message)
    if sqlstate == "55000":
        return ApiError(409, "conflict", message, field or _field_from_message(message))
    if sqlstate in RETRYABLE:
        return ApiError(503, "busy", "the database is busy; retry the request", headers={"Retry-After": "1"})
    if isinstance(exc, (psycopg.OperationalError, pg_errors.InsufficientResources)) or _is_pool_timeout(exc):
        log.error("database unavailable: %s", str(exc).strip())
        return ApiError(503, "unavailable", "the database is unavailable; retry later", headers={"Retry-After": "5"})
    return internal(exc)


def internal(exc: BaseException) -> ApiError:
    """A bug: log it in full, tell the client only a request id to quote."""
    request_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", request_id, exc_info=exc)
    return ApiError(500, "internal", f"internal error; quote request id {request_id}")


def _field_from_message(message: str) -> str | None:
    head, sep, _ = message.partition(": ")
    return head if sep and re.fullmatch(r"[a-z_][a-z0-9_]*", head) else None


def _is_pool_timeout(exc: Exception) -> bool:
    from psycopg_pool import PoolTimeout, TooManyRequests
    return isinstance(exc, (PoolTimeout, TooManyRequests))
