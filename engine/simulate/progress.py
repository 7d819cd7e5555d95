"""Progress on a terminal while a simulation runs: each policy's simulated day and the arrivals
replayed per second, rewritten in place on one line. The CLI uses it only when stderr is a tty."""

from __future__ import annotations

import threading
import time
from typing import TextIO


class TerminalProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.perf_counter()
        self.state: dict[str, tuple[int, int, int]] = {}
        self.lock = threading.Lock()        # the policies report from their own threads

    def __call__(self, label: str, day: int, days: int, filed: int) -> None:
        with self.lock:
            self.state[label] = (day, days, filed)
            elapsed = max(time.perf_counter() - self.started, 1e-6)
            rate = sum(f for _, _, f in self.state.values()) / elapsed
            parts = [f"{name}: day {d}/{n}" for name, (d, n, _) in sorted(self.state.items())]
            self.stream.write(f"\rsimulating  {'  '.join(parts)}  {rate:,.0f} items/s ")
            self.stream.flush()

    def done(self) -> None:
        if self.state:
            self.stream.write("\n")
            self.stream.flush()
