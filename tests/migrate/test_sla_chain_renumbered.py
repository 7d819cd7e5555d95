"""A changed escalation chain renumbers its levels (levels 1..n in the order of their share): running
work is then notified exactly for the new chain's levels whose share it has not yet passed --
none lost, none sent twice. Levels are matched by their share of the SLA, as the plan's Impact
matches them (engine/migrate/notify_impact.py); a level added below a share already passed
counts as passed and is never sent late.

The base policy (tests/policies/base): the office calendar works Sunday and Monday 08:00-16:00
(Riyadh), urgent tickets have 2h of resolution, staff take 3 items each. Each test first installs
the chain it starts from.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from engine_calls import at, call, scalar, uid
from policy_cases import make_policy

from engine.migrate.apply import apply
from engine.migrate.hazards import Hazard
from engine.migrate.notify_impact import NO_LEVEL, NOBODY, Notified
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES, build

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
MONDAY = datetime(2027, 1, 4, 9, 0, tzinfo=RIYADH)       # an hour into a working Monday

WHO = {50: "assignee", 75: "assignee", 90: "assignee", 100: "supervisor", 125: "supervisor", 150: "unit_head",
       200: "parent_unit_head"}                      # whom each share's level notifies


def chain(rules: Path, *shares: int) -> None:
    levels = "".join(f"      - {{at: {share}%, reason: {'sla_warning' if share < 100 else 'sla_breach'}, "
                     f"notify: {WHO[share]}}}\n" for share in shares)
    (rules / "escalation.yaml").write_text(f"chains:\n  - id: standard\n    name: Standard\n    levels:\n{levels}")


def apply_rules(database_url: str, rules: Path) -> None:
    policy, objects = build(rules)
    # a chain one level shorter deletes that level's row (seed-row-deleted), as an owner allows it
    assert apply(database_url, objects, policy, allowed={Hazard.SEED_ROW_DELETED}).outcome == "applied"


def sweep(conn, minutes: int) -> int:
    at(conn, MONDAY + timedelta(minutes=minutes))
    return scalar(conn, "SELECT sla_check_and_escalate()")


def sent(conn, work_item_id: str) -> list[tuple[int, str]]:
    """The shares an item was notified for, with the role addressed, in the order they were sent;
    the engine_events notification of each must be there too."""
    rows = conn.execute(
        "SELECT (e.details->>'threshold_percent')::numeric::int, e.recipient_role,"
        "       EXISTS (SELECT FROM engine_events n WHERE n.channel = 'escalation_events'"
        "               AND (n.payload::jsonb->>'event_id')::uuid = e.id)"
        " FROM escalation_events e JOIN assignments a ON a.id = e.assignment_id"
        " WHERE a.work_item_id = %s AND e.details ? 'threshold_percent' ORDER BY e.escalated_at, 1",
        [work_item_id]).fetchall()
    assert all(notified for _, _, notified in rows), rows
    return [(share, role) for share, role, _ in rows]


def notified(*shares: int) -> list[tuple[int, str]]:
    return [(share, WHO[share]) for share in shares]


def numbers(conn, work_item_id: str) -> list[tuple[int, int | None, int | None]]:
    """Each level event's share, its level number and the number it was sent as, if renumbered."""
    return conn.execute(
        "SELECT (e.details->>'threshold_percent')::numeric::int, e.level, (e.details->>'sent_as_level')::int"
        " FROM escalation_events e JOIN assignments a ON a.id = e.assignment_id"
        " WHERE a.work_item_id = %s AND e.details ? 'threshold_percent' ORDER BY 1", [work_item_id]).fetchall()


def state(conn, work_item_id: str) -> tuple[int, datetime | None]:
    return conn.execute("SELECT escalation_level, next_check_at FROM assignments WHERE work_item_id = %s",
                        [work_item_id]).fetchone()


