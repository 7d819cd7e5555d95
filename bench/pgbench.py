"""Run pgbench with custom scripts and read its per-transaction log.

`pgbench -n -M prepared -c C -j J -T secs -f script@weight ... --log` writes one line per
transaction: ``client_id transaction_no time script_no time_epoch time_us [...]`` where
`time` is the latency in microseconds (or "failed"/"serialization"/"deadlock" for a failed
one) and time_epoch/time_us when it ended. Throughput and p50/p95/p99 come from that log;
failed transactions and aborted clients are errors the clients saw.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.database.local import find_pg_bindir


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    weight: int = 1


@dataclass
class Latency:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None

    def as_dict(self) -> dict:
        return {"count": self.count, "p50_ms": _r(self.p50), "p95_ms": _r(self.p95), "p99_ms": _r(self.p99),
                "mean_ms": _r(self.mean), "max_ms": _r(self.max)}


@dataclass
class Run:
    scripts: list[str]
    clients: int
    duration: float
    wall_started: float
    wall_ended: float
    tps: float | None
    transactions: int                 # successful
    failed: int
    failures: dict                    # failed transactions by kind (deadlock, serialization)
    aborted_clients: int
    exit_code: int
    # (start epoch s, end epoch s, latency ms, script index) of every successful transaction
    samples: list[tuple[float, float, float, int]] = field(repr=False, default_factory=list)
    stderr_tail: str = ""

    @property
    def errors(self) -> int:
        exit_failed = self.exit_code not in (0,) and not self.aborted_clients
        return self.failed + self.aborted_clients + (1 if exit_failed else 0)

    def rate(self, script: str | None = None) -> float:
        """Successful transactions per second (of one script, or all)."""
        if not self.samples:
            return 0.0
        if script is None:
            count = len(self.samples)
        else:
            count = sum(1 for s in self.samples if s[3] == self.scripts.index(script))
        return count / self.duration

    def latency(self, script: str | None = None, window: tuple[float, float] | None = None) -> Latency:
        index = None if script is None else self.scripts.index(script)
        values = [s[2] for s in self.samples
                  if (index is None or s[3] == index)
                  and (window is None or (s[1] >= window[0] and s[0] <= window[1]))]
        return latency_of(values)

    def summary(self) -> dict:
        out = {"clients": self.clients, "duration_s": self.duration, "transactions": self.transactions,
               "tps": _r(self.rate()), "pgbench_tps": _r(self.tps), "failed": self.failed, "failures": self.failures,
               "aborted_clients": self.aborted_clients, "exit_code": self.exit_code,
               "latency": self.latency().as_dict()}
        if len(self.scripts) > 1:
            out["by_script"] = {name: {"tps": _r(self.rate(name)), "latency": self.latency(name).as_dict()}
                                for name in self.scripts}
        return out


def latency_of(values: list[float]) -> Latency:
    if not values:
        return Latency(0, None, None, None, None, None)
    ordered = sorted(values)
    return Latency(len(ordered), percentile(ordered, 50), percentile(ordered, 95), percentile(ordered, 99),
                   sum(ordered) / len(ordered), ordered[-1])


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def pgbench_path() -> Path:
    return find_pg_bindir() / "pgbench"


def run(url: str, scripts: list[Script], *, clients: int, duration: float, workdir: Path,
        transactions_per_client: int | None = None, on_start=None) -> Run:
    """Run pgbench; `on_start(popen)` is called once it is running (the backlog workload
    starts its sweep from there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("pgbench_log*"):
        old.unlink()
    args = [str(pgbench_path()), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients)),
            "--log", "--log-prefix", str(workdir / "pgbench_log"), "--failures-detailed"]
    if transactions_per_client is not None:
        args += ["-t", str(transactions_per_client)]
    else:
        args += ["-T", str(max(1, round(duration)))]
    for script in scripts:
        path = workdir / f"{script.name}.sql"
        path.write_text(script.text)
        args += ["-f", f"{path}@{script.weight}"]
    args.append(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    started = time.time()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=workdir)
    if on_start is not None:
        on_start(process)
    stdout, stderr = process.communicate()
    ended = time.time()
    (workdir / "pgbench.out").write_text(stdout + "\n--- stderr ---\n" + stderr)
    samples, failures = _read_logs(workdir)
    failed = _number(r"number of failed transactions: (\d+)", stdout)
    aborted = len(re.findall(r"client \d+ aborted", stderr))
    tps = _float(r"tps = ([\d.]+) \(without initial connection time\)", stdout)
    measured = duration if transactions_per_client is None else _span(samples)
    return Run(scripts=[s.name for s in scripts], clients=clients, duration=measured, wall_started=started,
               wall_ended=ended, tps=tps, transactions=len(samples),
               failed=max(failed or 0, sum(failures.values())), failures=dict(failures), aborted_clients=aborted,
               exit_code=process.returncode, samples=samples,
               stderr_tail="\n".join(stderr.strip().splitlines()[-15:]))


def _read_logs(workdir: Path) -> tuple[list[tuple[float, float, float, int]], Counter]:
    samples = []
    failed = Counter()
    for path in sorted(workdir.glob("pgbench_log.*")):
        with open(path) as log:
            for line in log:
                parts = line.split()
                if len(parts) < 6:
                    continue
                if not parts[2].isdigit():
                    if parts[2] != "skipped":
                        failed[parts[2]] += 1          # serialization / deadlock / failed
                    continue
                latency_us = int(parts[2])
                end = int(parts[4]) + int(parts[5]) / 1e6
                samples.append((end - latency_us / 1e6, end, latency_us / 1000.0, int(parts[3])))
    samples.sort()
    return samples, failed


def _span(samples) -> float:
    if not samples:
        return 0.0
    return max(s[1] for s in samples) - min(s[0] for s in samples)


def _number(pattern: str, text: str) -> int | None:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else None


def _float(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None
