"""How long `rulesctl staff import` takes for a 50,000-person roster (target: 10 s or less).

    python -m bench.staff_import_bench [--rows N] [--keep]

A throwaway local cluster is started in a temp directory and the shipped policy installed.
The roster is synthetic and deterministic: people spread over every unit, 1-3 skills each at
a level given by name or rank, a personal WIP limit for a third of them, a few supervisors.
Timed, each as the CLI runs it (one transaction, from the file to the commit):

  dry run        the file checked and compared with an empty staff table
  first import   everyone added
  no-op          the same file again: nothing changes
  changes        a second roster: 10% moved or given new skills or limits, 2% gone (leavers
                 set offline), 2% new

With DATABASE_URL set, that database is used instead (its staff are replaced). Prints rows/s
and the conditions. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from engine.operations.staff_import import ImportResult, import_staff_on

REPO_ROOT = Path(__file__).resolve().parent.parent
LEVELS = ("basic", "proficient", "expert", "1", "2", "3")


def write_roster(path: Path, rows: int, units: list[str], skills: list[str], variant: int = 0) -> None:
    """Person n keeps id n across variants; variant 1 changes every tenth, drops every 50th
    and adds 2% new people."""
    with path.open("w") as out:
        out.write("id,unit,full_name,role,skills,wip_limit,availability\n")
        extra = rows // 50 if variant else 0
        for n in range(rows + extra):
            if variant and n < rows and n % 50 == 7:
                continue                                   # a leaver
            shift = 1 if variant and n % 10 == 3 else 0
            unit = units[(n + shift) % len(units)]
            held = ";".join(f"{skills[(n * 7 + k + shift) % len(skills)]}:{LEVELS[(n + k) % len(LEVELS)]}"
                            for k in range(1 + n % 3))
            wip = str(2 + (n + shift) % 6) if n % 3 == 0 else ""
            role = "supervisor" if n % 40 == 0 else "staff"
            out.write(f"{uuid.UUID(int=n + 1)},{unit},Person {n},{role},{held},{wip},\n")


def timed(url: str, path: Path, **options) -> tuple[float, float, ImportResult]:
    """Wall seconds, and CPU seconds of this process and of the import's server backend
    together (what the host's load does not inflate), and the result."""
    from bench.status_bench import backend_cpu_seconds
    with psycopg.connect(url) as conn:
        pid = conn.info.backend_pid
        server, client, clock = backend_cpu_seconds(pid), time.process_time(), time.perf_counter()
        result = import_staff_on(conn, path, **options)
        wall = time.perf_counter() - clock
        after = backend_cpu_seconds(pid)
    cpu = time.process_time() - client + ((after - server) if server is not None and after is not None else 0.0)
    return wall, cpu, result


def run(url: str, rows: int, workdir: Path) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE staff_profiles CASCADE")
        units = [r[0] for r in conn.execute("SELECT id FROM organizational_units WHERE NOT retired ORDER BY id")]
        skills = [r[0] for r in conn.execute("SELECT id FROM skills ORDER BY id")]
        server = conn.execute("SHOW server_version").fetchone()[0]
    first, second = workdir / "roster.csv", workdir / "roster-changed.csv"
    write_roster(first, rows, units, skills)
    write_roster(second, rows, units, skills, variant=1)
    figures = [("dry run", *timed(url, first, dry_run=True)), ("first import", *timed(url, first)),
               ("no-op", *timed(url, first)), ("changes", *timed(url, second, leavers="offline"))]
    from engine import __version__
    print(f"rulesctl staff import, {rows:,}-row roster ({first.stat().st_size / 1e6:.1f} MB)")
    print(f"  rulesctl {__version__}, PostgreSQL {server}, {len(units)} units, {len(skills)} skills; "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"  {'':<14} {'seconds':>8} {'CPU s':>6} {'rows/s':>9}  result")
    for name, seconds, cpu, result in figures:
        print(f"  {name:<14} {seconds:>8.2f} {cpu:>6.2f} {result.rows / seconds:>9,.0f}  {len(result.added):,} added, "
              f"{result.changed:,} changed, {result.unchanged:,} unchanged, {len(result.leavers):,} leavers"
              + ("" if result.set_based else " (row triggers: not the tables' owner)"))
    worst = max(seconds for name, seconds, _, _ in figures if name != "dry run")
    print("  CPU s: this process and the import's server backend together, from /proc: the work itself, which "
          "the host's load does not inflate")
    print(f"goal (50,000 rows in 10 s or less): {'met' if worst <= 10 else 'NOT met'} — slowest import "
          f"{worst:.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.staff_import_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="people in the roster (default 50,000)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway cluster (prints its URL)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    from engine.migrate.apply import apply
    from engine.project import build
    url = os.environ.get("DATABASE_URL")
    if url:
        with tempfile.TemporaryDirectory(prefix="rulesctl-import-bench-") as scratch:
            return run(url, args.rows, Path(scratch))
    from bench.throwaway import throwaway_cluster
    with throwaway_cluster("rulesctl-import-bench-", args.keep) as (url, scratch, _):
        os.chdir(REPO_ROOT)                   # origins are shown relative to the project
        policy, objects = build(Path("rules"))
        apply(url, objects, policy)
        return run(url, args.rows, scratch)


if __name__ == "__main__":
    sys.exit(main())
