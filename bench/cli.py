"""`python -m bench`: the benchmark suite.

Installs the shipped policy into a fresh database, loads synthetic data per workload, drives
the engine's SQL API with pgbench (16 clients, prepared statements, synchronous_commit on),
checks the invariants after every workload, and prints one table of figures with the
conditions beside them. Exit 0 when every invariant held and no client saw an error; 1 when
one broke (whatever the speed); 2 with --fail-on-miss when a target was missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import psycopg

from . import pgbench, report
from .database import (
    DEFAULT_BASE_DIR,
    BenchSetupError,
    install,
    prepare_local,
    prepare_url,
    server_conditions,
)
from .hostload import Meter
from .scale import SCALES
from .workloads import WORKLOADS, Context, Outcome

REPO_ROOT = Path(__file__).resolve().parent.parent
ORDER = list(WORKLOADS)        # plan first (database still in sync and empty), growth last


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=textwrap.fill(" ".join(__doc__.split("\n\n")[1].split()), 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads (in run order): " + ", ".join(ORDER) + """

examples:
  python -m bench                          full scale, every workload (~10-15 min on 2 cores)
  python -m bench --skip-large             without the 1M-assignment sweep
  python -m bench --only mix,hotspot --duration 10
  python -m bench --scale smoke            seconds per workload, invariants only (CI)
  python -m bench --profile --only mix     plus pg_stat_statements (track = all) per workload

