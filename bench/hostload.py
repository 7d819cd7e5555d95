"""How much of the machine something other than the benchmark used while a workload ran.

The benchmark shares a small machine with whatever else runs there (a test suite with its own
PostgreSQL cluster, another benchmark). Load average cannot tell them apart from the
benchmark's own 16 clients, so this counts CPU time from /proc: the whole machine's busy time
minus the benchmark's own (this process and its children, such as pgbench, and the benchmark
cluster's postmaster with its backends; exited children are counted through cutime/cstime).
Linux only; elsewhere every figure is None.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks() -> int | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)      # idle + iowait
    guest = sum(values[8:10]) if len(values) > 9 else 0            # already counted in user/nice
    return sum(values) - idle - guest


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, own ticks, reaped children's ticks)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _tree_ticks(roots: list[int]) -> int:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, seen, todo = 0, set(), [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        _, own, reaped = stats[pid]
        total += own + reaped
        todo.extend(children.get(pid, []))
    return total


class Meter:
    def __init__(self, server_pid: int | None):
        self.roots = [os.getpid()] + ([server_pid] if server_pid else [])
        self.server_known = server_pid is not None
        self._start = None

    def start(self) -> None:
        busy = _busy_ticks()
        self._start = None if busy is None else (time.monotonic(), busy, _tree_ticks(self.roots))

    def stop(self) -> dict:
        """CPU used by others as a share of the whole machine (0.0-1.0) and in CPU seconds."""
        if self._start is None or (busy := _busy_ticks()) is None:
            return {"other_cpu_share": None}
        began, busy0, mine0 = self._start
        elapsed = time.monotonic() - began
        mine = _tree_ticks(self.roots) - mine0
        others = max(0, (busy - busy0) - mine) / TICKS
        capacity = elapsed * (os.cpu_count() or 1)
        return {"other_cpu_share": round(others / capacity, 3) if capacity else None,
                "other_cpu_s": round(others, 1), "elapsed_s": round(elapsed, 1),
                "server_counted_as_ours": self.server_known}
