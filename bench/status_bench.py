"""How long `rulesctl status` takes on a database with 1,000,000 assignments (target:
under 200 ms).

    python -m bench.status_bench [--runs N] [--assignments N] [--active N] [--keep]

A throwaway local cluster is started in a temp directory, the shipped policy installed and the
benchmark's data loaded (bench/data.py: 50,000 staff, 1,000,000 assignments arrived over the
last three days with their SLA deadlines and escalation levels as the engine would have them
now, 5,000 queued items); all but --active of them then completed (at 60-130% of their
deadline: some late) and moved back 0-89 days, as three months of history; one escalation event
per level each has passed. The cluster's application database is used, where pg_cron lives: the
shipped jobs run meanwhile, as on a live system, and status reads their runs. Then VACUUM
ANALYZE, as autovacuum leaves a settled table: without it an index-only scan still visits the
heap. With DATABASE_URL set, that database is read as it is (no loading).

Each run is one `read_status` on a fresh connection, timed as a whole and by part (figures =
the pipelined batch, jobs_and_ledger, drift). One warm-up run is not counted. Prints median,
p95, min and max and the conditions. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import psycopg

from bench.plan_bench import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent
PARTS = ("figures", "jobs_and_ledger", "drift")

# One event per passed level, escalated when the level fell due (spread over the arrival span);
# the sla-monitoring job, running meanwhile in this database, may have written some already.
EVENTS_SQL = """
INSERT INTO escalation_events (assignment_id, level, reason, recipient_id, recipient_role, escalated_at)
SELECT a.id, l.level, l.reason, a.assignee_id, 'assignee',
       a.arrived_at + (a.sla_deadline - a.arrived_at) * l.level / (a.escalation_level + 1)
FROM assignments a
CROSS JOIN LATERAL (SELECT g AS level, CASE WHEN g = 1 THEN 'sla_warning' ELSE 'sla_breach' END::escalation_reason
                    AS reason FROM generate_series(1, a.escalation_level) g) l
WHERE a.escalation_level > 0
ON CONFLICT DO NOTHING
"""


# Everything but `active` of the loaded work completed, as history: at a hashed share of its
# deadline (60%-130%: some late), and moved back 0-89 days (a hashed whole number of days), so
# the history spans three months as a live system's would. Triggers off (superuser); staff
# counters are recomputed after.
HISTORY_DAYS = 90
COMPLETE_SQL = """
UPDATE assignments a SET status = 'completed', next_check_at = NULL,
       arrived_at = a.arrived_at - x.back, assigned_at = a.assigned_at - x.back,
       sla_deadline = a.sla_deadline - x.back, created_at = a.created_at - x.back,
       updated_at = a.updated_at - x.back,
       completed_at = least(now(), a.arrived_at + (a.sla_deadline - a.arrived_at) * (0.6 + bench.h(x.n, 60) / 1430.0))
                      - x.back
FROM (SELECT id, n, make_interval(days => bench.h(n, 61) %% %(days)s) AS back
      FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM assignments) numbered) x
