"""How fast `rulesctl simulate` replays: a synthetic stretch for the shipped organisation under two
policies (the shipped one and the same with every WIP limit one lower), in parallel, on the real
engine. Target (issue 19): a month, about 100,000 arrivals, under two policies in 60 s or less.

    python -m bench.simulate_bench [--days 30] [--per-day 3300] [--seed 11] [--keep] [--json FILE]

With DATABASE_URL set, its server takes the two scratch databases (the database itself is not
written to). Without it, they go where `rulesctl simulate` puts them by default: a private
throwaway cluster with settings for throwaway data, removed at the end (unless --keep). Prints
one row per policy: arrivals, staff, events replayed, wall time, arrivals per second, the
replaying backend's own CPU seconds (steady when the host is busy), the vacuums' share,
and the conditions. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def policies(workdir: Path):
    from engine.project import build
    from engine.simulate.run import PolicyUnderTest
    shipped = REPO_ROOT / "rules"
    lower = workdir / "rules"
    shutil.copytree(shipped, lower)
    units = lower / "units.yaml"
    units.write_text(re.sub(r"wip_limit: (\d+)", lambda m: f"wip_limit: {max(1, int(m.group(1)) - 1)}",
                            units.read_text()))
    return [PolicyUnderTest("baseline", shipped, *build(shipped)), PolicyUnderTest("proposed", lower, *build(lower))]


def run(url: str | None, days: int, per_day: int, seed: int, workdir: Path, keep: bool = False,
        json_out: Path | None = None) -> int:
    from engine.simulate.report import render
    from engine.simulate.run import WorkloadSpec, simulate
    subjects = policies(workdir)
    clock = time.perf_counter()
    result = simulate(url, subjects, WorkloadSpec(days=days, per_day=per_day), seed, keep=keep,
                      progress=lambda label, day, total, filed: print(
                          f"  {label}: day {day}/{total}, {filed:,} arrivals, {time.perf_counter() - clock:.0f} s",
                          file=sys.stderr))
    wall = time.perf_counter() - clock
    s = result.summary
    print(f"rulesctl simulate: {days} synthetic days, seed {seed}, two policies in parallel")
    print(f"{'policy':<10} {'arrivals':>9} {'staff':>6} {'events':>8} {'replay s':>9} {'arrivals/s':>11} "
          f"{'backend cpu s':>14} {'vacuum s':>9}")
    for label in s["policies"]:
        t = s["timings"][label]
        print(f"{label:<10} {s['workload']['items']:>9,} {s['workload']['staff']:>6} {t['events']:>8,} "
              f"{t['replay_s']:>9.1f} {t['arrivals_per_s']:>11,.1f} {t['backend_cpu_s'] or float('nan'):>14.1f} "
              f"{t['vacuum_s']:>9.1f}")
    print(f"total {wall:.1f} s (install {s['timings']['install_s']:.1f} s); target for a month: 60 s")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(other work on the host slows the wall figures, not the backend CPU ones)")
    if result.cluster is not None:
        print(f"scratch cluster kept: {result.cluster.url} (data in {result.cluster.base_dir})")
    print()
    print(render(result, "markdown"))
    if json_out is not None:
        json_out.write_text(render(result, "json"))       # what `rulesctl simulate --format json` prints
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=3300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway cluster")
    parser.add_argument("--json", type=Path, help="also write the simulation's JSON here (two runs: compare them)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="rulesctl-simbench-"))
    os.chmod(workdir, 0o755)
    try:
        return run(os.environ.get("DATABASE_URL"), args.days, args.per_day, args.seed, workdir, args.keep, args.json)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
