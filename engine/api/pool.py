"""The API's database connections. Input: a database URL and a size. Output: open connections,
each known to be alive when it is handed out, or at once one of two errors: Unavailable (the
database refused or did not answer a new connection) or Exhausted (every connection stayed in
use for `timeout` seconds).

Why not psycopg_pool: after a database restart its check finds the dead connections, and the
request then waits through the pool's reconnect back-off (1 s, 2 s, 4 s, ...) until its time-out
(10 s), although PostgreSQL is back; during an outage every request, health included, waits
its full time-out before its 503. Here nothing happens in the background and nothing backs off:

- an idle connection whose socket has something to read (the server's "terminating
  connection" message, or end of file: what a restart leaves behind) is checked with an empty
  query, and dropped if that fails; a connection that broke in use is dropped when returned;
- when no idle connection is left and the pool is not full, the request opens a new one
  itself: refused -> Unavailable in milliseconds; the first request after the database is back
  gets a connection;
- a request waits only when every connection is in use (a busy server, not a dead database).
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import monotonic
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

log = logging.getLogger("rulesctl.api")

CONNECT_TIMEOUT_SECONDS = 2          # libpq's minimum: a database that does not answer at all


class Unavailable(Exception):
    """A new connection could not be opened: the database is down, starting or refusing us."""


class Exhausted(Exception):
    """Every connection stayed in use for the whole wait."""


class Pool:
    def __init__(self, url: str, *, max_size: int, timeout: float, min_size: int = 0, **connect_kwargs: Any) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.connect_kwargs = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **connect_kwargs}
        self._idle: deque[psycopg.AsyncConnection] = deque()
        self._size = 0                         # connections open or being opened
        self._changed = asyncio.Condition()      # an idle connection or a free slot appeared
        self._closed = False

    async def open(self) -> None:
        """Open min_size connections if the database answers (the server starts either way)."""
        try:
            for _ in range(self.min_size - self._size):
                self._size += 1
                try:
                    self._idle.append(await self._connect())
                except BaseException:
                    self._size -= 1
                    raise
        except Unavailable as exc:
            log.warning("starting without database connections: %s", exc)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._idle.pop().close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        conn = await self._acquire()
        try:
            yield conn
        finally:
            await self._release(conn)

    def stats(self) -> dict[str, int]:
        return {"size": self._size, "idle": len(self._idle)}

    async def _acquire(self) -> psycopg.AsyncConnection:
        deadline = monotonic() + self.timeout
        while True:
            while self._idle:
                conn = self._idle.pop()                 # the most recently used: the warmest
                try:
                    alive = await _alive(conn)
                except BaseException:                   # cancelled mid-check: never lose the slot
                    await self._drop(conn)
                    raise
                if alive:
                    return conn
                await self._drop(conn)
            if self._size < self.max_size:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    await self._drop(None)
                    raise
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait_for(
                        lambda: self._idle or self._size < self.max_size), deadline - monotonic())
                except TimeoutError:
                    raise Exhausted(f"all {self.max_size} database connections stayed in use for "
                                    f"{self.timeout:g} s") from None

    async def _release(self, conn: psycopg.AsyncConnection) -> None:
        if self._closed or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            await self._drop(conn)
            return
        self._idle.append(conn)
        async with self._changed:
            self._changed.notify()

    async def _drop(self, conn: psycopg.AsyncConnection | None) -> None:
        """Forget a connection (closing it) or a failed attempt to open one; a waiter may open anew."""
        self._size -= 1
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:
                pass
        async with self._changed:
            self._changed.notify()

    async def _connect(self) -> psycopg.AsyncConnection:
        try:
            return await psycopg.AsyncConnection.connect(self.url, **self.connect_kwargs)
        except psycopg.OperationalError as exc:
            raise Unavailable(str(exc).strip()) from None


async def _alive(conn: psycopg.AsyncConnection) -> bool:
    """Idle and nothing waiting on its socket, or an empty query still succeeds."""
    if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        if not _readable(conn.fileno()):
            return True
    except (OSError, ValueError):
        return False
    try:
        await conn.execute("")
        return True
    except psycopg.Error as exc:
        log.info("dropping a dead database connection: %s", str(exc).strip())
        return False


def _readable(fd: int) -> bool:
    """Something (data, an error, end of file) waits on the socket; poll has no 1024-fd limit."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])
