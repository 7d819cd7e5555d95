"""The benchmark's workloads. Each loads (or reuses) its dataset, drives the engine's SQL API,
and returns its measured values; the harness checks the invariants after each one.

Every workload records `values` (numbers, compared between commits and against targets),
`conditions` (staff, active, queued before/after, clients, duration) and `details`.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg

from . import pgbench
from .data import Dataset, Loader, counts, with_wip_for
from .relay import OutboxRelay
from .scale import LARGE, Scale

DUE_PER_CALL = 10      # "few rows due" for the steady-state sweep

# -- pgbench scripts ---------------------------------------------------------------------

PICK = """\\set c random(1, 200)
SELECT e.staff_id FROM bench.pick_cases pc
  CROSS JOIN LATERAL find_eligible_staff_for_assignment(pc.unit_ids, pc.skills, pc.min_rank, pc.weight, pc.strategy) e
WHERE pc.id = :c;
"""

ASSIGN = """\\set t random(1, 1000)
\\set p random(1, 1000)
\\set s random(1, 1000)
SELECT auto_assign(bench.item('{mix}', :t, :p, :s));
"""

FLOOR = """\\set t random(1, 1000)
\\set p random(1, 1000)
\\set s random(1, 1000)
SELECT bench.floor_assign(bench.item('standard', :t, :p, :s));
"""

COMPLETE = """\\set n random({lo}, {hi})
SELECT bench.complete_one({lo}, {hi}, :n);
"""

QUEUE_READ_UNIT = """\\set u random(1, {n})
SELECT * FROM queue_head(('{units}'::text[])[:u], 50);
"""

QUEUE_READ_ALL = """SELECT * FROM queue_head(NULL, 50);
"""

QUEUE_READ_UNIT_SQL = "SELECT * FROM queue_head($1, 50)"
QUEUE_READ_ALL_SQL = "SELECT * FROM queue_head(NULL, 50)"


def assign_script(mix: str = "standard") -> pgbench.Script:
    return pgbench.Script("auto_assign", ASSIGN.format(mix=mix))


def complete_script(lo: int, hi: int) -> pgbench.Script:
    return pgbench.Script("complete_assignment", COMPLETE.format(lo=lo, hi=hi))


@dataclass
class Outcome:
    name: str
    values: dict = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    client_errors: int = 0
    error_notes: list[str] = field(default_factory=list)
    skipped: str | None = None


class Context:
    """What every workload needs: the database, the scale, a loader, a scratch directory."""

    def __init__(self, url: str, scale: Scale, workdir: Path, repo_root: Path, *, skip_large: bool,
                 log=print):
        self.url = url
        self.scale = scale
        self.workdir = workdir
        self.repo_root = repo_root
        self.skip_large = skip_large
        self.log = log
        self.loader = Loader(url, log=log)
        self.sweep_series: dict[int, float] = {}

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, **kwargs)

    def counts(self) -> dict:
        with self.connect() as conn:
            return counts(conn)

    def server_now(self):
        with self.connect() as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def pgbench(self, name: str, scripts: list[pgbench.Script], *, clients: int | None = None,
                duration: float | None = None, on_start=None) -> pgbench.Run:
        clients = clients or self.scale.clients
        duration = duration or self.scale.duration
        weights = " + ".join(f"{s.name}@{s.weight}" for s in scripts)
        self.log(f"  pgbench {weights}: {clients} clients, {duration:g} s")
        with OutboxRelay(self.url) as relay:        # as `rulesctl serve` would, all along
            run = pgbench.run(self.url, scripts, clients=clients, duration=duration,
                              workdir=self.workdir / name, on_start=on_start)
        lat = run.latency()
        self.log(f"  -> {run.rate():,.0f} tx/s, p50 {_ms(lat.p50)} p99 {_ms(lat.p99)}, "
                 f"failed {run.failed}, aborted clients {run.aborted_clients}; {relay.sent:,} notifications relayed")
        if relay.error:
            raise RuntimeError(f"the notification relay failed: {relay.error}")
        if run.exit_code != 0 or run.aborted_clients:
            self.log("  pgbench said:\n    " + run.stderr_tail.replace("\n", "\n    "))
        return run

    def activity_since(self, since) -> dict:
        """What the clients did to the tables since `since` (server time)."""
        with self.connect() as conn:
            row = conn.execute("""
                SELECT count(*) FILTER (WHERE decision ->> 'source' IS DISTINCT FROM 'bench-load'),
                       count(*) FILTER (WHERE decision ->> 'source' = 'queue'),
                       count(*) FILTER (WHERE decision ->> 'source' = 'auto_assign')
                FROM assignments WHERE created_at >= %s""", (since,)).fetchone()
            completed = conn.execute("SELECT count(*) FROM assignments WHERE completed_at >= %s",
                                     (since,)).fetchone()[0]
            queued = conn.execute("SELECT count(*) FROM assignment_queue WHERE created_at >= %s",
                                  (since,)).fetchone()[0]
        return {"assignments_created": row[0], "dequeued": row[1], "assigned_on_arrival": row[2],
                "completed": completed, "queued_on_arrival_still_waiting": queued}


def _duration_text(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _run_conditions(ctx: Context, before: dict, after: dict, run: pgbench.Run | None, dataset: Dataset | None) -> dict:
    out = {"staff": before["staff"], "active_before": before["active"], "active_after": after["active"],
           "queued_before": before["queued"], "queued_after": after["queued"]}
    if run is not None:
        out.update({"clients": run.clients, "duration_s": run.duration})
    if dataset is not None:
        out["dataset"] = dataset.describe()
    return out


def _pgbench_outcome(name: str, run: pgbench.Run) -> Outcome:
    outcome = Outcome(name)
    outcome.client_errors = run.errors
    if run.errors:
        kinds = ", ".join(f"{n} {kind}" for kind, n in run.failures.items()) or "none in the log"
        outcome.error_notes.append(f"pgbench: {run.failed} failed transactions ({kinds}), {run.aborted_clients} "
                                   f"aborted clients, exit {run.exit_code}: {run.stderr_tail[-500:]}")
    outcome.details["pgbench"] = run.summary()
    return outcome


# -- workloads ---------------------------------------------------------------------------

def plan(ctx: Context) -> Outcome:
    """`rulesctl plan` on the shipped policy against the in-sync benchmark database."""
    from engine.migrate.plan import build_plan
    from engine.project import DEFAULT_TEMPLATES, build

    outcome = Outcome("plan")
    runs = []
    cwd = os.getcwd()
    os.chdir(ctx.repo_root)
    try:
        for _ in range(ctx.scale.plan_runs):
            clock = time.perf_counter()
            policy, objects = build(Path("rules"), parse_check=False)    # as `rulesctl plan` does
            built = time.perf_counter() - clock
            result = build_plan(ctx.url, policy, objects, DEFAULT_TEMPLATES)
            total = time.perf_counter() - clock
            runs.append({"validate_render": built, **result.timings, "total": total, "steps": len(result.steps)})
    finally:
        os.chdir(cwd)
    cli = []
    for _ in range(max(1, min(3, ctx.scale.plan_runs))):
        clock = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", "from engine.cli import main; main()", "plan",
                               "--database-url", ctx.url], cwd=ctx.repo_root, capture_output=True, text=True)
        cli.append(time.perf_counter() - clock)
        if done.returncode != 0:
            outcome.error_notes.append(f"rulesctl plan exited {done.returncode} (0 = in sync): "
                                       f"{(done.stdout + done.stderr)[-800:]}")
            outcome.client_errors += 1
    steps = max(r["steps"] for r in runs)
    if steps:
        outcome.error_notes.append(f"the database is not in sync: the plan has {steps} steps")
        outcome.client_errors += 1

    def med(key):
        return statistics.median(r[key] for r in runs if key in r) * 1000

    outcome.values = {"total_ms": med("total"), "validate_render_ms": med("validate_render"),
                      "introspect_ms": med("introspect"), "desired_ms": med("render"), "diff_ms": med("diff"),
                      "cli_wall_ms": statistics.median(cli) * 1000, "steps": steps}
    outcome.conditions = {"runs": len(runs), "cli_runs": len(cli), "objects": len(objects)}
    outcome.details = {"runs": runs, "cli_wall_s": cli}
    ctx.log(f"  plan {outcome.values['total_ms']:.0f} ms in process, "
            f"rulesctl plan {outcome.values['cli_wall_ms']:.0f} ms wall")
    return outcome


def pick(ctx: Context) -> Outcome:
    ds = Dataset(staff=ctx.scale.staff, load=0.5)
    ctx.loader.ensure(ds)
    before = ctx.counts()
    run = ctx.pgbench("pick", [pgbench.Script("find_eligible", PICK)])
    outcome = _pgbench_outcome("pick", run)
    lat = run.latency()
    outcome.values = {"p50_ms": lat.p50, "p95_ms": lat.p95, "p99_ms": lat.p99, "rate": run.rate()}
    outcome.conditions = _run_conditions(ctx, before, ctx.counts(), run, ds)
    outcome.conditions["call"] = ("find_eligible_staff_for_assignment(units, skills, rank, weight, strategy)"
                                  " of the item mix")
    return outcome


def _assign_dataset(staff: int, duration: float) -> Dataset:
    """Staff with WIP raised so that every call of a run this long is assigned, not queued."""
    calls = int(10_000 * duration * 1.5)       # room for the prototype's ceiling and then some
    return with_wip_for(Dataset(staff=staff, active=2 * staff), calls)


def assign(ctx: Context, staff: int | None = None, duration: float | None = None, name: str = "assign",
           single_client: bool = False) -> Outcome:
    staff = staff or ctx.scale.staff
    duration = duration or ctx.scale.duration
    ds = _assign_dataset(staff, duration)
    ctx.loader.ensure(ds, fresh=True)
    ctx.loader.dirty = True
    before = ctx.counts()
    since = ctx.server_now()
    run = ctx.pgbench(name, [assign_script()], duration=duration)
    outcome = _pgbench_outcome(name, run)
    activity = ctx.activity_since(since)
    lat = run.latency()
    outcome.values = {"rate": run.rate(), "p50_ms": lat.p50, "p95_ms": lat.p95, "p99_ms": lat.p99}
    outcome.details["activity"] = activity
    if single_client:
        run1 = ctx.pgbench(name + "-1client", [assign_script()], clients=1, duration=max(1.0, duration / 2))
        lat1 = run1.latency()
        outcome.values.update({"one_client_p50_ms": lat1.p50, "one_client_p99_ms": lat1.p99,
                               "one_client_rate": run1.rate()})
        outcome.details["pgbench_one_client"] = run1.summary()
        outcome.client_errors += run1.errors
    outcome.conditions = _run_conditions(ctx, before, ctx.counts(), run, ds)
    outcome.conditions["wip"] = f"personal WIP {ds.wip} for everyone, so items are assigned, not queued"
    outcome.values["queued_share"] = activity["queued_on_arrival_still_waiting"] / max(1, run.transactions)
    return outcome


def floor(ctx: Context) -> Outcome:
    """The barest assignment the engine's tables allow (bench.floor_assign), on the `assign`
    workload's data and clients: the ceiling any auto_assign could reach on this machine."""
    duration = ctx.scale.duration
    ds = _assign_dataset(ctx.scale.staff, duration)
    ctx.loader.ensure(ds, fresh=True)
    ctx.loader.dirty = True
    before = ctx.counts()
    since = ctx.server_now()
    run = ctx.pgbench("floor", [pgbench.Script("floor_assign", FLOOR)], duration=duration)
    outcome = _pgbench_outcome("floor", run)
    activity = ctx.activity_since(since)
    lat = run.latency()
    outcome.values = {"rate": run.rate(), "assignments_per_s": activity["assignments_created"] / run.duration,
                      "p50_ms": lat.p50, "p99_ms": lat.p99}
    outcome.conditions = _run_conditions(ctx, before, ctx.counts(), run, ds)
    outcome.conditions["floor"] = ("bench.floor_assign: rule, one-statement pick, SLA deadline, one INSERT with the "
                                   "table's indexes, foreign keys and triggers; no checks, ranking or record of why")
    return outcome


