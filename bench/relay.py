"""What `rulesctl serve` (or the event-relay job) does while the engine runs: send the
outbox of notifications (relay_engine_events) every RELAY_SECONDS, so its cost is part of
every figure the benchmark measures."""

from __future__ import annotations

import threading

import psycopg

from engine.api.events import RELAY_BATCH, RELAY_SECONDS


class OutboxRelay:
    def __init__(self, url: str):
        self.url = url
        self.sent = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-relay", daemon=True)

    def __enter__(self) -> OutboxRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while True:
                    sent = conn.execute("SELECT relay_engine_events(%s)", [RELAY_BATCH]).fetchone()[0]
                    self.sent += sent
                    if sent < RELAY_BATCH and self._stop.wait(RELAY_SECONDS):
                        return
        except psycopg.Error as exc:
            self.error = str(exc).strip()
