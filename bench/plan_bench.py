"""How long `rulesctl plan` takes against a database holding the shipped policy (target: under 1 s).

    python -m bench.plan_bench [--runs N] [--keep]

With DATABASE_URL set, that database is used as it is (it should hold the shipped policy; pass
--install to apply it there first). Without it, a throwaway local cluster is started in a temp
directory, the shipped policy is installed into its application database (where pg_cron lives)
and the cluster is removed at the end (unless --keep).

Each run is one `build_plan` on a fresh connection, timed as a whole and by stage
(Plan.timings: introspect = read the live catalogs, render = install the desired objects into a
scratch schema and read them back, diff = set algebra, steps and ordering). One warm-up run is
not counted. Prints median and p95 per stage and the conditions. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
STAGES = ("introspect", "render", "diff")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def shipped_policy():
    from engine.project import build
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)                       # origins are shown relative to the project
    try:
        return build(REPO_ROOT / "rules")
    finally:
        os.chdir(cwd)


def conditions(url: str, objects, plan) -> list[str]:
    from engine import __version__
    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
        cron = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
        relations = conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                                 ).fetchone()[0]
        functions = conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
                                 ).fetchone()[0]
    return [f"rulesctl {__version__}, PostgreSQL {server}, pg_cron {cron[0] if cron else 'absent'}",
            f"policy: {len(objects)} rendered objects; live public schema: {relations} relations, "
            f"{functions} functions; the plan has {len(plan.steps)} step(s)",
            f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f} (other work on the host slows every stage)"]


def run(url: str, runs: int) -> int:
    from engine.migrate.plan import build_plan
    from engine.project import DEFAULT_TEMPLATES
    policy, objects = shipped_policy()
    plan = build_plan(url, policy, objects, DEFAULT_TEMPLATES)            # warm-up, not counted
    totals: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for _ in range(runs):
        clock = time.perf_counter()
        plan = build_plan(url, policy, objects, DEFAULT_TEMPLATES)
        totals.append(time.perf_counter() - clock)
        for stage in STAGES:
            stages[stage].append(plan.timings.get(stage, float("nan")))

    print(f"rulesctl plan against the shipped policy, {runs} runs (after one warm-up)")
    for line in conditions(url, objects, plan):
        print(f"  {line}")
    print(f"  {'':<11} {'median':>9} {'p95':>9} {'min':>9} {'max':>9}")
    for name, values in [("total", totals)] + [(stage, stages[stage]) for stage in STAGES]:
        print(f"  {name:<11} " + " ".join(f"{v * 1000:>7.1f}ms" for v in
                                          (statistics.median(values), percentile(values, 0.95),
                                           min(values), max(values))))
    other = [t - sum(stages[s][i] for s in STAGES) for i, t in enumerate(totals)]
    print(f"  {'(connect+)':<11} {statistics.median(other) * 1000:>7.1f}ms  median outside the three stages")
    goal = statistics.median(totals) < 1.0
    print(f"goal (plan under 1 s): {'met' if goal else 'NOT met'} — median {statistics.median(totals):.3f}s")
    if plan.steps:
        print(f"note: the database is not in sync with the shipped policy ({len(plan.steps)} steps pending); "
              "timings include diffing them", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    parser.add_argument("--install", action="store_true", help="apply the shipped policy to DATABASE_URL first")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway cluster (prints its URL)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    from engine.migrate.apply import apply

    url = os.environ.get("DATABASE_URL")
    if url:
        if args.install:
            policy, objects = shipped_policy()
            apply(url, objects, policy)
        return run(url, args.runs)

    from engine.database.local import LocalCluster
    base = Path(tempfile.mkdtemp(prefix="rulesctl-plan-bench-"))
    os.chmod(base, 0o755)                     # the server's OS user must reach it
    cluster = LocalCluster(base)
    try:
        url = cluster.start()
        policy, objects = shipped_policy()
        clock = time.perf_counter()
        apply(url, objects, policy)
        print(f"installed the shipped policy into a throwaway cluster in {time.perf_counter() - clock:.2f}s")
        return run(url, args.runs)
    finally:
        if args.keep:
            print(f"cluster kept: {url} (data in {base})")
        else:
            cluster.destroy()
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
