"""Server-sent events for deployments without Supabase Realtime. Input: PostgreSQL
notifications on ``assignment_changes`` and ``escalation_events`` (written by the SQL API's
triggers and functions to the engine_events outbox, and sent by relay_engine_events(), which
this server runs every RELAY_SECONDS for every listener -- as the event-relay job does every
second). Output: for each subscriber, the events it may see, as ``text/event-stream``.

One listener connection (LISTEN on both channels) fans every notification out to the
subscribers' queues. Whether a subscriber may see an event is asked of the database as that
subscriber — ``SELECT EXISTS (SELECT 1 FROM assignments WHERE id = ...)`` in a transaction
with the subscriber's role and claims — so row level security decides, exactly as it does for
the other endpoints. Nothing here knows who may see what.

Stream format: ``event: ready`` once subscribed (LISTEN is active from then on), then
``event: assignment_changes`` / ``event: escalation_events`` with the notification's JSON as
``data``, a ``: keep-alive`` comment every HEARTBEAT_SECONDS, ``event: resync`` when the
listener had to reconnect (notifications in between are lost: refetch), and ``event: closed``
(with a reason) when the server shuts down, the token expires or the subscriber falls too far behind.

Nothing after a ``resync`` is lost: the listener announces the gap only once it listens again,
so whatever commits after the client's refetch arrives; and an event whose visibility check
fails because the database is unreachable (a restart) is asked again until the database answers,
never dropped. Reconnecting never backs off beyond RECONNECT_MAX_SECONDS: the stream is back
within about a second of the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import psycopg
from psycopg import Notify, sql

from engine.api.auth import Caller
from engine.api.calls import APPLICATION_NAME, Database
from engine.api.errors import ApiError

log = logging.getLogger("rulesctl.api.events")

# channel -> the statement that asks, as the subscriber, whether it may see the event
VISIBILITY = {
    "assignment_changes": ("assignment_id", "SELECT EXISTS (SELECT 1 FROM assignments WHERE id = %s::uuid)"),
    "escalation_events": ("event_id", "SELECT EXISTS (SELECT 1 FROM escalation_events WHERE id = %s::uuid)"),
}
HEARTBEAT_SECONDS = 15.0
RELAY_SECONDS = 0.1          # how often the outbox is sent when it was empty last time
RELAY_BATCH = 500           # small transactions: 5,000 notifications per commit raised a running mix's p99 tenfold
QUEUE_SIZE = 1000
READY_TIMEOUT = 5.0
RECONNECT_FIRST_SECONDS = 0.1   # listener, relay and visibility checks retry after this, doubling
RECONNECT_MAX_SECONDS = 1.0     # up to this: a local connection attempt is cheap, a second's delay is not


class _Closed:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Gap:
    """The listener lost its connection and is back: notifications in between are lost."""


# What a subscriber's queue holds: a notification to pass on, or word from the hub.
_Item: TypeAlias = Notify | _Closed | _Gap


class EventHub:
    def __init__(self, database: Database, queue_size: int = QUEUE_SIZE) -> None:
        self.database = database
        self.queue_size = queue_size
        self.subscribers: set[asyncio.Queue[_Item]] = set()
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None
        self._closing = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._listen_forever(), name="rulesctl-api-listener")
        self._relay = asyncio.create_task(self._relay_forever(), name="rulesctl-api-relay")

    def close_streams(self, reason: str = "server shutting down") -> None:
        """Tell every open stream to end (called first on shutdown, so streams do not hold it up)."""
        self._closing = True
        for queue in list(self.subscribers):
            _put(queue, _Closed(reason))

    async def stop(self) -> None:
        self.close_streams()
        for task in (self._task, self._relay):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def _listen_forever(self) -> None:
        delay, lost = RECONNECT_FIRST_SECONDS, False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.database.url, autocommit=True, application_name=f"{APPLICATION_NAME}-events") as conn:
                    for channel in VISIBILITY:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.listening.set()
                    log.info("listening on %s", ", ".join(VISIBILITY))
                    delay = RECONNECT_FIRST_SECONDS
                    if lost:
                        for queue in list(self.subscribers):
                            _put(queue, _Gap())
                        lost = False
                    async for note in conn.notifies():
                        for queue in list(self.subscribers):
                            if not _put(queue, note):
                                self.subscribers.discard(queue)
                                _force(queue, _Closed("too far behind; reconnect"))
            except psycopg.Error as exc:
                self.listening.clear()
                lost = True
                log.warning("event listener lost its connection (%s); retrying in %.1fs", str(exc).strip(), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _relay_forever(self) -> None:
        """Send the engine's outbox (relay_engine_events) for every listener, this one included:
        at once again while batches come back full, else after RELAY_SECONDS."""
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.database.url, autocommit=True, application_name=f"{APPLICATION_NAME}-relay") as conn:
                    delay = RECONNECT_FIRST_SECONDS
                    while True:
                        row = await (await conn.execute("SELECT relay_engine_events(%s)", [RELAY_BATCH])).fetchone()
                        assert row is not None, "a SELECT without FROM returns exactly one row"
                        sent: int = row[0]
                        if sent < RELAY_BATCH:
                            await asyncio.sleep(RELAY_SECONDS)
            except psycopg.Error as exc:
                log.warning("event relay failed (%s); retrying in %.1fs", str(exc).strip(), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def ensure_listening(self) -> None:
        """Raise a 503 ApiError unless the listener is up (so a stream can start for real)."""
        if self._closing:
            raise ApiError(503, "unavailable", "the server is shutting down")
        try:
            await asyncio.wait_for(self.listening.wait(), READY_TIMEOUT)
        except TimeoutError:
            raise ApiError(503, "unavailable", "the event listener is not connected to the database; retry later",
                           headers={"Retry-After": "5"}) from None

    def unsubscribe(self, queue: asyncio.Queue[_Item]) -> None:
        self.subscribers.discard(queue)

    async def stream(self, caller: Caller) -> AsyncIterator[str]:
        """The subscriber's text/event-stream, until it disconnects, its token expires or we close.
        The subscription starts before `ready` is sent: whatever happens after `ready` arrives."""
        expires_at = caller.claims.get("exp")
        queue: asyncio.Queue[_Item] = asyncio.Queue(self.queue_size)
        self.subscribers.add(queue)
        try:
            if self._closing:
                yield _event("closed", {"reason": "server shutting down"})
                return
            yield "retry: 3000\n\n" + _event("ready", {"role": caller.role, "sub": caller.subject})
            while True:
                timeout = HEARTBEAT_SECONDS
                if isinstance(expires_at, (int, float)):
                    timeout = min(timeout, expires_at - time.time())
                    if timeout <= 0:
                        yield _event("closed", {"reason": "token expired"})
                        return
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if isinstance(item, _Closed):
                    yield _event("closed", {"reason": item.reason})
                    return
                if isinstance(item, _Gap):
                    yield _event("resync", {"reason": "the server lost its database connection for a while; "
                                                      "events may be missing: refetch what you show"})
                    continue
                payload = _payload(item)
                delay = RECONNECT_FIRST_SECONDS
                while payload is not None:
                    try:
                        if await self._visible(caller, item.channel, payload):
                            yield _event(item.channel, payload)
                        break
                    except _Unreachable as exc:
                        # The database is restarting or down: ask again (never drop the event),
                        # keeping the connection alive meanwhile; give way to a shutdown.
                        if self._closing:
                            yield _event("closed", {"reason": "server shutting down"})
                            return
                        log.info("visibility of a %s event unknown (%s); asking again in %.1fs",
                                 item.channel, exc, delay)
                        yield ": keep-alive\n\n"
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        finally:
            self.unsubscribe(queue)

    async def _visible(self, caller: Caller, channel: str, payload: dict[str, Any]) -> bool:
        """Whether the caller may see it (row level security, asked as the caller). Raises
        _Unreachable when the database cannot answer now; any other failure is a refusal."""
        key, query = VISIBILITY[channel]
        try:
            return bool(await self.database.one(caller, query, [payload[key]]))
        except ApiError as exc:
            if exc.status == 503:
                raise _Unreachable(exc.message) from None
            log.warning("could not check visibility of a %s event: %s", channel, exc.message)
            return False


class _Unreachable(Exception):
    pass


def _payload(note: Notify) -> dict[str, Any] | None:
    key, _ = VISIBILITY[note.channel]
    try:
        payload = json.loads(note.payload)
        payload[key]
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring a malformed %s notification: %.200s", note.channel, note.payload)
        return None
    return payload


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _put(queue: asyncio.Queue[_Item], item: _Item) -> bool:
    try:
        queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        return False


def _force(queue: asyncio.Queue[_Item], item: _Item) -> None:
    """Put item even into a full queue (drop the oldest entry to make room)."""
    try:
        queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    _put(queue, item)
