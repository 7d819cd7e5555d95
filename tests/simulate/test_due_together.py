"""Work due at one instant is all completed there: a few items (taken from the rows the driver
holds in hand) or more than it holds (32, then read from the table), and the queue they leave
behind is served at that instant too."""

from __future__ import annotations

import datetime as dt

import pytest
from simulate_support import assert_sound

from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db

START = dt.datetime(2027, 1, 4, 6, 0, tzinfo=dt.UTC)
HEADER = "arrived_at,work_item_id,work_item_type,priority,required_skills,target_unit_id,handling_minutes\n"


def run(server_url, shipped, tmp_path, together: int, people: int):
    """`together` tickets at one instant, each held for an hour, then one more a minute later
    (queued when nobody is free), for `people` people with room for one each."""
    folder = tmp_path / f"together-{together}"
    folder.mkdir()
    rows = [f"{START.isoformat()},item-{n:03d},ticket,normal,,unit-it-support,60\n" for n in range(together)]
    rows.append(f"{(START + dt.timedelta(minutes=1)).isoformat()},item-late,ticket,normal,,unit-it-support,60\n")
    (folder / "arrivals.csv").write_text(HEADER + "".join(rows))
    (folder / "staff.csv").write_text("id,unit,role,skills,wip_limit,leave\n" + "".join(
        f"p{n:03d},unit-it-support,staff,,1,\n" for n in range(people)))
    return simulate(server_url, [shipped], WorkloadSpec(file=folder / "arrivals.csv", days=1,
                                                        staff_file=folder / "staff.csv"), seed=1)


@pytest.mark.parametrize("together", [3, 40])
def test_everything_due_at_one_instant_is_completed_there(server_url, shipped, tmp_path, together):
    result = run(server_url, shipped, tmp_path, together, people=together)
    assert_sound(result)
    m = result.summary["policies"]["baseline"]
    assert m["completed"] == together + 1 and m["queued_at_end"] == 0
    # the late item waited for the first slot freed, an hour after the others came: 59 minutes
    assert m["wait_minutes"]["max"] == 59.0
    assert m["resolution_minutes"]["p50"] == 60.0