def mix(ctx: Context) -> Outcome:
    ds = Dataset(staff=ctx.scale.staff, load=0.5)
    ctx.loader.ensure(ds, fresh=True)
    ctx.loader.dirty = True
    outcome = _mix_run(ctx, "mix", ds)
    outcome.details.pop("run", None)
    return outcome


def _mix_run(ctx: Context, name: str, ds: Dataset, *, hot=None, on_start=None, mix_name="standard") -> Outcome:
    before = ctx.counts()
    lo, hi = hot or (1, ctx.loader.current.staff)
    since = ctx.server_now()
    run = ctx.pgbench(name, [assign_script(mix_name), complete_script(lo, hi)], on_start=on_start)
    outcome = _pgbench_outcome(name, run)
    activity = ctx.activity_since(since)
    lat = run.latency()
    outcome.values = {
        "assignments_per_s": activity["assignments_created"] / run.duration,
        "completions_per_s": activity["completed"] / run.duration,
        "dequeues_per_s": activity["dequeued"] / run.duration,
        "calls_per_s": run.rate(),
        "p50_ms": lat.p50, "p95_ms": lat.p95, "p99_ms": lat.p99,
        "assign_p99_ms": run.latency("auto_assign").p99,
        "complete_p99_ms": run.latency("complete_assignment").p99,
    }
    outcome.details["activity"] = activity
    outcome.conditions = _run_conditions(ctx, before, ctx.counts(), run, ds)
    outcome.details["run"] = run
    return outcome


