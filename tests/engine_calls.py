"""Small helpers the runtime tests share: call the SQL API the way a client does, move the
engine clock, read one value."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb


def uid(n: int) -> str:
    """A readable staff id: uid(21) -> 00000000-0000-4000-8000-000000000021."""
    return f"00000000-0000-4000-8000-{n:012d}"


def call(conn, function: str, payload):
    """Call a jsonb API function (its own transaction on an autocommit connection); its jsonb result."""
    return conn.execute(f"SELECT {function}(%s)", [Jsonb(payload)]).fetchone()[0]


def at(conn, when: datetime) -> None:
    """Move the engine clock (engine_now()) for this session."""
    conn.execute("SELECT set_config('rulesctl.now', %s, false)", [when.isoformat()])


@contextmanager
def invalid(field: str) -> Iterator[pytest.ExceptionInfo[psycopg.errors.InvalidParameterValue]]:
    """Expect the API's bad-input error: SQLSTATE 22023 naming this field (diag.column_name)."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        yield caught
    assert caught.value.diag.column_name == field, caught.value


def scalar(conn, query, *params):
    return conn.execute(query, params).fetchone()[0]
