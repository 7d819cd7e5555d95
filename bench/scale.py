"""Benchmark scales: how much data each workload runs against and for how long.

`full` is the issue's table (5,000 staff, 10,000 queued, 10k/100k/1M active, 16 clients);
`smoke` is the same workloads on tiny data for a few seconds each: it proves the harness and
the invariants in CI, its figures mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Scale:
    name: str
    duration: float              # seconds per pgbench run
    clients: int
    staff: int                   # the "5,000 staff" of the issue
    queued: int                  # queue depth for the queue read and the saturated run
    sweep_active: tuple[int, ...]  # steady-state sweep sizes (the last is skipped by --skip-large when >= 1M)
    sweep_ticks: int             # timed sweep calls per size (median reported)
    backlog_active: int          # active assignments behind the backlog sweep
    backlog: int                 # escalations due at once
    growth_staff: tuple[int, ...]
    growth_duration: float
    plan_runs: int
    hotspot_staff: int = 3
    evaluate_targets: bool = True

    def with_overrides(self, duration: float | None, clients: int | None) -> Scale:
        scale = self
        if duration is not None:
            scale = replace(scale, duration=duration, growth_duration=min(scale.growth_duration, duration))
        if clients is not None:
            scale = replace(scale, clients=clients)
        return scale


SCALES = {
    "full": Scale(
        name="full", duration=20.0, clients=16, staff=5000, queued=10000,
        sweep_active=(10_000, 100_000, 1_000_000), sweep_ticks=7,
        backlog_active=100_000, backlog=20_000,
        growth_staff=(500, 5000, 50_000), growth_duration=10.0, plan_runs=5),
    "smoke": Scale(
        name="smoke", duration=2.0, clients=4, staff=60, queued=150,
        sweep_active=(300, 1500), sweep_ticks=3,
        backlog_active=600, backlog=150,
        growth_staff=(30, 120), growth_duration=1.0, plan_runs=1, evaluate_targets=False),
}

LARGE = 1_000_000
