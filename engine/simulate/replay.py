"""The replay. Input: a scratch database with a policy and the replay driver installed, a
workload and the staff. Output: the database at the end of the run (metrics.py reads it), and
how long it took.

Virtual time: the driver (sql/replay.sql) sets `rulesctl.now` to each event's instant and calls
the engine there, committing every `commit_every` events. Python loads the inputs, calls it one
simulated hour at a time (vacuuming between, see VACUUM_EVERY; an hour with a refused arrival is
replayed again guarded, see _replay_until) and reports progress between days.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from croniter import croniter
from psycopg.types.json import Jsonb

from engine.database.connect import connect
from engine.policy.model import Policy
from engine.simulate.staff import Person, availability_changes
from engine.simulate.workload import Workload

SAMPLE_EVERY = dt.timedelta(hours=1)
COMMIT_EVERY = 200
# The replay runs a hundred times faster than real time, but autovacuum visits a database about
# once a real minute: between visits each staff row's load would change thousands of times, and
# the picks would walk the dead versions in the pick indexes (per-call costs doubled over a
# month). Vacuuming the tables every busy path updates once per simulated hour keeps them as
# lean as a production database's, where a minute holds a handful of changes per person.
# Assignments only once a simulated day: each is updated a few times in its life and index scans
# mark its dead entries themselves, while an hourly vacuum of the growing table and its seven
# indexes took a tenth of a month's replay (32 s of 300) and saved no CPU (measured over 6 days).
VACUUM_EVERY = dt.timedelta(hours=1)
VACUUMED = "staff_profiles, assignment_queue, rulesctl_sim.running"
VACUUMED_DAILY = "assignments"
Progress = Callable[[int, int, int], None]          # (day, days, items filed so far)


@dataclass(frozen=True)
class ReplayTimings:
    load_s: float
    replay_s: float
    events: int
    backend_cpu_s: float | None      # the replaying backend's own CPU time (None unless the server is local)
    vacuum_s: float = 0.0            # of replay_s, the vacuums between simulated hours and days


def backend_cpu_s(pid: int) -> float | None:
    """CPU seconds a local server process has used (/proc; None elsewhere): unlike wall time it
    does not grow when other work shares the machine."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sweep_interval_s(policy: Policy) -> float:
    """How often the SLA sweep runs, from jobs.yaml ("N seconds" or a cron expression)."""
    for job in policy.jobs:
        if job.function == "sla_check_and_escalate":
            seconds = re.fullmatch(r"\s*(\d+)\s*seconds?\s*", job.schedule)
            if seconds:
                return float(seconds.group(1))
            fires = croniter(job.schedule, dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
            first = fires.get_next(dt.datetime)
            return (fires.get_next(dt.datetime) - first).total_seconds()
    return 30.0


def replay(url: str, policy: Policy, workload: Workload, people: list[Person],
           progress: Progress | None = None) -> ReplayTimings:
    started = time.perf_counter()
    with connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")          # a scratch database: nothing to keep
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [workload.start.isoformat()])
        conn.execute("SELECT upsert_staff_profile(p) FROM unnest(%s::jsonb[]) WITH ORDINALITY AS x(p, n) ORDER BY n",
                     [[Jsonb(p.profile()) for p in people]])
        _load(conn, workload, people, policy)
        loaded = time.perf_counter()
        cpu_before = backend_cpu_s(conn.info.backend_pid)
        vacuumed = 0.0
        days = max(1, -(-(workload.end - workload.start) // dt.timedelta(days=1)))
        for day in range(1, days + 1):
            until = min(workload.start + dt.timedelta(days=day), workload.end)
            step = workload.start + dt.timedelta(days=day - 1)
            while step < until:
                step = min(step + VACUUM_EVERY, until)
                _replay_until(conn, step)
                vacuumed += _vacuum(conn, VACUUMED)
            vacuumed += _vacuum(conn, VACUUMED_DAILY)
            if progress:
                progress(day, days, _state(conn, "next_arrival - 1"))
        events = _state(conn, "events")
        cpu_after = backend_cpu_s(conn.info.backend_pid)
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [workload.end.isoformat()])
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    return ReplayTimings(round(loaded - started, 3), round(time.perf_counter() - loaded, 3), events, cpu,
                         round(vacuumed, 3))


def _replay_until(conn: psycopg.Connection, until: dt.datetime) -> None:
    """Replay up to `until`. The driver runs arrivals unguarded: one the engine refuses aborts the
    call back to its last commit, and the same stretch is replayed again with each arrival in a
    subtransaction that records the refusal (an error of anything else is raised again there)."""
    try:
        conn.execute("CALL rulesctl_sim.replay_until(%s)", [until])
    except psycopg.Error:
        conn.execute("CALL rulesctl_sim.replay_until(%s, true)", [until])


def _vacuum(conn: psycopg.Connection, tables: str) -> float:
    """Vacuum the tables; how long it took."""
    started = time.perf_counter()
    conn.execute(f"VACUUM {tables}")
    return time.perf_counter() - started


def _state(conn: psycopg.Connection, column: str) -> int:
    row = conn.execute(f"SELECT {column} FROM rulesctl_sim.state").fetchone()
    assert row is not None
    return int(row[0])


def _load(conn: psycopg.Connection, workload: Workload, people: list[Person], policy: Policy) -> None:
    with conn.transaction():
        with conn.cursor().copy("COPY rulesctl_sim.items (work_item_id, handling) FROM STDIN") as copy:
            for a in workload.arrivals:
                copy.write_row((a.work_item_id, dt.timedelta(minutes=a.handling_minutes)))
        with conn.cursor().copy("COPY rulesctl_sim.arrivals (seq, at, request) FROM STDIN") as copy:
            for n, a in enumerate(workload.arrivals, start=1):
                copy.write_row((n, a.arrived_at, Jsonb(a.request())))
        with conn.cursor().copy("COPY rulesctl_sim.availability (seq, at, request) FROM STDIN") as copy:
            for n, (at, request) in enumerate(availability_changes(people), start=1):
                copy.write_row((n, at, Jsonb(request)))
        first_day = workload.start.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
        conn.execute("""INSERT INTO rulesctl_sim.state (next_sample_at, sample_every, sweep_every_s, next_fallback_at,
                                                         fallback_every, next_snapshot_at, commit_every)
                        VALUES (%s, %s, %s, %s, interval '1 minute', %s, %s)""",
                     [workload.start, SAMPLE_EVERY, sweep_interval_s(policy), workload.start, first_day, COMMIT_EVERY])
        conn.execute("ANALYZE rulesctl_sim.items, rulesctl_sim.arrivals, rulesctl_sim.availability")
