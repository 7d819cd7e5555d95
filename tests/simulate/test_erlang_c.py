"""The simulator against queueing theory. One desk, Poisson arrivals, exponential handling, WIP 1,
one priority, c people: an M/M/c queue, whose waits Erlang C gives exactly. A simulator is only
trusted where it reproduces known results.

Tolerance: waits of successive customers are strongly correlated, so the standard error of their
mean comes from batch means (the run cut into BATCHES consecutive batches after a warm-up; the
batch means are close to independent when each batch is much longer than the queue's relaxation
time, here ~1/(cμ-λ)² ≈ a few dozen customers). The simulated figures must lie within 4 standard
errors of the theory (a false alarm about once in 16,000 runs), and the run must be long enough
that this band is narrow, so the test can fail for a real error: under 30% of P(wait) and under
half the mean wait (waits are heavy-tailed, sd ≈ 2× the mean at ρ = 0.5: a third as wide would take
a 4× longer run, too slow for CI). Measured here: P(wait) 0.3225 ± 0.013 against 1/3, mean wait
5.89 ± 0.77 min against 6.67.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
import statistics

import psycopg
import pytest
from psycopg import sql
from simulate_support import assert_sound

from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db

SERVERS = 2
MEAN_HANDLING = 20.0                  # minutes (μ = 1/20 per minute)
LOAD = 0.5                            # ρ = λ / (c μ)
ARRIVALS = 3000
WARM_UP = 200
BATCHES = 10
START = dt.datetime(2027, 1, 3, 9, 0, tzinfo=dt.UTC)


def erlang_c(servers: int, offered: float) -> float:
    """P(an arrival waits) in M/M/c with offered load a = λ/μ, from the Erlang B recursion."""
    blocked = 1.0
    for k in range(1, servers + 1):
        blocked = offered * blocked / (k + offered * blocked)
    return servers * blocked / (servers - offered * (1 - blocked))


def test_the_formula_itself():
    # M/M/1: P(wait) = ρ; c = 2, a = 1: 1/3 (textbook values)
    assert erlang_c(1, 0.6) == pytest.approx(0.6)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


def write_inputs(tmp_path):
    rng = random.Random(2024)
    rate = LOAD * SERVERS / MEAN_HANDLING                 # λ per minute
    workload = tmp_path / "arrivals.csv"
    t = 0.0
    with workload.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["arrived_at", "work_item_id", "work_item_type", "priority", "required_skills",
                         "target_unit_id", "handling_minutes"])
        for n in range(ARRIVALS):
            t += rng.expovariate(rate)
            at = (START + dt.timedelta(minutes=t)).isoformat(timespec="milliseconds")
            writer.writerow([at, f"desk-{n:05d}", "ticket", "normal", "", "unit-hr",
                             round(max(rng.expovariate(1 / MEAN_HANDLING), 0.001), 3)])
    staff = tmp_path / "staff.csv"
    staff.write_text("id,unit,role,skills,wip_limit,leave\n"
                     + "".join(f"desk-{n},unit-hr,staff,,1,\n" for n in range(SERVERS)))
    return workload, staff


def batch_mean_and_error(values: list[float]) -> tuple[float, float]:
    size = len(values) // BATCHES
    means = [statistics.fmean(values[i * size:(i + 1) * size]) for i in range(BATCHES)]
    return statistics.fmean(means), statistics.stdev(means) / math.sqrt(BATCHES)


def test_mean_wait_and_chance_of_waiting_agree_with_erlang_c(server_url, shipped, tmp_path):
    workload, staff = write_inputs(tmp_path)
    result = simulate(server_url, [shipped], WorkloadSpec(file=workload, staff_file=staff), seed=1, keep=True)
    url = result.databases["baseline"]
    try:
        with psycopg.connect(url) as conn:
            waits = [row[0] for row in conn.execute("""
                SELECT extract(epoch FROM assigned_at - arrived_at)::float8 / 60 FROM assignments
                ORDER BY arrived_at""").fetchall()]
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                sql.Identifier(psycopg.conninfo.conninfo_to_dict(url)["dbname"])))
    assert_sound(result)
    assert len(waits) >= ARRIVALS - 5                     # all but the last few were served
    steady = waits[WARM_UP:]

    offered = LOAD * SERVERS
    p_wait = erlang_c(SERVERS, offered)
    mean_wait = p_wait / (SERVERS / MEAN_HANDLING - offered / MEAN_HANDLING)     # C / (cμ − λ)

    simulated, error = batch_mean_and_error(steady)
    assert 4 * error < 0.5 * mean_wait, f"the run is too short to test anything (standard error {error:.2f} min)"
    assert abs(simulated - mean_wait) < 4 * error, \
        f"mean wait {simulated:.2f} min, Erlang C {mean_wait:.2f} ± {4 * error:.2f}"

    waited, error = batch_mean_and_error([1.0 if w > 0 else 0.0 for w in steady])
    assert 4 * error < 0.3 * p_wait
    assert abs(waited - p_wait) < 4 * error, f"P(wait) {waited:.3f}, Erlang C {p_wait:.3f} ± {4 * error:.3f}"
