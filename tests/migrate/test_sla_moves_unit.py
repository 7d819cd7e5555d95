"""How the plan words SLA deadline moves, per clock, without a database (the counts themselves
are checked against hand counts in test_sla_running_work.py)."""

from __future__ import annotations

import json

from engine.migrate.impact import Impact
from engine.migrate.sla_moves import ClockMoves, SlaMoves

RESOLUTION = ClockMoves(running=3, queued=1, largest_minutes=5 * 24 * 60 + 18 * 60, at_risk=1, breached=1)
RESPONSE = ClockMoves(running=2, largest_minutes=95, breached=1)


def test_each_clock_with_moves_is_said_and_a_still_clock_is_left_out():
    assert SlaMoves(RESOLUTION, RESPONSE).summary() == (
        "3 running and 1 queued items change deadline, the largest by 5d 18h; 1 become at risk, 1 become breached; "
        "2 unanswered items change response deadline, the largest by 1h 35m; 0 become at risk, 1 become breached "
        "on the response clock")
    assert SlaMoves(resolution=RESOLUTION).summary().endswith("1 become breached")
    assert SlaMoves(response=RESPONSE).summary().startswith("2 unanswered items change response deadline")
    assert SlaMoves().summary() == "no deadline moves"


def test_a_clock_that_only_tips_items_into_risk_still_counts_as_moving():
    assert SlaMoves(response=ClockMoves(at_risk=2)).summary() == (
        "0 unanswered items change response deadline, the largest by 0m; 2 become at risk, 0 become breached "
        "on the response clock")


def test_the_counts_survive_a_saved_plan():
    impact = Impact(sla_moves=SlaMoves(RESOLUTION, RESPONSE))
    assert Impact.from_dict(json.loads(json.dumps(impact.as_dict()))).sla_moves == impact.sla_moves
    assert Impact.from_dict(json.loads(json.dumps(Impact().as_dict()))).sla_moves is None