Without DATABASE_URL (or --database-url) it runs a PostgreSQL cluster of its own under
.rulesctl-bench/ and creates a fresh database 'bench' on every run. With one, that database's
runtime tables (staff, assignments, queue, escalations) are truncated between workloads.""")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full",
                        help="data sizes and durations (default: full; smoke: tiny, a couple of seconds each)")
    parser.add_argument("--duration", type=float, help="seconds per pgbench run (default: 20 full, 2 smoke)")
    parser.add_argument("--clients", type=int, help="client connections (default: 16 full, 4 smoke)")
    parser.add_argument("--only", help="comma-separated workloads to run: " + ",".join(ORDER))
    parser.add_argument("--skip-large", action="store_true", help="skip the 1M-active-assignment sweep")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the selected workloads N times and report the median of each figure")
    parser.add_argument("--json", type=Path,
                        help="write the figures here (default: .rulesctl-bench/bench-results.json)")
    parser.add_argument("--plot", type=Path, help="growth plot PNG (default: beside the JSON; needs matplotlib)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="use this database instead of the benchmark's own cluster (env DATABASE_URL)")
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / DEFAULT_BASE_DIR,
                        help="the benchmark cluster's directory (default: .rulesctl-bench/ in the project)")
    parser.add_argument("--workdir", type=Path, help="pgbench scripts and logs (default: <dir>/last-run)")
    parser.add_argument("--wipe", action="store_true", help="allow truncating a DATABASE_URL database that holds data")
    parser.add_argument("--profile", action="store_true",
                        help="collect the top statements per workload from pg_stat_statements (track = all; costs "
                             "some throughput, so profiled figures are marked)")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args(argv)
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(ORDER)}")
        args.selected = [name for name in ORDER if name in wanted]
    else:
        args.selected = list(ORDER)
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = SCALES[args.scale].with_overrides(args.duration, args.clients)
    started = dt.datetime.now(dt.UTC)
    base_dir = args.dir
    json_path = args.json or base_dir / "bench-results.json"
    workdir = args.workdir or base_dir / "last-run"
    if not args.database_url:
        # One benchmark per cluster: a second one would drop the first one's database.
        base_dir.mkdir(parents=True, exist_ok=True)
        lock = open(base_dir / "bench.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log(f"bench: another benchmark is running on the cluster in {base_dir}; wait for it, or give --dir")
            return 1
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    try:
        target = prepare_url(args.database_url, args.wipe) if args.database_url else prepare_local(base_dir, log=log)
    except (BenchSetupError, psycopg.Error) as exc:
        log(f"bench: {exc}")
        return 1
    log(f"bench: {target.description}; scale {scale.name}: {scale.clients} clients, {scale.duration:g} s per run")
    install(target.url, REPO_ROOT, log=log)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = server_conditions(conn)
        if args.profile:
            if server["pg_stat_statements"] and server["superuser"]:
                conn.execute(f"ALTER DATABASE {conn.info.dbname} SET pg_stat_statements.track = 'all'")
            else:
                log("bench: --profile needs pg_stat_statements preloaded and a superuser; profiling off")
                args.profile = False
    git = git_state()
    ctx = Context(target.url, scale, workdir, REPO_ROOT, skip_large=args.skip_large, log=log)
    meter = Meter(target.local._pid() if target.local is not None else None)

    runs: dict[str, list[Outcome]] = {name: [] for name in args.selected}
    broken: list[str] = []
    for repeat in range(args.repeat):
        ctx.loader.dirty = True
        for name in args.selected:
            suffix = f" (run {repeat + 1}/{args.repeat})" if args.repeat > 1 else ""
            log(f"\n== {name}{suffix}")
            clock = time.monotonic()
            meter.start()
            log_offset = target.local.log_file.stat().st_size if target.local is not None else 0
            before_stats = table_stats(target.url)
            if args.profile:
                reset_statements(target.url)
            try:
                outcome = WORKLOADS[name](ctx)
            except Exception as exc:  # a workload that blows up is a failed run, loudly
                traceback.print_exc()
                outcome = Outcome(name, client_errors=1, error_notes=[f"{type(exc).__name__}: {exc}"])
                ctx.loader.dirty = True
            outcome.details["seconds"] = time.monotonic() - clock
            # Other work on the machine (a test suite, another benchmark) skews the figures: say so.
            outcome.conditions["other_cpu"] = meter.stop()
            outcome.details["hot_updates"] = hot_updates(before_stats, table_stats(target.url))
            if args.profile:
                outcome.details["top_statements"] = top_statements(target.url)
            if scale.evaluate_targets and not outcome.skipped and name != "plan":
                outcome.values["select1_per_s"] = machine_speed(target.url, scale.clients, workdir)
                log(f"  machine speed: SELECT 1 at {outcome.values['select1_per_s']:,.0f}/s ({scale.clients} clients)")
            if outcome.skipped:
                log(f"  skipped: {outcome.skipped}")
            else:
                try:
                    invariants, seconds = check_invariants(target.url)
                except psycopg.Error as exc:
                    invariants, seconds = {"could not check the invariants": {"count": 1, "sample": [str(exc)]}}, 0.0
                outcome.details["invariants"] = invariants
                outcome.details["invariants_check_s"] = seconds
                print_invariants(name, invariants, outcome.client_errors, seconds)
                if outcome.client_errors and target.local is not None:
                    outcome.details["server_errors"] = server_errors(target.local.log_file, log_offset)
                    for excerpt in outcome.details["server_errors"][:2]:
                        outcome.error_notes.append("server log: " + excerpt)
                bad = {k: v for k, v in invariants.items() if v["count"]}
                if bad or outcome.client_errors:
                    broken.append(name)
                    log(f"!! {name}: INVARIANT BROKEN OR CLIENT ERRORS: "
                        + "; ".join([f"{k}: {v['count']} (e.g. {v['sample']})" for k, v in bad.items()]
                                    + outcome.error_notes))
            runs[name].append(outcome)

    outcomes = {name: combine(results) for name, results in runs.items() if results}
    text, records = report.table(outcomes, scale.evaluate_targets)
    print()
    profiled = " (profiled: pg_stat_statements track = all)" if args.profile else ""
    print(f"rulesctl benchmark, scale {scale.name}{profiled}"
          f"{f', median of {args.repeat} runs' if args.repeat > 1 else ''}")
    print()
    print(text)
    print()
    print(report.footer(server, git))
    if args.repeat > 1:
        print("\nRun to run (each run's figure; spread = (max - min) / median):")
        print("\n".join(spread_lines(outcomes)))
    missed = [r for r in records if r["met"] is False]
    if missed:
        print("\nMissed targets:")
        for r in missed:
            print(f"  - {r['label']}: " + "; ".join(r["misses"]))
    if args.profile:
        print_profile(outcomes)
    plot_path = None
    if "growth" in outcomes or "sweep" in outcomes:
        plot_path = report.plot(args.plot or json_path.with_name("bench-growth.png"), outcomes)
        print(f"\ngrowth plot: {plot_path}" if plot_path
              else "\ngrowth plot skipped (pip install -e '.[bench]' for matplotlib)")
    document = {
        "tool": "rulesctl bench", "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "git": git, "scale": scale.__dict__, "options": {k: (str(v) if isinstance(v, Path) else v)
                                                         for k, v in vars(args).items() if k != "database_url"},
        "database": target.description, "server": server, "profiled": args.profile, "repeat": args.repeat,
        "table": records, "invariants_ok": not broken, "broken": broken, "plot": plot_path,
        "workloads": {name: {"values": o.values, "conditions": o.conditions, "client_errors": o.client_errors,
                             "error_notes": o.error_notes, "skipped": o.skipped, "details": o.details}
                      for name, o in outcomes.items()},
    }
    report.write_json(json_path, document)
    print(f"figures written to {json_path}")
    if broken:
        print(f"\nFAILED: invariants broken or client errors in: {', '.join(broken)}")
        return 1
    if args.fail_on_miss and missed:
        return 2
    return 0


def machine_speed(url: str, clients: int, workdir: Path) -> float:
    """`SELECT 1` per second from the workload's clients for 2 s, right after the workload: the
    same code gives figures tens of percent apart from one run to the next on this kind of
    machine (its host's load), and this number moves with them."""
    run = pgbench.run(url, [pgbench.Script("select1", "SELECT 1;")], clients=clients, duration=2,
                      workdir=workdir / "machine-speed")
    return round(run.rate(), 0)


# Headline figures whose run-to-run spread is printed with --repeat: this kind of machine's
# speed drifts by tens of percent over minutes, and a median alone hides that.
SPREAD_KEYS = ("rate", "calls_per_s", "assignments_per_s", "dequeues_per_s", "p99_ms", "whole_p99_ms",
               "escalations_per_s", "alone_escalations_per_s", "mix_p99_raise",
               "select1_per_s")


def spread_lines(outcomes: dict) -> list[str]:
    """One line per workload run more than once: each headline figure per run, and how far
    apart the runs were (max - min, as a share of the median)."""
    lines = []
    for name, outcome in outcomes.items():
        parts = []
        for key, numbers in (outcome.details.get("spread") or {}).items():
            middle = statistics.median(numbers)
            width = f"{(max(numbers) - min(numbers)) / middle * 100:.0f}%" if middle else "n/a"
            parts.append(f"{key} {' / '.join(f'{n:,.1f}' for n in numbers)} (spread {width})")
        if parts:
            lines.append(f"  {name}: " + "; ".join(parts))
    return lines


def combine(results: list[Outcome]) -> Outcome:
    """One outcome from repeated runs: the median of every numeric value."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    values = {}
    for key in first.values:
        numbers = [r.values.get(key) for r in results if isinstance(r.values.get(key), (int, float))]
        values[key] = statistics.median(numbers) if numbers else first.values[key]
    spread = {key: [r.values[key] for r in results] for key in SPREAD_KEYS
              if all(isinstance(r.values.get(key), (int, float)) for r in results)}
    return Outcome(first.name, values=values, conditions=first.conditions,
                   details={"runs": [{"values": r.values, "details": r.details} for r in results],
                            "spread": spread},
                   client_errors=sum(r.client_errors for r in results),
                   error_notes=[n for r in results for n in r.error_notes], skipped=first.skipped)


def check_invariants(url: str) -> tuple[dict, float]:
    """engine/database/invariants.py's checks. "Queued while an eligible person is idle" calls the
    eligibility function once per queued item; when no available person has room for even
    one item, it provably finds nothing, so that per-item pass is skipped."""
    from engine.database import invariants

    clock = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        room = conn.execute("""
            SELECT EXISTS (SELECT 1 FROM assignment_queue)
               AND EXISTS (SELECT 1 FROM staff_profiles s JOIN organizational_units u ON u.id = s.unit_id
                           WHERE s.availability_status = 'available'
                             AND s.current_assignment_count + 1 <= coalesce(s.wip_limit, u.default_wip_limit))
        """).fetchone()[0]
        original = invariants.idle_while_queued
        if not room:
            invariants.idle_while_queued = lambda conn: []
        try:
            found = invariants.all_violations(conn)
        finally:
            invariants.idle_while_queued = original
    found.pop("lost work items", None)     # needs the set of requested items; pgbench clients do not report it
    return ({name: {"count": len(rows), "sample": [list(map(str, r)) for r in rows[:3]]}
             for name, rows in found.items()},
            time.monotonic() - clock)


def server_errors(log_file: Path, offset: int, limit: int = 5) -> list[str]:
    """ERROR entries (with their DETAIL lines: a deadlock's cycle) the server logged since offset."""
    try:
        with open(log_file, errors="replace") as f:
            f.seek(offset)
            lines = f.read().splitlines()
    except OSError:
        return []
    found, current = [], None
    for line in lines:
        if " ERROR: " in line:
            if current:
                found.append(current)
            current = line.split(" ERROR: ", 1)[1].strip()
        elif current is not None and (line.startswith("\t") or " DETAIL: " in line):
            current += " | " + line.split(" DETAIL: ", 1)[-1].strip()
        elif current is not None:
            found.append(current)
            current = None
    if current:
        found.append(current)
    return found[:limit]


def print_invariants(name: str, invariants: dict, client_errors: int, seconds: float) -> None:
    parts = [f"{label} {value['count']}" for label, value in invariants.items()]
    parts.append(f"errors seen by clients {client_errors}")
    ok = all(v["count"] == 0 for v in invariants.values()) and client_errors == 0
    log(f"  invariants ({seconds:.1f} s): " + " · ".join(parts) + ("  OK" if ok else "  BROKEN"))


TABLES = ("staff_profiles", "assignments", "assignment_queue", "escalation_events")


def table_stats(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = 'public'"
            " AND relname = ANY (%s)", (list(TABLES),))}


def hot_updates(before: dict, after: dict) -> dict:
    out = {}
    for table, (upd, hot) in after.items():
        upd0, hot0 = before.get(table, (0, 0))
        updates = max(0, upd - upd0)
        if updates:
            out[table] = {"updates": updates, "hot": max(0, hot - hot0),
                          "hot_ratio": round(max(0, hot - hot0) / updates, 4)}
    return out


def reset_statements(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def top_statements(url: str, limit: int = 15) -> list[dict]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("""
            SELECT s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.rows, s.toplevel
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = current_database()
            ORDER BY s.total_exec_time DESC LIMIT %s""", (limit,)).fetchall()
    return [{"query": " ".join(q.split())[:300], "calls": c, "total_ms": round(t, 1), "mean_ms": round(m, 4),
             "rows": r, "toplevel": top} for q, c, t, m, r, top in rows]


def print_profile(outcomes: dict) -> None:
    print("\nProfile (pg_stat_statements, track = all): top statements by total time per workload")
    for name, outcome in outcomes.items():
        statements = outcome.details.get("top_statements") or []
        hot = outcome.details.get("hot_updates") or {}
        if not statements:
            continue
        print(f"\n[{name}] HOT updates: " + ", ".join(f"{t} {v['hot_ratio'] * 100:.1f}% of {v['updates']:,}"
                                                      for t, v in hot.items()))
        for s in statements[:10]:
            print(f"  {s['total_ms']:>10,.0f} ms {s['calls']:>9,} calls {s['mean_ms']:>8.3f} ms/call  "
                  f"{'top ' if s['toplevel'] else 'nest'} {s['query'][:150]}")


def git_state() -> dict:
    def run(*cmd):
        try:
            done = subprocess.run(["git", "-C", str(REPO_ROOT), *cmd], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--", "templates", "engine", "rules", "generated")
    return {"commit": commit, "dirty": bool(status), "dirty_paths": status.splitlines()[:20] if status else []}
