"""`python -m bench.bulk`: arrivals and completions per second, one call per item against the
bulk entry points (auto_assign_many, complete_assignments_many) in batches of 1, 10, 100, 1000.

One client, as a simulation or a bulk import drives the engine: each call (or batch) is its own
transaction, synchronous_commit on (`--synchronous-commit off`: no WAL flush per call, as on a
simulation's scratch database). Every mode starts from the same state: the shipped policy, N
staff (`--staff`, the benchmark's realistic mix) with 30% of their capacity preloaded, and the
same arrivals (bench.item, the standard mix). Then each arrival's assignment is completed in
the same mode, which frees capacity and drains what queued. Reported per mode: items/s by the
wall clock and by the backend's own CPU time (/proc; steadier on a shared machine), and the
invariants after each phase. Results go to bench/results/<commit>/bulk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from .cli import check_invariants, git_state
from .data import Dataset, Loader
from .database import DEFAULT_BASE_DIR, BenchSetupError, install, prepare_local, prepare_url, server_conditions
from .hostload import TICKS, _stat

REPO_ROOT = Path(__file__).resolve().parent.parent
PER_CALL = 0                     # the mode "one auto_assign / complete_assignment call per item"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--staff", type=int, default=1000, help="staff in the organisation (default 1000)")
    parser.add_argument("--items", type=int, default=3000, help="arrivals per mode (default 3000)")
    parser.add_argument("--batches", default="1,10,100,1000",
                        help="batch sizes of the bulk calls, comma-separated (default 1,10,100,1000)")
    parser.add_argument("--synchronous-commit", choices=("on", "off"), default="on",
                        help="for the benchmark's sessions (default on; a simulation's scratch database may use off)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the median is reported (default 1)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="an empty database (or one this benchmark made); default: a local cluster under "
                             f"{DEFAULT_BASE_DIR}/")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default bench/results/<commit>/bulk.json)")
    args = parser.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches: expected sizes like 1,10,100 (got {args.batches!r})")
    if any(b < 1 or b > 1000 for b in args.batches):
        parser.error("--batches: each size must be between 1 and 1000 (the functions' limit)")
    return args


def backend_seconds(pid: int) -> float:
    """CPU seconds the server backend has used so far (0 when /proc cannot tell)."""
    stat = _stat(pid)
    return stat[1] / TICKS if stat else 0.0


def one(conn: psycopg.Connection, query: str, params: list | None = None):
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def arrivals(conn: psycopg.Connection, items: int) -> list[dict]:
    """The same arrivals for every mode (ids differ: each mode starts from an empty engine)."""
    rows = conn.execute("""
        SELECT bench.item('standard', 1 + bench.h(i, 40), 1 + bench.h(i, 41), 1 + bench.h(i, 42))
        FROM generate_series(1, %s) i ORDER BY i""", [items]).fetchall()
    return [r[0] for r in rows]


def timed(conn: psycopg.Connection, requests: list, batch: int, single: str, many: str) -> tuple[list, dict]:
    """Send requests one call each (batch PER_CALL) or in batches; the results and the timing."""
    pid = conn.info.backend_pid
    cpu, clock = backend_seconds(pid), time.perf_counter()
    results: list = []
    if batch == PER_CALL:
        for request in requests:
            results.append(one(conn, f"SELECT {single}(%s)", [request]))
    else:
        for start in range(0, len(requests), batch):
            chunk = [Jsonb(r) for r in requests[start:start + batch]]
            results.extend(one(conn, f"SELECT {many}(%s::jsonb[])", [chunk]))
    seconds, cpu_seconds = time.perf_counter() - clock, backend_seconds(pid) - cpu
    return results, {"items": len(requests), "seconds": round(seconds, 3),
                     "per_second": round(len(requests) / seconds) if seconds else None,
                     "backend_cpu_ms_per_item": round(1000 * cpu_seconds / len(requests), 3) if requests else None}


def run_mode(url: str, loader: Loader, staff: int, items: int, batch: int, synchronous_commit: str) -> dict:
    loader.ensure(Dataset(staff=staff, load=0.3), fresh=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT set_config('synchronous_commit', %s, false)", [synchronous_commit])
        requests = arrivals(conn, items)
        made, arriving = timed(conn, [Jsonb(r) for r in requests] if batch == PER_CALL else requests, batch,
                               "auto_assign", "auto_assign_many")
        arriving["queued"] = sum(1 for r in made if r["status"] == "queued")
        arriving["invariants"] = broken(url)
        ids = [r["assignment_id"] for r in made if r["status"] == "assigned"]
        work = ids if batch == PER_CALL else [{"assignment_id": i} for i in ids]
        _, completing = timed(conn, work, batch, "complete_assignment", "complete_assignments_many")
        completing["assigned_from_queue"] = one(
            conn, "SELECT count(*) FROM assignments WHERE status <> 'completed' AND work_item_id LIKE 'bench-%'")
        completing["invariants"] = broken(url)
    return {"batch": batch or "per call", "arrivals": arriving, "completions": completing}


def median_run(runs: list[dict]) -> dict:
    """The run with the median arrival rate, with every run's rates beside it."""
    ordered = sorted(runs, key=lambda run: run["arrivals"]["per_second"] or 0)
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs"] = [{"arrivals_per_second": r["arrivals"]["per_second"],
                       "completions_per_second": r["completions"]["per_second"]} for r in runs]
    return chosen


def describe(mode: dict) -> str:
    a, c = mode["arrivals"], mode["completions"]
    line = (f"{mode['batch']!s:>9}: arrivals {a['per_second']:>6,}/s"
            f" ({a['backend_cpu_ms_per_item']:.3f} ms CPU each, {a['queued']} queued)"
            f"  completions {c['per_second']:>6,}/s ({c['backend_cpu_ms_per_item']:.3f} ms CPU each)")
    if a["invariants"] or c["invariants"]:
        line += f"  INVARIANTS BROKEN: {a['invariants']} {c['invariants']}"
    return line


def broken(url: str) -> dict:
    found, _ = check_invariants(url)
    return {name: v["count"] for name, v in found.items() if v["count"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = prepare_url(args.database_url, wipe=False) if args.database_url else prepare_local(DEFAULT_BASE_DIR)
    except BenchSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    install(target.url, REPO_ROOT)
    loader = Loader(target.url, log=lambda message: None)
    with psycopg.connect(target.url, autocommit=True) as conn:
        conditions = server_conditions(conn)
    modes = []
    for batch in [PER_CALL, *args.batches]:
        runs = [run_mode(target.url, loader, args.staff, args.items, batch, args.synchronous_commit)
                for _ in range(args.repeat)]
        mode = median_run(runs)
        modes.append(mode)
        print(describe(mode), flush=True)
    git = git_state()
    report = {"benchmark": "bulk", "staff": args.staff, "items": args.items, "clients": 1, "repeat": args.repeat,
              "synchronous_commit": args.synchronous_commit,
              "database": target.description, "server": conditions, "git": git, "modes": modes}
    out = args.out or REPO_ROOT / "bench" / "results" / (git["commit"] or "unknown")[:7] / "bulk.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written to {out}")
    return 1 if any(m["arrivals"]["invariants"] or m["completions"]["invariants"] for m in modes) else 0


if __name__ == "__main__":
    sys.exit(main())
