"""One row from a query that always returns one (SELECT f(...), INSERT ... RETURNING)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

Query = str | sql.Composed | sql.SQL


def fetch_row(conn: psycopg.Connection[Any], query: Query, params: tuple[Any, ...] | dict[str, Any] | None = None
              ) -> Any:
    row = conn.execute(query, params).fetchone()     # type: ignore[arg-type]   # str queries are rulesctl's own text
    if row is None:
        raise AssertionError(f"the query returned no row: {str(query)[:80]}")
    return row


def fetch_value(conn: psycopg.Connection[Any], query: Query, params: tuple[Any, ...] | dict[str, Any] | None = None
                ) -> Any:
    return fetch_row(conn, query, params)[0]
