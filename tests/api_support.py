"""Shared by tests/test_api*.py: a real `rulesctl serve` server on loopback (in a thread of the
test process), Supabase-style tokens, and staff set up the way HR sync does it (a trusted
connection calling upsert_staff_profile). No mock anywhere: real HTTP, real PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import jwt
import psycopg
import pytest
from engine_calls import uid
from psycopg import sql
from psycopg.types.json import Jsonb

from engine.api import build_server

SECRET = "rulesctl-test-secret-at-least-32-bytes-long"


def token(role: str = "authenticated", sub: str | None = None, *, expires_in: float = 3600,
          secret: str = SECRET, **claims) -> str:
    payload = {"role": role, "exp": int(time.time() + expires_in), **claims}
    if sub is not None:
        payload["sub"] = sub
    return jwt.encode(payload, secret, algorithm="HS256")


def supabase_token(role: str = "authenticated", sub: str | None = None, *, expires_in: float = 3600) -> str:
    """A token as Supabase issues it: a user's from Supabase Auth (aud authenticated), or a
    project key (anon, service_role): role, sub, iss, aud, iat, exp."""
    claims = {"iss": "supabase", "iat": int(time.time())}
    if role == "authenticated":
        claims["aud"] = "authenticated"
    return token(role, sub, expires_in=expires_in, **claims)


def bearer(role: str = "authenticated", sub: str | None = None, **kwargs) -> dict:
    return {"Authorization": f"Bearer {token(role, sub, **kwargs)}"}


class RunningServer:
    def __init__(self, server, base_url: str):
        self.server = server
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self._clients: dict[tuple, httpx.Client] = {}

    def as_(self, role: str = "authenticated", sub: str | None = None) -> httpx.Client:
        """A client whose requests carry this caller's token (one per caller, reused)."""
        if (role, sub) not in self._clients:
            self._clients[role, sub] = httpx.Client(base_url=self.base_url, timeout=30, headers=bearer(role, sub))
        return self._clients[role, sub]

    def close(self) -> None:
        for client in (self.client, *self._clients.values()):
            client.close()


@contextmanager
def running_server(database_url: str, secret: str = SECRET, **app_options):
    """`rulesctl serve`'s server on 127.0.0.1 (a free port), in a thread; stopped gracefully after."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = build_server(database_url, secret, port=port, log_level="warning", configure_logging=False,
                          **app_options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="api-server")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    running = RunningServer(server, f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        running.close()
        server.shutdown_soon()
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "the API server did not shut down"


# The engine's data (as opposed to the policy's seed rows): emptied between tests that share one
# installed database, which is much cheaper than installing the policy for every test.
RUNTIME_TABLES = ("assignment_audit", "escalation_events", "assignment_queue", "assignments", "capacity_snapshots",
                  "staff_skills", "staff_profiles", "engine_events")


@contextmanager
def installed_database(pg_cluster, shipped_objects):
    """A fresh database with the shipped policy installed (what conftest's engine_url gives one
    test), for a whole module; dropped afterwards."""
    import uuid

    from engine.migrate.apply import apply

    name = f"test_api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = pg_cluster.url_for(name)
        policy, objects = shipped_objects
        apply(url, objects, policy)          # exactly as conftest's engine_url installs it
        yield url
    finally:
        with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reset_runtime_data(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, RUNTIME_TABLES))))


def trusted_call(database_url: str, function: str, payload):
    """Call a jsonb API function as a trusted server-side caller (no JWT claims)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(f"SELECT {function}(%s)", [Jsonb(payload)]).fetchone()[0]


def add_staff(database_url: str, staff_id: str, unit_id: str, role: str = "staff", **fields):
    return trusted_call(database_url, "upsert_staff_profile", {
        "id": staff_id, "unit_id": unit_id, "full_name": f"{role} {staff_id[-4:]}", "role": role, **fields})


def assert_error(response, status: int, field: str | None = None, error: str | None = None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"error", "message", "field"} and body["message"], body
    if field is not None:
        assert body.get("field") == field, body
    if error is not None:
        assert body["error"] == error, body
    assert "Traceback" not in response.text and "File \"" not in response.text
    return body


class EventStream:
    """Read a server-sent event stream: next_event() returns (event, data) or raises on time-out."""

    def __init__(self, response):
        self.response = response
        self.lines = response.iter_lines()

    def next_event(self) -> tuple[str, dict]:
        import json
        event, data = None, []
        for line in self.lines:
            if line == "":
                if event is not None or data:
                    return event or "message", json.loads("\n".join(data)) if data else {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        raise EOFError("the stream ended")

    def until(self, predicate, limit: int = 50) -> tuple[str, dict]:
        """The first event matching predicate(event, data); every event before it is returned too."""
        seen = []
        for _ in range(limit):
            event, data = self.next_event()
            seen.append((event, data))
            if predicate(event, data):
                return seen
        raise AssertionError(f"no matching event among {seen}")


@contextmanager
def event_stream(server: RunningServer, role: str = "authenticated", sub: str | None = None, read_timeout=10.0):
    """An open /assignments/events stream for this caller, positioned after its `ready` event."""
    with httpx.Client(base_url=server.base_url, headers=bearer(role, sub),
                      timeout=httpx.Timeout(10.0, read=read_timeout)) as client:
        with client.stream("GET", "/functions/v1/assignments/events") as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = EventStream(response)
            event, data = stream.next_event()
            assert event == "ready", (event, data)
            yield stream


# Module-scoped fixtures the API test modules import: one installed database and one running
# server per module (each test empties the engine data with reset_runtime_data).
@pytest.fixture(scope="module")
def installed(pg_cluster, shipped_objects):
    """One database with the shipped policy for the module; each test starts from empty engine data."""
    with installed_database(pg_cluster, shipped_objects) as url:
        yield url


@pytest.fixture(scope="module")
def server(installed):
    with running_server(installed) as running:
        yield running