@pytest.fixture
def three_items(database_url, traversable_tmp_path):
    """Chain 75/100/150/200%. A (from 09:00, deadline 11:00), B (09:20, 11:20) and C (10:00, 12:00),
    urgent, swept at 11:05: A has passed 75% and 100%, B 75% only, C nothing yet."""
    rules = make_policy(traversable_tmp_path)
    chain(rules, 75, 100, 150, 200)
    apply_rules(database_url, rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        for minutes, item in ((0, "A"), (20, "B"), (60, "C")):
            at(conn, MONDAY + timedelta(minutes=minutes))
            assigned = call(conn, "auto_assign", {"work_item_id": item, "work_item_type": "ticket",
                                                  "priority": "urgent"})
            call(conn, "respond_assignment", {"assignment_id": assigned["assignment_id"]})
        assert sweep(conn, 125) == 3
        assert (sent(conn, "A"), sent(conn, "B"), sent(conn, "C")) == (notified(75, 100), notified(75), [])
    return database_url, rules


def test_a_level_removed_in_the_middle_loses_no_later_level(three_items):
    database_url, rules = three_items
    chain(rules, 75, 150, 200)                       # 100% goes: 150% is now level 2, 200% level 3
    # the plan's Impact, read at 11:05, matches levels by share as the runtime now does: B and C,
    # short of 100%, will not be sent it (nobody holds the supervisor role here); A is past it
    plan_now = (MONDAY + timedelta(minutes=125)).isoformat()
    url = f"{database_url}{'&' if '?' in database_url else '?'}options={quote(f'-c rulesctl.now={plan_now}')}"
    policy, objects = build(rules)
    assert build_plan(url, policy, objects, DEFAULT_TEMPLATES).impact.notified == [
        Notified("escalation standard at 100%", "supervisor", NO_LEVEL, NOBODY, NOBODY, 2)]
    apply_rules(database_url, rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # A passed 75% and 100%: it has 150% (now level 2) ahead, due at 12:00
        assert state(conn, "A") == (1, MONDAY + timedelta(hours=3))
        assert state(conn, "B") == (1, MONDAY + timedelta(minutes=200))       # B's 150%: 12:20
        assert state(conn, "C") == (0, MONDAY + timedelta(minutes=150))       # C's 75%: 11:30
        assert sweep(conn, 330) == 7                                          # 14:30: every share passed
        assert sent(conn, "A") == notified(75, 100, 150, 200)
        assert sent(conn, "B") == notified(75, 150, 200)                      # 100% is gone: never sent
        assert sent(conn, "C") == notified(75, 150, 200)
        assert [state(conn, item) for item in "ABC"] == [(3, None)] * 3
        assert sweep(conn, 400) == 0
        # A's events read in the chain it runs under now; 100% has no level, sent as level 2
        assert numbers(conn, "A") == [(75, 1, None), (100, None, 2), (150, 2, None), (200, 3, None)]


def test_a_manual_escalation_after_a_level_removed_takes_the_next_share(three_items):
    """A, past 100% (sent as level 2), is escalated by hand after 100% goes: the next level is
    150% (level 2 now), which its old level 2 event must not block; the sweep goes on at 200%."""
    database_url, rules = three_items
    chain(rules, 75, 150, 200)
    apply_rules(database_url, rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY + timedelta(minutes=130))
        assigned = scalar(conn, "SELECT id::text FROM assignments WHERE work_item_id = 'A'")
        event = call(conn, "escalate_assignment", {"assignment_id": assigned, "reason": "customer called"})
        assert (event["level"], event["recipient_role"]) == (2, "unit_head")
        assert sweep(conn, 330) == 6
        assert sent(conn, "A") == notified(75, 100, 150, 200)


def test_a_level_removed_and_one_added_between_the_same_neighbours(three_items):
    database_url, rules = three_items
    chain(rules, 75, 125, 150, 200)                  # 100% becomes 125%: the numbers stay 1..4
    apply_rules(database_url, rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert state(conn, "A")[0] == 1                                       # past 100% but not 125%
        assert sweep(conn, 330) == 10
        assert sent(conn, "A") == notified(75, 100, 125, 150, 200)
        assert sent(conn, "B") == notified(75, 125, 150, 200)
        assert sent(conn, "C") == notified(75, 125, 150, 200)


def test_the_first_level_removed_and_a_middle_one_added_below_a_passed_share(three_items):
    """75% goes and 90% comes: A, past 100%, counts 90% as passed and is never sent it late; B,
    past 75% only, is sent 90% (its level 1 now) and on; C gets the new chain from its start."""
    database_url, rules = three_items
    chain(rules, 90, 100, 150, 200)
    apply_rules(database_url, rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert state(conn, "A")[0] == 2
        assert state(conn, "B")[0] == 0
        assert sweep(conn, 330) == 10
        assert sent(conn, "A") == notified(75, 100, 150, 200)
        assert sent(conn, "B") == notified(75, 90, 100, 150, 200)
        assert sent(conn, "C") == notified(90, 100, 150, 200)


def test_a_level_added_first_shifts_every_number_and_a_share_reached_unsent_is_sent_next(three_items):
    """50% comes first: every sent event moves up one number (1,2 -> 2,3, one UPDATE could not
    do it under the unique index). A and B have been notified past 50%: it counts as passed and
    is never sent. C (deadline 12:00) reached 50% at 11:00 but was notified for nothing yet: 50%
    is sent at the next sweep, late, as any level that fell due (the sweep catches up in order)."""
    database_url, rules = three_items
    chain(rules, 50, 75, 100, 150, 200)
    apply_rules(database_url, rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert numbers(conn, "A") == [(75, 2, 1), (100, 3, 2)]
        assert [state(conn, item)[0] for item in "ABC"] == [3, 2, 0]
        assert sweep(conn, 126) == 1                                          # 11:06: C's 50%
        assert sent(conn, "C") == notified(50)
        assert sweep(conn, 330) == 9
        assert sent(conn, "A") == notified(75, 100, 150, 200)
        assert sent(conn, "B") == notified(75, 100, 150, 200)
        assert sent(conn, "C") == notified(50, 75, 100, 150, 200)
