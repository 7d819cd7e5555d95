"""`rulesctl serve` as a user runs it (a subprocess), under load: 32 clients post auto-assign over
HTTP for a few seconds, then the runtime's invariants hold in the tables, every client saw one
answer per work item, and the server shuts down cleanly on SIGTERM / SIGINT (exit 0), even with
an event stream open. The load run prints requests/s and latency percentiles.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx
import psycopg
import pytest
from api_support import SECRET, EventStream, add_staff, bearer
from engine_calls import uid

from engine.database.invariants import all_violations

pytestmark = pytest.mark.db

CLIENTS = 32
SECONDS = 2.0
MAX_REQUESTS_PER_CLIENT = 400
STAFF = [uid(300 + n) for n in range(10)]


class Serve:
    """`python -m engine.cli serve` on a free loopback port; stdout/stderr kept for inspection."""

    def __init__(self, database_url: str, *extra: str, env: dict | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "RULESCTL_JWT_SECRET": "", "SUPABASE_JWT_SECRET": SECRET, **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--database-url", database_url, "--port", str(self.port),
             *extra], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.base_url}/openapi.json", timeout=1).raise_for_status()
                return
            except httpx.HTTPError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    out, err = self.process.communicate(timeout=5)
                    raise RuntimeError(f"rulesctl serve did not start: {err}") from exc
                time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def loaded_engine(engine_url):
    for staff_id in STAFF:
        add_staff(engine_url, staff_id, "unit-it-support", wip_limit=3)
    return engine_url


def test_32_clients_auto_assign_over_http_and_the_invariants_hold(loaded_engine, capsys):
    server = Serve(loaded_engine)
    try:
        latencies: list[float] = []
        answers: dict[str, set] = defaultdict(set)
        failures: list[str] = []
        requested: set[str] = set()
        lock = threading.Lock()
        stop_at = time.monotonic() + SECONDS

        def client(n: int):
            rng = random.Random(n)
            with httpx.Client(base_url=server.base_url, headers=bearer("service_role"), timeout=30) as http:
                for step in range(MAX_REQUESTS_PER_CLIENT):
                    if time.monotonic() > stop_at:
                        return
                    item = f"L{n}-{step}" if rng.random() > 0.2 else f"shared-{rng.randrange(20)}"
                    priority = rng.choice(("low", "normal", "high", "urgent"))
                    started = time.perf_counter()
                    response = http.post("/functions/v1/assignments/auto-assign", json={
                        "work_item_id": item, "work_item_type": "ticket", "priority": priority})
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                        requested.add(item)
                        if response.status_code not in (200, 202):
                            failures.append(f"{response.status_code} {response.text}")
                        else:
                            body = response.json()
                            answers[item].add(body.get("assignment_id") or body.get("queue_id"))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        wall = time.perf_counter() - began
        code, log = server.stop(signal.SIGTERM)
    finally:
        server.kill()

    assert latencies and not failures, failures[:5]
    assert code == 0, log[-2000:]
    # one answer per work item, however many clients raced for it (no completions ran, so
    # nothing moved from the queue to a person meanwhile)
    assert {item: ids for item, ids in answers.items() if len(ids) != 1} == {}
    with psycopg.connect(loaded_engine) as conn:
        violations = {name: rows for name, rows in all_violations(conn, requested).items() if rows}
        assigned = conn.execute("SELECT count(*) FROM assignments").fetchone()[0]
    assert violations == {}
    assert assigned >= 1
    assert log.count("POST /functions/v1/assignments/auto-assign 20") == len(latencies)

    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    with capsys.disabled():
        print(f"\nauto-assign over HTTP: {len(latencies)} requests by {CLIENTS} clients in {wall:.1f}s: "
              f"{len(latencies) / wall:.0f} req/s, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
              f"({assigned} assigned, the rest queued)")


def test_sigint_ends_open_streams_and_exits_0_and_cors_origin_is_served(engine_url):
    add_staff(engine_url, STAFF[0], "unit-it-support")
    with psycopg.connect(engine_url, autocommit=True) as conn:    # as with notify_assignment_changes: false
        conn.execute("DROP TRIGGER assignment_notify_trigger ON assignments")
    server = Serve(engine_url, "--cors-origin", "https://app.example.org")
    try:
        # the option reaches the app: a preflight from that origin is answered, by function name
        preflight = httpx.options(f"{server.base_url}/functions/v1/assignments-events", headers={
            "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, apikey"})
        assert preflight.headers.get("access-control-allow-origin") == "https://app.example.org", preflight.text
        with httpx.Client(base_url=server.base_url, headers=bearer("authenticated", STAFF[0]),
                          timeout=httpx.Timeout(10.0)) as client:
            with client.stream("GET", "/functions/v1/assignments/events") as response:
                stream = EventStream(response)
                assert stream.next_event()[0] == "ready"
                server.process.send_signal(signal.SIGINT)
                assert stream.next_event() == ("closed", {"reason": "server shutting down"})
        _, log = server.process.communicate(timeout=15)
        assert server.process.returncode == 0, log[-2000:]
        assert "GET /functions/v1/assignments/events 200" in log
        assert "the event stream will carry escalations only" in log
        assert "Traceback" not in log
    finally:
        server.kill()


def test_serve_refuses_to_start_without_a_secret_or_an_installed_engine(database_url):
    env = {**os.environ, "RULESCTL_JWT_SECRET": "", "SUPABASE_JWT_SECRET": ""}
    run = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--database-url", database_url],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "no JWT secret" in run.stderr
    run = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--database-url", database_url,
                          "--jwt-secret", SECRET], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 1, run.stderr
    assert "run `rulesctl apply` first" in run.stderr