def hotspot(ctx: Context) -> Outcome:
    ds = Dataset(staff=ctx.scale.staff, load=0.5, hotspot_staff=ctx.scale.hotspot_staff, mix="hotspot")
    loaded = ctx.loader.ensure(ds, fresh=True)
    ctx.loader.dirty = True
    outcome = _mix_run(ctx, "hotspot", ds, hot=loaded.hot_range, mix_name="hotspot")
    outcome.conditions["hot_spot"] = (f"every item is a service desk ticket; the desk has {ds.hotspot_staff} people "
                                      "(WIP 5); completions hit only them")
    outcome.details.pop("run", None)
    return outcome


def queue_read(ctx: Context) -> Outcome:
    ds = _saturated_dataset(ctx)
    ctx.loader.ensure(ds)
    before = ctx.counts()
    with ctx.connect() as conn:
        units = [r[0] for r in conn.execute(
            "SELECT target_unit_id FROM assignment_queue GROUP BY 1 ORDER BY count(*) DESC")]
        plans = {}
        reads = (("by_unit", QUEUE_READ_UNIT_SQL, (units[0],)), ("whole_queue", QUEUE_READ_ALL_SQL, ()))
        for label, query, params in reads:
            text = conn.execute("EXPLAIN (ANALYZE, TIMING off, SUMMARY on) " + query.replace("$1", "%s"),
                                params).fetchall()
            plans[label] = [r[0] for r in text]
    literal = "{" + ",".join(units) + "}"
    run = ctx.pgbench("queue_read",
                      [pgbench.Script("queue_by_unit", QUEUE_READ_UNIT.format(n=len(units), units=literal))])
    run_all = ctx.pgbench("queue_read_all", [pgbench.Script("queue_whole", QUEUE_READ_ALL)],
                          duration=max(1.0, ctx.scale.duration / 2))
    outcome = _pgbench_outcome("queue_read", run)
    outcome.client_errors += run_all.errors
    lat, lat_all = run.latency(), run_all.latency()
    outcome.values = {"p50_ms": lat.p50, "p95_ms": lat.p95, "p99_ms": lat.p99, "rate": run.rate(),
                      "whole_p50_ms": lat_all.p50, "whole_p99_ms": lat_all.p99, "whole_rate": run_all.rate()}
    outcome.conditions = _run_conditions(ctx, before, ctx.counts(), run, ds)
    outcome.conditions["query"] = QUEUE_READ_UNIT_SQL + "  -- one of the units with queued work"
    outcome.conditions["units"] = units
    outcome.details.update({"pgbench_whole_queue": run_all.summary(), "explain": plans,
                            "whole_queue_query": QUEUE_READ_ALL_SQL})
    return outcome


