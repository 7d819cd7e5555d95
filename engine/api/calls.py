"""The database side of a request. Input: a Caller and one SQL statement. Output: its rows,
run the way PostgREST runs a request, or an ApiError.

Each call is one transaction on a pooled connection (the server logs in as the database
owner, which may switch to the API roles):

    BEGIN;
    SET LOCAL ROLE <anon | authenticated | service_role>;
    SELECT set_config('request.jwt.claims', '<the token's claims>', true);
    <the statement>;
    COMMIT;

so grants, row level security and the SQL API's own caller checks see the caller exactly as
they would behind PostgREST. SET LOCAL and set_config(..., true) end with the transaction:
nothing leaks to the next request on the same connection. A serialization failure or a
deadlock is retried (with jittered back-off) and never reaches the caller. Connections come
from pool.py: a dead one is replaced at once, and an unreachable database is a 503 at once; a
connection that dies before the statement is sent (killed between the pool's check and BEGIN)
is replaced too, since nothing ran on it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from engine.api.auth import ROLES, Caller
from engine.api.errors import RETRYABLE, from_database
from engine.api.pool import Exhausted, Pool, Unavailable

if TYPE_CHECKING:   # QueryNoTemplate is psycopg >= 3.3's; the annotations are never evaluated
    from psycopg.abc import Params, QueryNoTemplate

ATTEMPTS = 6
APPLICATION_NAME = "rulesctl-api"


class Database:
    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 16, timeout: float = 10.0,
                 statement_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.statement_timeout_ms = statement_timeout_ms
        self.pool = Pool(url, min_size=min_size, max_size=max_size, timeout=timeout,
                         autocommit=True, application_name=APPLICATION_NAME)

    async def open(self) -> None:
        # The server starts even when the database is down (health then says so).
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    async def call(self, caller: Caller, query: QueryNoTemplate, params: Params | None = None) -> list[dict[str, Any]]:
        """Run one statement as the caller, in its own transaction; rows as dicts."""
        for attempt in range(ATTEMPTS):
            started = False
            try:
                async with self.as_caller(caller) as conn:
                    started = True
                    cursor = await conn.execute(query, params)
                    return await cursor.fetchall() if cursor.description else []
            except (psycopg.Error, Exhausted, Unavailable) as exc:
                if not started and isinstance(exc, psycopg.OperationalError) and attempt < ATTEMPTS - 1:
                    continue        # the connection died under BEGIN / SET ROLE: nothing ran; take another
                if getattr(exc, "sqlstate", None) in RETRYABLE and attempt < ATTEMPTS - 1:
                    await asyncio.sleep(random.uniform(0, 0.01 * 2 ** attempt))
                    continue
                raise from_database(exc) from None
        raise AssertionError("unreachable")

    async def one(self, caller: Caller, query: QueryNoTemplate, params: Params | None = None) -> Any:
        """The single value of a one-row, one-column statement (an SQL API function's jsonb)."""
        rows = await self.call(caller, query, params)
        return next(iter(rows[0].values())) if rows else None

    @asynccontextmanager
    async def as_caller(self, caller: Caller) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """A connection inside a transaction switched to the caller's role and claims."""
        if caller.role not in ROLES:  # auth.py guarantees it; never format anything else into SQL
            raise ValueError(f"not an API role: {caller.role!r}")
        async with self.pool.connection() as conn:
            conn.row_factory = dict_row
            async with conn.transaction():
                await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(caller.role)))
                await conn.execute("SELECT set_config('request.jwt.claims', %s, true),"
                                   " set_config('statement_timeout', %s, true)",
                                   (json.dumps(caller.claims), str(self.statement_timeout_ms)))
                yield conn