WHERE x.id = a.id AND x.n > %(active)s
"""


def load(url: str, total: int, active: int, log=print) -> None:
    from bench.data import Dataset, Loader
    from bench.database import install
    install(url, REPO_ROOT, log=log)
    Loader(url, log=log).load(Dataset(staff=50_000, wip=max(5, -(-total // 45_000)), active=total, queued=5_000))
    with psycopg.connect(url, autocommit=True) as conn:
        if active < total:
            conn.execute("SET session_replication_role = replica")
            done = conn.execute(COMPLETE_SQL, {"active": active, "days": HISTORY_DAYS}).rowcount
            conn.execute("RESET session_replication_role")
            conn.execute("""UPDATE staff_profiles s SET current_assignment_count = coalesce(c.load, 0)
                            FROM staff_profiles t LEFT JOIN (
                              SELECT assignee_id, sum(capacity_weight) AS load FROM assignments
                              WHERE status IN ('assigned', 'in_progress', 'on_hold') GROUP BY assignee_id) c
                              ON c.assignee_id = t.id
                            WHERE s.id = t.id AND s.current_assignment_count <> coalesce(c.load, 0)""")
            log(f"  {done:,} assignments completed (history over {HISTORY_DAYS} days), {active:,} left active")
        clock = time.perf_counter()
        events = conn.execute(EVENTS_SQL).rowcount
        log(f"  {events:,} escalation events in {time.perf_counter() - clock:.1f} s")
        conn.execute("VACUUM ANALYZE")


def configure(cluster) -> None:
    """The benchmark cluster's own settings (bench/database.py: 1 GB of shared buffers, so the
    million assignments and their indexes stay in memory), applied by a restart."""
    from psycopg import sql

    from bench.database import LOCAL_SETTINGS
    with psycopg.connect(cluster.url_for("postgres"), autocommit=True) as conn:
        for name, value in LOCAL_SETTINGS.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    cluster.stop()
    cluster.start()


def conditions(url: str) -> list[str]:
    from engine import __version__
    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
        shared = conn.execute("SHOW shared_buffers").fetchone()[0]
        active, total, queued, events, staff = conn.execute(
            "SELECT (SELECT count(*) FROM assignments WHERE status IN ('assigned', 'in_progress', 'on_hold')), "
            "(SELECT count(*) FROM assignments), (SELECT count(*) FROM assignment_queue), "
            "(SELECT count(*) FROM escalation_events), (SELECT count(*) FROM staff_profiles)").fetchone()
    return [f"rulesctl {__version__}, PostgreSQL {server} (shared_buffers {shared}), the status connection new "
            f"each run",
            f"data: {active:,} active of {total:,} assignments, {staff:,} staff, {queued:,} queued, "
            f"{events:,} escalation events",
            f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f} (other work on the host slows every part)"]


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a server backend has used so far, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, runs: int) -> int:
    from engine.operations.status import read_status, read_status_on
    status = read_status(url)                                   # warm-up, not counted
    totals: list[float] = []
    parts: dict[str, list[float]] = {part: [] for part in PARTS}
    for _ in range(runs):
        clock = time.perf_counter()
        status = read_status(url)
        totals.append(time.perf_counter() - clock)
        for part in PARTS:
            parts[part].append(status.timings.get(part, float("nan")))
    # The server's own work, which the host's load does not inflate: the backend's CPU time
    # over the same reads on one connection (clock ticks are 10 ms: summed over all runs),
    # without parallel workers, whose CPU time is not the backend's.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.autocommit = False
        pid = conn.info.backend_pid
        read_status_on(conn)
        before = backend_cpu_seconds(pid)
        for _ in range(runs):
            read_status_on(conn)
        after = backend_cpu_seconds(pid)
    cpu_ms = None if before is None or after is None else (after - before) * 1000 / runs
    print(f"rulesctl status, {runs} runs (after one warm-up)")
    for line in conditions(url):
        print(f"  {line}")
    print(f"  figures read: {status.sla}, escalations 24 h {sum(status.escalations_24h.values()):,}, "
          f"queued {status.totals()['queue_depth']:,}, drift {status.drift}")
    print(f"  {'':<16} {'median':>9} {'p95':>9} {'min':>9} {'max':>9}")
    for name, values in [("total", totals)] + [(part, parts[part]) for part in PARTS]:
        print(f"  {name:<16} " + " ".join(f"{v * 1000:>7.1f}ms" for v in
                                           (statistics.median(values), percentile(values, 0.95),
                                            min(values), max(values))))
    if cpu_ms is not None:
        print(f"  server CPU per status (its backend, /proc, no parallel workers): {cpu_ms:.1f} ms")
    median = statistics.median(totals)
    print(f"goal (status under 200 ms): {'met' if median < 0.2 else 'NOT met'} — median {median * 1000:.0f} ms")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    parser.add_argument("--assignments", type=int, default=1_000_000, help="assignments to load (default 1M)")
    parser.add_argument("--active", type=int, default=50_000,
                        help="of them still active, the rest completed history (default 50,000; "
                             "--active 1000000 for the worst case, every one running)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway cluster (prints its URL)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    url = os.environ.get("DATABASE_URL")
    if url:
        return run(url, args.runs)

    from bench.throwaway import throwaway_cluster
    with throwaway_cluster("rulesctl-status-bench-", args.keep) as (url, _, cluster):
        configure(cluster)
        clock = time.perf_counter()
        load(url, args.assignments, min(args.active, args.assignments),
             log=lambda message: print(message, file=sys.stderr, flush=True))
        print(f"loaded in {time.perf_counter() - clock:.0f} s", file=sys.stderr)
        return run(url, args.runs)


if __name__ == "__main__":
    sys.exit(main())
