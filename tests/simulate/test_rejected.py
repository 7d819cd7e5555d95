"""An arrival the engine refuses is recorded with its error, and the rest of the replay goes on as
if it had not come: the driver runs arrivals without a subtransaction, so a refusal aborts the
simulated hour back to its last commit and replay.py replays that stretch again guarded."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg import sql
from simulate_support import assert_sound

from engine.simulate import replay
from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db

START = dt.datetime(2027, 1, 4, 6, 0, tzinfo=dt.UTC)
HEADER = "arrived_at,work_item_id,work_item_type,priority,required_skills,target_unit_id,handling_minutes\n"


def arrivals(refused: bool) -> str:
    """Ten tickets a quarter of an hour apart over three simulated hours, some finishing within
    their hour; with `refused`, one more in the second hour asks for a skill nobody defined."""
    rows = [f"{(START + dt.timedelta(minutes=15 * n)).isoformat()},item-{n},ticket,normal,,unit-it-support,"
            f"{20 + 7 * n}\n" for n in range(10)]
    if refused:
        rows.insert(5, f"{(START + dt.timedelta(minutes=70)).isoformat()},item-bad,ticket,normal,skill-nobody-has,"
                       "unit-it-support,30\n")
    return HEADER + "".join(rows)


def run(server_url, shipped, tmp_path, refused: bool):
    folder = tmp_path / ("refused" if refused else "clean")
    folder.mkdir()
    (folder / "arrivals.csv").write_text(arrivals(refused))
    (folder / "staff.csv").write_text("id,unit,role,skills,wip_limit,leave\n"
                                      "ann,unit-it-support,staff,,1,\nbob,unit-it-support,staff,,1,\n")
    return simulate(server_url, [shipped], WorkloadSpec(file=folder / "arrivals.csv", days=1,
                                                        staff_file=folder / "staff.csv"), seed=1, keep=refused)


def test_a_refused_arrival_is_recorded_and_the_others_replay_as_without_it(server_url, shipped, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(replay, "COMMIT_EVERY", 3)            # the refusal comes after a commit in its hour
    clean = run(server_url, shipped, tmp_path, refused=False)
    refused = run(server_url, shipped, tmp_path, refused=True)
    url = refused.databases["baseline"]
    try:
        with psycopg.connect(url) as conn:
            rejected = conn.execute("SELECT work_item_id, sqlstate, message FROM rulesctl_sim.rejected").fetchall()
            filed = conn.execute("SELECT count(*), count(DISTINCT work_item_id) FROM assignments").fetchone()
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                sql.Identifier(psycopg.conninfo.conninfo_to_dict(url)["dbname"])))

    assert len(rejected) == 1
    assert rejected[0][0] == "item-bad" and "skill-nobody-has" in rejected[0][2]
    assert filed == (10, 10)                    # nothing filed twice by the replayed stretch
    for result in (clean, refused):
        assert_sound(result)
    with_refusal, without = refused.summary["policies"]["baseline"], clean.summary["policies"]["baseline"]
    assert with_refusal["rejected"] == 1 and with_refusal["items"] == 11
    for key in ("assigned", "completed", "wait_minutes", "resolution_minutes", "breached", "escalations"):
        assert with_refusal[key] == without[key], key
