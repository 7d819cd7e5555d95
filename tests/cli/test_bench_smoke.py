"""The benchmark's smoke run (CI): `python -m bench --scale smoke` on tiny data for a second
per workload, against a fresh database of the test cluster. Its figures mean nothing; it
proves the harness runs end to end and that every invariant holds after each workload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

WORKLOADS = ("floor", "mix", "hotspot", "saturated", "sweep", "backlog")


def _bench(database_url, repo_root, tmp_path, workloads):
    out = tmp_path / "bench.json"
    clock = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "smoke", "--only", ",".join(workloads), "--duration", "1",
         "--database-url", database_url, "--json", str(out), "--workdir", str(tmp_path / "run"),
         "--plot", str(tmp_path / "growth.png")],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - clock, out


def _assert_sound(done, out, workloads):
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    results = json.loads(out.read_text())
    assert results["invariants_ok"] is True
    assert set(results["workloads"]) == set(workloads)
    for name, workload in results["workloads"].items():
        assert workload["client_errors"] == 0, (name, workload["error_notes"])
        invariants = workload["details"]["invariants"]
        assert invariants, name
        assert all(v["count"] == 0 for v in invariants.values()), (name, invariants)
    assert "errors seen by clients 0" in done.stderr
    return results


@pytest.mark.db
def test_bench_smoke_keeps_every_invariant(database_url, repo_root, tmp_path):
    done, seconds, out = _bench(database_url, repo_root, tmp_path, WORKLOADS)
    results = _assert_sound(done, out, WORKLOADS)
    assert seconds < 60, f"the smoke benchmark took {seconds:.0f} s"
    mix = results["workloads"]["mix"]["details"]["pgbench"]
    assert mix["transactions"] > 0 and mix["failed"] == 0 and mix["aborted_clients"] == 0
    assert "| assign + complete mix |" in done.stdout
    # The backlog is swept twice: beside the mix, then a second backlog with nothing beside it.
    backlog = results["workloads"]["backlog"]["values"]
    assert backlog["escalations"] > 0 and backlog["alone_escalations"] > 0, backlog


def test_repeated_runs_report_the_median_and_each_runs_figure():
    from bench.cli import combine, spread_lines
    from bench.workloads import Outcome

    runs = [Outcome("assign", values={"rate": rate, "p99_ms": p99, "note": "x"})
            for rate, p99 in ((1161.0, 35.0), (661.0, 62.0), (635.0, 68.0))]
    combined = combine(runs)
    assert combined.values == {"rate": 661.0, "p99_ms": 62.0, "note": "x"}
    assert combined.details["spread"] == {"rate": [1161.0, 661.0, 635.0], "p99_ms": [35.0, 62.0, 68.0]}
    assert spread_lines({"assign": combined}) == [
        "  assign: rate 1,161.0 / 661.0 / 635.0 (spread 80%); p99_ms 35.0 / 62.0 / 68.0 (spread 53%)"]


@pytest.mark.db
def test_simulate_bench_smoke_replays_both_policies_in_a_private_cluster(repo_root):
    """bench.simulate_bench on a tiny synthetic day, in the private scratch cluster simulate starts
    (no DATABASE_URL): both policies' rows, a rate and the report table; nothing left running."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run([sys.executable, "-m", "bench.simulate_bench", "--days", "1", "--per-day", "150"],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()
            if line.startswith(("baseline ", "proposed "))}
    assert set(rows) == {"baseline", "proposed"}, done.stdout
    for row in rows.values():
        assert int(row[1].replace(",", "")) > 100 and float(row[5].replace(",", "")) > 0, row
    assert "target for a month: 60 s" in done.stdout and "| figure | baseline | proposed |" in done.stdout
    assert "scratch cluster kept" not in done.stdout


@pytest.mark.db
def test_write_floor_bench_smoke_measures_three_depths(repo_root):
    """bench.write_floor on a few items: a CPU and a wall figure for each depth, the deeper ones
    dearer than the bare rows (they do those writes and more)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run([sys.executable, "-m", "bench.write_floor", "--items", "200", "--staff-per-unit", "2"],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = {line.rsplit(None, 2)[0]: float(line.split()[-2]) for line in done.stdout.splitlines()
               if line.startswith(("rows ", "rows + triggers ", "engine "))}
    assert set(figures) == {"rows", "rows + triggers", "engine"}, done.stdout
    assert 0 < figures["rows"] < figures["engine"], figures
    assert "200 arrivals each completed at once, round 11 units, 22 staff" in done.stdout
