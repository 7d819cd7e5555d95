"""`rulesctl simulate` in one call. Input: the proposed policy (and a baseline), where the workload
and the staff come from, a seed, and the server for the scratch databases (None: a private
throwaway cluster). Output: a `Simulation` — the JSON contract of issue 19 (`summary`), each
policy's chart series and invariant violations.

Each policy gets its own scratch database (scratch.py); the two are installed and replayed in two
threads at once (the work runs in the two PostgreSQL backends, so the machine's cores share it).
The same workload and staff go to both.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from engine.compiler.objects import SqlObject
from engine.database.connect import connect
from engine.policy.model import Policy
from engine.simulate import staff as staff_source
from engine.simulate import workload as workload_source
from engine.simulate.metrics import measure
from engine.simulate.replay import replay
from engine.simulate.scratch import KeptCluster, ScratchCluster, ScratchDatabase
from engine.simulate.staff import Person
from engine.simulate.workload import Workload

DEFAULT_START = dt.datetime(2027, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=3)))   # a Sunday in Riyadh
Report = Callable[[str, int, int, int], None]            # (policy label, day, days, items filed)


@dataclass(frozen=True)
class PolicyUnderTest:
    label: str                        # baseline | proposed
    rules_dir: Path
    policy: Policy
    objects: list[SqlObject]


@dataclass(frozen=True)
class WorkloadSpec:
    """Where the arrivals and the people come from."""
    file: Path | None = None
    days: int | None = None           # synthetic when no file
    per_day: int = workload_source.DEFAULT_PER_DAY
    start: dt.datetime = DEFAULT_START
    staff_file: Path | None = None
    history_url: str | None = None    # --from-history: this database's recent arrivals and staff (read-only)
    history_days: int | None = None


@dataclass
class Simulation:
    summary: dict[str, Any]
    series: dict[str, dict[str, Any]] = field(default_factory=dict)
    violations: dict[str, dict[str, int]] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)      # label -> URL, when kept (--keep)
    cluster: KeptCluster | None = None                            # the private cluster, when kept


def simulate(server_url: str | None, policies: list[PolicyUnderTest], spec: WorkloadSpec, seed: int,
             keep: bool = False, progress: Report | None = None,
             workload: Workload | None = None, people: list[Person] | None = None) -> Simulation:
    """server_url: the server the scratch databases go on; None starts a private throwaway
    cluster for them (scratch.ScratchCluster)."""
    clock = time.perf_counter()
    # The scratch databases are dropped (WITH FORCE, ending their backends), or their private
    # cluster stopped, before the pool waits for its threads: an interrupted run stops at once
    # instead of replaying to the end.
    with ThreadPoolExecutor(max_workers=len(policies)) as pool, ExitStack() as stack:
        private: ScratchCluster | None = None
        if server_url is None:
            private = stack.enter_context(ScratchCluster(keep))
            server = private.url
        else:
            server = server_url
        # In a private cluster the databases go with the cluster: no DROP one by one.
        scratch = [stack.enter_context(ScratchDatabase(server, p.label, keep or private is not None))
                   for p in policies]
        # The first install alone: on a fresh server both would create the cluster-wide roles
        # (anon, authenticated, ...) at once, and one fails on the duplicate name.
        def install(database: ScratchDatabase, subject: PolicyUnderTest) -> None:
            database.install(subject.policy, subject.objects, subject.rules_dir)

        install(scratch[0], policies[0])
        list(pool.map(install, scratch[1:], policies[1:]))
        installed = time.perf_counter()
        first = policies[0]
        workload = workload or _workload(first.policy, spec, seed)
        if people is None:
            with connect(scratch[0].url) as routing:
                people = _people(first.policy, workload, spec, routing, seed)
        runs = list(pool.map(lambda pair: _run_one(pair[0].url, pair[1], workload, people, progress),
                             zip(scratch, policies, strict=True)))
    by_label = {p.label: run for p, run in zip(policies, runs, strict=True)}
    figures = {label: run[0] for label, run in by_label.items()}
    summary: dict[str, Any] = {
        "seed": seed,
        "workload": {"items": len(workload.arrivals), "days": workload.days, "source": workload.source,
                     "staff": len(people)},
        "policies": figures,
        "timings": {"install_s": round(installed - clock, 3), "total_s": round(time.perf_counter() - clock, 3),
                    **{label: run[3] for label, run in by_label.items()}},
    }
    if "baseline" in figures and "proposed" in figures:
        summary["delta"] = delta(figures["proposed"], figures["baseline"])
    return Simulation(summary, {label: run[2] for label, run in by_label.items()},
                      {label: run[1] for label, run in by_label.items()},
                      {p.label: private.cluster.url_for(s.name) if private else s.url
                       for p, s in zip(policies, scratch, strict=True)} if keep else {},
                      private.kept() if private else None)


def _workload(policy: Policy, spec: WorkloadSpec, seed: int) -> Workload:
    if spec.file is not None:
        return workload_source.from_file(spec.file, spec.days)
    if spec.history_url is not None and spec.history_days:
        with _read_only(spec.history_url) as conn:
            return workload_source.from_history(conn, spec.history_days)
    return workload_source.synthetic(policy, spec.days or 7, seed, spec.start.astimezone(dt.UTC), spec.per_day)


def _people(policy: Policy, workload: Workload, spec: WorkloadSpec, routing: psycopg.Connection,
            seed: int) -> list[Person]:
    if spec.staff_file is not None:
        return staff_source.from_file(spec.staff_file)
    if spec.history_url is not None:
        with _read_only(spec.history_url) as conn:
            return staff_source.from_database(conn)
    return staff_source.synthetic(policy, workload, routing, seed)


def _read_only(url: str) -> psycopg.Connection:
    """A connection that cannot write: the live database is only ever read."""
    return connect(url, options="-c default_transaction_read_only=on")


def _run_one(url: str, subject: PolicyUnderTest, workload: Workload, people: list[Person],
             progress: Report | None) -> tuple[dict, dict, dict, dict]:
    report = (lambda day, days, filed: progress(subject.label, day, days, filed)) if progress else None
    timings = replay(url, subject.policy, workload, people, report)
    started = time.perf_counter()
    with connect(url, autocommit=True) as conn:
        figures, violations, series = measure(conn, workload.end)
    rate = round(len(workload.arrivals) / timings.replay_s, 1) if timings.replay_s else None
    return figures, violations, series, {"load_s": timings.load_s, "replay_s": timings.replay_s,
                                         "measure_s": round(time.perf_counter() - started, 3),
                                         "events": timings.events, "arrivals_per_s": rate,
                                         "backend_cpu_s": timings.backend_cpu_s, "vacuum_s": timings.vacuum_s}


def delta(proposed: Any, baseline: Any) -> Any:
    """proposed − baseline, figure by figure; None where either side has no figure (a unit only
    one policy uses, a wait when nothing waited)."""
    if isinstance(proposed, dict) or isinstance(baseline, dict):
        proposed, baseline = proposed or {}, baseline or {}
        return {key: delta(proposed.get(key), baseline.get(key)) for key in sorted(set(proposed) | set(baseline))}
    if proposed is None or baseline is None or isinstance(proposed, bool) or isinstance(baseline, bool):
        return None
    difference = proposed - baseline
    return round(difference, 4) if isinstance(difference, float) else difference