def _saturated_dataset(ctx: Context) -> Dataset:
    return Dataset(staff=ctx.scale.staff, load=1.0, queued=ctx.scale.queued)


def saturated(ctx: Context) -> Outcome:
    ds = _saturated_dataset(ctx)
    ctx.loader.ensure(ds)
    ctx.loader.dirty = True
    outcome = _mix_run(ctx, "saturated", ds)
    outcome.details.pop("run", None)
    outcome.conditions["saturation"] = ("every available person at their WIP limit, the queue preloaded; arrivals "
                                        "and completions 1:1, each completion takes the best queued item it can")
    return outcome


def _sweep_dataset(ctx: Context, active: int) -> Dataset:
    staff = max(ctx.scale.staff, active // 20)
    realistic_capacity = staff * 0.93 * 5
    wip = None if active <= 0.6 * realistic_capacity else math.ceil(active / (staff * 0.93 * 0.8))
    return Dataset(staff=staff, wip=wip, active=active)


def sweep(ctx: Context) -> Outcome:
    """sla_check_and_escalate() in its steady state, timed call by call with the engine clock
    (rulesctl.now) moved on between calls. Primary figure: calls that each find a few rows
    due (the clock moves to the moment the next DUE_PER_CALL rows fall due), so the cost of
    finding due work among all active rows shows. Also: calls 30 s apart (the job's interval)
    with whatever the preloaded arrivals make due in that half minute."""
    outcome = Outcome("sweep")
    sizes = [a for a in ctx.scale.sweep_active if not (ctx.skip_large and a >= LARGE)]
    if len(sizes) < len(ctx.scale.sweep_active):
        outcome.details["skipped_sizes"] = [a for a in ctx.scale.sweep_active if a not in sizes]
    per_size = {}
    for active in sizes:
        ds = _sweep_dataset(ctx, active)
        ctx.log(f"  sweep at {active:,} active ({ds.describe()})")
        loaded = ctx.loader.ensure(ds, fresh=True)
        ctx.loader.dirty = True
        clock_at = loaded.now
        few, natural = [], []
        with ctx.connect() as conn:
            def call(at):
                conn.execute("SELECT set_config('rulesctl.now', %s, false)", (at.isoformat(),))
                due = conn.execute("SELECT count(*) FROM assignments WHERE next_check_at <= %s", (at,)).fetchone()[0]
                started = time.perf_counter()
                written = conn.execute("SELECT sla_check_and_escalate()").fetchone()[0]
                return {"ms": (time.perf_counter() - started) * 1000, "rows_due": due, "events": written,
                        "clock": at.isoformat()}

            warm = call(clock_at)                  # whatever is due at load time; plans the function
            for _ in range(ctx.scale.sweep_ticks):
                row = conn.execute("SELECT next_check_at FROM assignments WHERE next_check_at > %s"
                                   " ORDER BY next_check_at OFFSET %s LIMIT 1",
                                   (clock_at, DUE_PER_CALL - 1)).fetchone()
                if row is None:
                    break
                clock_at = row[0]
                few.append(call(clock_at))
            for _ in range(ctx.scale.sweep_ticks):
                clock_at = clock_at + timedelta(seconds=30)
                natural.append(call(clock_at))
            conn.execute("RESET rulesctl.now")
        data = {"staff": loaded.staff, "wip": ds.wip, "warmup": warm, "few_due": few, "every_30s": natural}
        if few:
            data["median_ms"] = statistics.median(t["ms"] for t in few)
            data["rows_due_median"] = statistics.median(t["rows_due"] for t in few)
        data["natural_median_ms"] = statistics.median(t["ms"] for t in natural)
        data["natural_rows_due_median"] = statistics.median(t["rows_due"] for t in natural)
        data["natural_max_ms"] = max(t["ms"] for t in natural)
        per_size[active] = data
        ctx.sweep_series[active] = data.get("median_ms")
        ctx.log(f"  -> {_ms(data.get('median_ms'))} median with {data.get('rows_due_median')} rows due; every 30 s: "
                f"{_ms(data['natural_median_ms'])} median ({data['natural_rows_due_median']:g} rows due), "
                f"max {_ms(data['natural_max_ms'])}")
    for active, data in per_size.items():
        outcome.values[f"median_ms_{active}"] = data.get("median_ms")
        outcome.values[f"rows_due_{active}"] = data.get("rows_due_median")
        outcome.values[f"natural_median_ms_{active}"] = data["natural_median_ms"]
        outcome.values[f"natural_rows_due_{active}"] = data["natural_rows_due_median"]
    outcome.details["sizes"] = per_size
    outcome.conditions = {"sizes": sizes, "calls": ctx.scale.sweep_ticks, "due_per_call": DUE_PER_CALL,
                          "staff": {a: d["staff"] for a, d in per_size.items()}, "clients": 1}
    return outcome


def _monitor_command(ctx: Context) -> str:
    """The command pg_cron runs for the shipped policy's SLA monitor (rules/jobs.yaml)."""
    from engine.compiler import catalog
    from engine.compiler.render import job_commands
    from engine.policy.validate import validate_directory
    policy = validate_directory(ctx.repo_root / "rules")
    job = next(j for j in policy.jobs if j.function == "sla_check_and_escalate")
    return job_commands(job, catalog.SCHEMA)[0]


def _run_monitor(ctx: Context, command: str, clock) -> dict:
    """What pg_cron runs -- the sla-monitoring job's command (batched per rules/jobs.yaml) -- with
    the engine clock at `clock`, again while rows are still due (a run stops at its time budget):
    escalations written, calls, and when it started and ended."""
    with ctx.connect() as conn:
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", (clock.isoformat(),))
        before = conn.execute("SELECT count(*) FROM escalation_events").fetchone()[0]
        calls = 0
        started = time.time()
        while True:
            conn.execute(command)
            calls += 1
            due = conn.execute("SELECT EXISTS (SELECT 1 FROM assignments WHERE next_check_at <= "
                               "engine_now())").fetchone()[0]
            if not due or calls >= 20:
                break
        ended = time.time()
        total = conn.execute("SELECT count(*) FROM escalation_events").fetchone()[0] - before
    return {"started": started, "ended": ended, "events": total, "calls": calls}


def backlog(ctx: Context) -> Outcome:
    """A 20,000-escalation backlog (the monitor was down for a while: its clock jumps ahead
    until that many rows are due) swept while the assign+complete mix runs; the mix's p99
    during the sweep against the same mix without it."""
    staff = ctx.scale.staff
    wip = math.ceil(ctx.scale.backlog_active / (staff * 0.93 * 0.7))
    ds = Dataset(staff=staff, wip=wip, active=ctx.scale.backlog_active)
    loaded = ctx.loader.ensure(ds, fresh=True)
    ctx.loader.dirty = True
    with ctx.connect() as conn:
        row = conn.execute("""SELECT next_check_at FROM assignments WHERE next_check_at > %s
                              ORDER BY next_check_at OFFSET %s LIMIT 1""",
                           (loaded.now, ctx.scale.backlog - 1)).fetchone()
    if row is None:
        return Outcome("backlog", skipped="not enough active assignments with a pending escalation")
    sweep_at = row[0]
    ahead = _duration_text(sweep_at - loaded.now)
    ctx.log(f"  monitor clock jumps {ahead} ahead: {ctx.scale.backlog:,} assignments due")

    monitor_command = _monitor_command(ctx)
    baseline = _mix_run(ctx, "backlog-baseline", ds)
    base_run = baseline.details.pop("run")
    sweep_result = {}

    def start_sweep(process):
        def worker():
            time.sleep(ctx.scale.duration / 3)
            try:
                sweep_result.update(_run_monitor(ctx, monitor_command, sweep_at))
            except psycopg.Error as exc:
                sweep_result["error"] = str(exc)
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        sweep_result["thread"] = thread

    during = _mix_run(ctx, "backlog-with-sweep", ds, on_start=start_sweep)
    sweep_result.pop("thread").join()
    run = during.details.pop("run")
    outcome = Outcome("backlog")
    outcome.client_errors = baseline.client_errors + during.client_errors
    outcome.error_notes = baseline.error_notes + during.error_notes
    if "error" in sweep_result or "ended" not in sweep_result:
        outcome.client_errors += 1
        outcome.error_notes.append(f"the sweep failed: {sweep_result.get('error')}")
        return outcome
    # The same sweep with nothing beside it: the clock jumps on until as many rows are due again,
    # or all that remain when the mix completed so many that fewer are left (small scales).
    alone = None
    with ctx.connect() as conn:
        row = conn.execute("""SELECT coalesce(
                                (SELECT next_check_at FROM assignments WHERE next_check_at > %(at)s
                                 ORDER BY next_check_at OFFSET %(offset)s LIMIT 1),
                                (SELECT max(next_check_at) FROM assignments WHERE next_check_at > %(at)s))""",
                           {"at": sweep_at, "offset": ctx.scale.backlog - 1}).fetchone()
    if row[0] is not None:
        alone = _run_monitor(ctx, monitor_command, row[0])
    seconds = sweep_result["ended"] - sweep_result["started"]
    window = (sweep_result["started"], sweep_result["ended"])
    in_window = run.latency(window=window)
    base_p99 = base_run.latency().p99
    outcome.values = {
        "escalations": sweep_result["events"], "rows_due": ctx.scale.backlog, "sweep_s": seconds,
        "escalations_per_s": sweep_result["events"] / seconds if seconds else None,
        "mix_p99_baseline_ms": base_p99, "mix_p99_during_ms": in_window.p99,
        "mix_p99_raise": (in_window.p99 / base_p99 - 1) if base_p99 and in_window.p99 else None,
        "mix_transactions_during": in_window.count,
        "sweep_outlasted_mix": sweep_result["ended"] > run.wall_ended,
    }
    if alone:
        alone_s = alone["ended"] - alone["started"]
        outcome.values.update(alone_escalations=alone["events"], alone_sweep_s=alone_s,
                              alone_escalations_per_s=alone["events"] / alone_s if alone_s else None)
    outcome.conditions = {**during.conditions, "sweep_calls": sweep_result["calls"], "monitor_command": monitor_command,
                          "monitor_clock_ahead": ahead, "backlog_rows": ctx.scale.backlog,
                          "wip": f"personal WIP {wip} for everyone"}
    outcome.details = {"baseline": baseline.values, "with_sweep": during.values,
                       "pgbench_baseline": baseline.details.get("pgbench"),
                       "pgbench_with_sweep": during.details.get("pgbench")}
    return outcome


def growth(ctx: Context) -> Outcome:
    outcome = Outcome("growth")
    points = {}
    for staff in ctx.scale.growth_staff:
        ctx.log(f"  auto_assign with {staff:,} staff")
        result = assign(ctx, staff=staff, duration=ctx.scale.growth_duration, name=f"growth-{staff}",
                        single_client=True)
        outcome.client_errors += result.client_errors
        outcome.error_notes += result.error_notes
        points[staff] = {**result.values, "conditions": result.conditions}
        for key in ("p50_ms", "p99_ms", "rate", "one_client_p50_ms", "one_client_p99_ms"):
            outcome.values[f"{key}_{staff}"] = result.values.get(key)
    outcome.details["auto_assign"] = points
    outcome.details["sweep_ms"] = dict(ctx.sweep_series)
    outcome.conditions = {"staff": list(ctx.scale.growth_staff), "clients": ctx.scale.clients,
                          "duration_s": ctx.scale.growth_duration}
    return outcome


WORKLOADS = {
    "plan": plan,
    "pick": pick,
    "assign": assign,
    "floor": floor,
    "mix": mix,
    "hotspot": hotspot,
    "queue_read": queue_read,
    "saturated": saturated,
    "sweep": sweep,
    "backlog": backlog,
    "growth": growth,
}
