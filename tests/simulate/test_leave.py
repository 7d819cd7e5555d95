"""Leave periods from the staff file reach the engine through set_staff_availability in virtual
time: the leave policy moves the person's urgent work, and it is finished later."""

from __future__ import annotations

import datetime as dt

import pytest
from simulate_support import assert_sound

from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db

START = dt.datetime(2027, 1, 3, 6, 0, tzinfo=dt.UTC)


def run(server_url, shipped, tmp_path, leave: str):
    tmp_path.mkdir()
    arrivals = tmp_path / "arrivals.csv"
    arrivals.write_text("arrived_at,work_item_id,work_item_type,priority,required_skills,target_unit_id,"
                        "handling_minutes\n" + "".join(
                            f"{(START + dt.timedelta(minutes=n)).isoformat()},item-{n},ticket,urgent,,unit-hr,300\n"
                            for n in range(4)))
    staff = tmp_path / "staff.csv"
    staff.write_text("id,unit,role,skills,wip_limit,leave\n"
                     f"ann,unit-hr,staff,,2,{leave}\n"
                     "bob,unit-hr,staff,,2,\n")
    return simulate(server_url, [shipped], WorkloadSpec(file=arrivals, days=2, staff_file=staff), seed=1)


def test_going_on_leave_hands_urgent_work_back_and_it_finishes_later(server_url, shipped, tmp_path):
    away = (START + dt.timedelta(hours=1)).isoformat() + "/" + (START + dt.timedelta(hours=30)).isoformat()
    at_work = run(server_url, shipped, tmp_path / "at-work", "")
    on_leave = run(server_url, shipped, tmp_path / "on-leave", away)
    for result in (at_work, on_leave):
        assert_sound(result)
    normal, leave = at_work.summary["policies"]["baseline"], on_leave.summary["policies"]["baseline"]
    assert normal["completed"] == 4       # urgent tickets weigh 2 (rule-critical-tickets): two rounds of 5 h
    assert normal["resolution_minutes"]["p95"] < 11 * 60
    # Ann's urgent item goes back to the queue at 07:00 and Bob does everything, one after another:
    # the last of the four is done 20 h after it came, not 10.
    assert leave["resolution_minutes"]["p95"] > normal["resolution_minutes"]["p95"] + 60
    assert leave["completed"] == 4
