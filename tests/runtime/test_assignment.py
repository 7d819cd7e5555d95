"""The assignment runtime against a real PostgreSQL with the shipped policy (rules/*.yaml).

Expectations come from the policy: rule-critical-tickets (urgent/high tickets, least loaded,
weight 2), rule-tickets (other tickets, round robin), rule-legal-translation (expert, weight 2),
rule-translation (least loaded, weight 1), units.yaml (unit-translation WIP 3, others 5),
sla.yaml (ticket urgent 2h / normal 24h resolution, warning at 75%), leave.yaml (urgent/high
reassigned, normal/low flagged and the supervisor told), queue aging (one level per 4h, up to
high). Every API call is its own transaction (autocommit), like a real client; time moves with
the engine clock (rulesctl.now), never by sleeping.
"""

from __future__ import annotations

import json
import random
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import at, call, scalar, uid

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)
ACTIVE = ("assigned", "in_progress", "on_hold")


# IT Support (the service desk)
DESK_A, DESK_B, DESK_C = uid(11), uid(12), uid(13)
IT_SUPERVISOR = uid(19)
# Translation
TR_A, TR_B, TR_C, TR_D, TR_E, TR_F = uid(21), uid(22), uid(23), uid(24), uid(25), uid(26)
# Human Resources
HR_A = uid(31)


# ---------------------------------------------------------------------------------------- helpers

@contextmanager
def claims(conn, **jwt):
    """One transaction in which request.jwt.claims holds these claims (as PostgREST sets them)."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(jwt)])
        yield


def staff(conn, staff_id, unit_id, name=None, **fields):
    payload = {"id": staff_id, "unit_id": unit_id, "full_name": name or f"Staff {staff_id[-4:]}", **fields}
    return call(conn, "upsert_staff_profile", payload)


def assign(conn, work_item_id, work_item_type="ticket", priority="normal", **fields):
    payload = {"work_item_id": work_item_id, "work_item_type": work_item_type, "priority": priority, **fields}
    return call(conn, "auto_assign", payload)


def complete(conn, assignment_id):
    return conn.execute("SELECT complete_assignment(%s)", [assignment_id]).fetchone()[0]


def load(conn, staff_id) -> int:
    return scalar(conn, "SELECT current_assignment_count FROM staff_profiles WHERE id = %s", staff_id)


def active_items(conn, staff_id) -> list[str]:
    rows = conn.execute("SELECT work_item_id FROM assignments WHERE assignee_id = %s AND status = ANY(%s)"
                        " ORDER BY work_item_id", [staff_id, list(ACTIVE)]).fetchall()
    return [r[0] for r in rows]


def active_assignment(conn, work_item_id) -> dict:
    row = conn.execute("SELECT to_jsonb(a) FROM assignments a WHERE work_item_id = %s AND status = ANY(%s)",
                       [work_item_id, list(ACTIVE)]).fetchone()
    assert row is not None, f"{work_item_id} has no active assignment"
    return row[0]


def queue(conn) -> list[dict]:
    """The queue as callers see it: per target unit, the item served next first."""
    rows = conn.execute("SELECT to_jsonb(q) FROM assignment_queue_ordered q"
                        " ORDER BY target_unit_id, position").fetchall()
    return [r[0] for r in rows]


def counts(conn) -> dict:
    tables = ("assignments", "assignment_queue", "staff_profiles", "staff_skills", "assignment_audit",
              "escalation_events")
    return {t: scalar(conn, f"SELECT count(*) FROM {t}") for t in tables}


def queue_ticket(conn, work_item_id, priority, created) -> None:
    """A ticket waiting for unit-it-support since `created`, written straight into the queue."""
    conn.execute("INSERT INTO assignment_queue (work_item_id, work_item_type, priority, target_unit_id, "
                 "created_at, arrived_at) VALUES (%s, 'ticket', %s, 'unit-it-support', %s, %s)",
                 (work_item_id, priority, created, created))


def ts(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def assert_capacity_invariant(conn) -> None:
    """Every person's current_assignment_count is the weighted sum of their active assignments."""
    rows = conn.execute("""
        SELECT s.id::text, s.current_assignment_count,
               coalesce(sum(a.capacity_weight) FILTER (WHERE a.status IN ('assigned', 'in_progress', 'on_hold')), 0)
        FROM staff_profiles s LEFT JOIN assignments a ON a.assignee_id = s.id
        GROUP BY s.id, s.current_assignment_count
        HAVING s.current_assignment_count
               <> coalesce(sum(a.capacity_weight) FILTER (WHERE a.status IN ('assigned', 'in_progress', 'on_hold')), 0)
    """).fetchall()
    assert rows == [], f"current_assignment_count out of step with active assignments: {rows}"


# ---------------------------------------------------------------------------------------- scenarios

def test_item_needing_arabic_goes_to_staff_holding_arabic(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", "English only", skills=["skill-english"])   # lower id: wins ties
    staff(conn, TR_B, "unit-translation", "Arabic speaker", skills=["skill-arabic"])
    held = conn.execute("SELECT skill_id, proficiency FROM staff_skills WHERE staff_id = %s", [TR_B]).fetchall()
    assert held == [("skill-arabic", "basic")]        # a list of ids is held at the lowest level

    first = assign(conn, "tr-ar-1", "translation_request", required_skills=["skill-arabic"])
    assert first["status"] == "assigned"
    assert first["assignee_id"] == TR_B                # TR_A is as free and has the lower id, but no Arabic
    assert first["rule_id"] == "rule-translation"
    assert first["unit_id"] == "unit-translation"
    assert active_assignment(conn, "tr-ar-1")["required_skills"] == ["skill-arabic"]

    # Without a skill TR_A would have been the pick: the skill, not the ordering, decided.
    plain = assign(conn, "tr-plain-1", "translation_request")
    assert plain["assignee_id"] == TR_A

    for item in ("tr-ar-2", "tr-ar-3"):
        assert assign(conn, item, "translation_request", required_skills=["skill-arabic"])["assignee_id"] == TR_B
    assert load(conn, TR_B) == 3 and load(conn, TR_A) == 1          # unit-translation WIP is 3

    # TR_B is full; TR_A has room but no Arabic: the item waits instead of going to TR_A.
    waiting = assign(conn, "tr-ar-4", "translation_request", required_skills=["skill-arabic"])
    assert waiting["status"] == "queued" and waiting["position"] == 1
    decision = scalar(conn, "SELECT decision FROM assignment_queue WHERE work_item_id = 'tr-ar-4'")
    assert decision["candidates"]["excluded"] == {"missing a required skill or proficiency": 1,
                                                  "no room under WIP limit": 1}

    # Capacity freed for TR_A does not hand them the Arabic item ...
    complete(conn, plain["assignment_id"])
    assert [q["work_item_id"] for q in queue(conn)] == ["tr-ar-4"]
    assert active_items(conn, TR_A) == []
    # ... capacity freed for TR_B does.
    complete(conn, first["assignment_id"])
    assert queue(conn) == []
    assert active_items(conn, TR_B) == ["tr-ar-2", "tr-ar-3", "tr-ar-4"]
    assert_capacity_invariant(conn)


def test_staff_at_wip_limit_get_nothing_more_and_next_item_is_queued(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation")                 # unit default WIP: 3
    staff(conn, TR_B, "unit-translation", wip_limit=2)    # own override
    for n in range(1, 6):
        at(conn, T0 + timedelta(minutes=n))
        assert assign(conn, f"tr-{n}", "translation_request")["status"] == "assigned"
    assert (load(conn, TR_A), load(conn, TR_B)) == (3, 2)
    eligible = conn.execute("SELECT * FROM find_eligible_staff_for_assignment("
                            "ARRAY['unit-translation'], '{}', 0, 1, 'least_loaded', 10)").fetchall()
    assert eligible == []

    at(conn, T0 + timedelta(minutes=10))
    sixth = assign(conn, "tr-6", "translation_request")
    assert sixth["status"] == "queued"
    assert sixth["position"] == 1
    assert sixth["target_unit_id"] == "unit-translation"
    assert sixth["rule_id"] == "rule-translation"
    # The SLA clock started when the item arrived (translation_request/normal: 40h of working time).
    assert ts(sixth["sla_deadline"]) == scalar(
        conn, "SELECT calculate_sla_deadline_fn('translation_request', 'normal', %s)", T0 + timedelta(minutes=10))
    assert ts(sixth["sla_deadline"]) >= T0 + timedelta(minutes=10, hours=40)
    at(conn, T0 + timedelta(minutes=11))
    assert assign(conn, "tr-7", "translation_request")["position"] == 2
    at(conn, T0 + timedelta(minutes=12))
    urgent = assign(conn, "tr-8", "translation_request", "urgent")
    assert urgent["status"] == "queued" and urgent["position"] == 1   # served before the older normals

    assert [(q["work_item_id"], q["position"]) for q in queue(conn)] == [("tr-8", 1), ("tr-6", 2), ("tr-7", 3)]
    assert (load(conn, TR_A), load(conn, TR_B)) == (3, 2)              # nobody went over the limit
    assert scalar(conn, "SELECT count(*) FROM assignments") == 5
    assert scalar(conn, "SELECT count(*) FROM assignment_queue") == 3
    assert_capacity_invariant(conn)


def test_freed_capacity_serves_urgent_then_high_then_normal(conn):
    at(conn, T0)
    staff(conn, DESK_A, "unit-it-support", wip_limit=2)
    busy = assign(conn, "tk-busy", "ticket", "urgent")                 # weight 2: DESK_A is full
    assert busy["assignee_id"] == DESK_A and load(conn, DESK_A) == 2
    # Queued lowest priority first, so arrival order alone would serve them the wrong way round.
    for minute, (item, priority) in enumerate([("tk-normal", "normal"), ("tk-high", "high"),
                                               ("tk-urgent", "urgent")], start=1):
        at(conn, T0 + timedelta(minutes=minute))
        assert assign(conn, item, "ticket", priority)["status"] == "queued"
    assert [(q["work_item_id"], q["effective_rank"], q["position"]) for q in queue(conn)] == [
        ("tk-urgent", 4, 1), ("tk-high", 3, 2), ("tk-normal", 2, 3)]

    at(conn, T0 + timedelta(minutes=10))
    done = complete(conn, busy["assignment_id"])
    assert ts(done["completed_at"]) == T0 + timedelta(minutes=10)
    assert scalar(conn, "SELECT status::text FROM assignments WHERE id = %s", busy["assignment_id"]) == "completed"
    assert active_items(conn, DESK_A) == ["tk-urgent"]
    taken = active_assignment(conn, "tk-urgent")
    # the answer names what the freed slot took, as the queue drain reported it
    assert done == {"assignment_id": busy["assignment_id"], "status": "completed", "assignee_id": DESK_A,
                    "completed_at": done["completed_at"], "next": done["dequeued"][0],
                    "dequeued": [{"queue_id": done["next"]["queue_id"], "work_item_id": "tk-urgent",
                                  "assignment_id": taken["id"], "assignee_id": DESK_A}]}
    assert taken["decision"]["source"] == "queue"
    assert ts(taken["arrived_at"]) == T0 + timedelta(minutes=3)               # the SLA clock kept running
    assert ts(taken["sla_deadline"]) == T0 + timedelta(minutes=3, hours=2)    # ticket/urgent: 2h
    assert ts(taken["assigned_at"]) == T0 + timedelta(minutes=10)
    assert [q["work_item_id"] for q in queue(conn)] == ["tk-high", "tk-normal"]

    at(conn, T0 + timedelta(minutes=20))
    complete(conn, taken["id"])
    assert active_items(conn, DESK_A) == ["tk-high"]
    assert [q["work_item_id"] for q in queue(conn)] == ["tk-normal"]

    at(conn, T0 + timedelta(minutes=30))
    complete(conn, active_assignment(conn, "tk-high")["id"])
    assert active_items(conn, DESK_A) == ["tk-normal"]
    assert queue(conn) == []
    assert load(conn, DESK_A) == 1
    assert_capacity_invariant(conn)


def test_leave_reassigns_urgent_and_high_and_flags_normal_and_low(conn):
    at(conn, T0)
    staff(conn, IT_SUPERVISOR, "unit-it-support", "Desk supervisor", role="supervisor", wip_limit=0)
    staff(conn, DESK_A, "unit-it-support", "Leaving", wip_limit=6)
    ids = {}
    for item, priority in [("tk-u", "urgent"), ("tk-h", "high"), ("tk-n", "normal"), ("tk-l", "low")]:
        result = assign(conn, item, "ticket", priority)
        assert result["assignee_id"] == DESK_A
        ids[item] = result["assignment_id"]
    assert load(conn, DESK_A) == 6
    staff(conn, DESK_B, "unit-it-support", "Colleague")
    before = {item: active_assignment(conn, item) for item in ids}

    at(conn, T0 + timedelta(minutes=30))
    result = call(conn, "set_staff_availability", {"staff_id": DESK_A, "status": "on_leave",
                                                   "until": "2027-01-12T08:00:00+03:00", "reason": "annual leave"})
    assert result["staff_id"] == DESK_A
    assert result["status"] == "on_leave" and result["previous_status"] == "available"
    assert (result["reassigned"], result["queued"], result["flagged_for_review"], result["assigned_from_queue"]) \
        == (2, 0, 2, 0)
    status, until = conn.execute("SELECT availability_status::text, available_until FROM staff_profiles"
                                 " WHERE id = %s", [DESK_A]).fetchone()
    assert status == "on_leave" and until == datetime(2027, 1, 12, 8, 0, tzinfo=RIYADH)

    # urgent and high: the old rows are closed as 'reassigned', new rows give them to DESK_B,
    # with the same arrival time and deadline.
    for item in ("tk-u", "tk-h"):
        old_status, old_completed = conn.execute("SELECT status::text, completed_at FROM assignments WHERE id = %s",
                                                 [ids[item]]).fetchone()
        assert old_status == "reassigned" and old_completed == T0 + timedelta(minutes=30)
        new = active_assignment(conn, item)
        assert new["id"] != ids[item]
        assert new["assignee_id"] == DESK_B
        assert ts(new["arrived_at"]) == ts(before[item]["arrived_at"]) == T0
        assert ts(new["sla_deadline"]) == ts(before[item]["sla_deadline"])
        assert ts(new["assigned_at"]) == T0 + timedelta(minutes=30)
        assert new["rule_id"] == "rule-critical-tickets" and new["capacity_weight"] == 2
        assert new["decision"]["source"] == "leave_reassignment"
        assert new["decision"]["previous_assignee_id"] == DESK_A

    # normal and low: kept, flagged for review.
    for item in ("tk-n", "tk-l"):
        kept = active_assignment(conn, item)
        assert kept["id"] == ids[item] and kept["assignee_id"] == DESK_A
        assert kept["needs_review"] is True
        assert kept["review_reason"] == "assignee on leave: annual leave"

    events = conn.execute("""
        SELECT a.work_item_id, e.reason::text, e.recipient_id::text, e.recipient_role, e.level, e.escalated_at
        FROM escalation_events e JOIN assignments a ON a.id = e.assignment_id ORDER BY a.work_item_id""").fetchall()
    assert events == [("tk-l", "staff_unavailable", IT_SUPERVISOR, "supervisor", None, T0 + timedelta(minutes=30)),
                      ("tk-n", "staff_unavailable", IT_SUPERVISOR, "supervisor", None, T0 + timedelta(minutes=30))]

    audit = conn.execute("""
        SELECT action, work_item_id, assignment_id::text, from_assignee::text, to_assignee::text, reason
        FROM assignment_audit ORDER BY action, work_item_id""").fetchall()
    assert audit == [
        ("leave_flag", "tk-l", ids["tk-l"], DESK_A, DESK_A, "annual leave"),
        ("leave_flag", "tk-n", ids["tk-n"], DESK_A, DESK_A, "annual leave"),
        ("leave_reassign", "tk-h", active_assignment(conn, "tk-h")["id"], DESK_A, DESK_B,
         "assignee on leave: annual leave"),
        ("leave_reassign", "tk-u", active_assignment(conn, "tk-u")["id"], DESK_A, DESK_B,
         "assignee on leave: annual leave"),
    ]
    assert active_items(conn, DESK_A) == ["tk-l", "tk-n"]
    assert active_items(conn, DESK_B) == ["tk-h", "tk-u"]
    assert (load(conn, DESK_A), load(conn, DESK_B), load(conn, IT_SUPERVISOR)) == (2, 4, 0)
    assert_capacity_invariant(conn)


def test_leave_without_eligible_colleague_requeues_urgent_keeping_deadline_and_return_takes_it(conn):
    at(conn, T0)
    staff(conn, IT_SUPERVISOR, "unit-it-support", "Desk supervisor", role="supervisor", wip_limit=0)
    staff(conn, DESK_A, "unit-it-support", "Leaving")
    staff(conn, DESK_B, "unit-it-support", "Too small for an urgent ticket", wip_limit=1)
    first = assign(conn, "tk-u", "ticket", "urgent")
    assert first["assignee_id"] == DESK_A
    deadline = ts(first["sla_deadline"])
    assert deadline == T0 + timedelta(hours=2)

    at(conn, T0 + timedelta(hours=1))
    result = call(conn, "set_staff_availability", {"staff_id": DESK_A, "status": "on_leave", "reason": "sick"})
    assert (result["reassigned"], result["queued"], result["flagged_for_review"]) == (0, 1, 0)
    assert scalar(conn, "SELECT status::text FROM assignments WHERE id = %s", first["assignment_id"]) == "reassigned"
    rows = conn.execute("SELECT work_item_id, priority::text, target_unit_id, capacity_weight, rule_id, arrived_at,"
                        " sla_deadline FROM assignment_queue").fetchall()
    assert rows == [("tk-u", "urgent", "unit-it-support", 2, "rule-critical-tickets", T0, deadline)]
    audit = conn.execute("SELECT action, work_item_id, assignment_id::text, from_assignee::text, to_assignee"
                         " FROM assignment_audit").fetchall()
    assert audit == [("leave_requeue", "tk-u", first["assignment_id"], DESK_A, None)]
    assert scalar(conn, "SELECT count(*) FROM escalation_events") == 0      # urgent work is moved, not flagged
    assert (load(conn, DESK_A), load(conn, DESK_B)) == (0, 0)
    # Asking again for the item finds it waiting, with its original deadline.
    again = assign(conn, "tk-u", "ticket", "urgent")
    assert again["status"] == "queued" and again["existing"] is True and ts(again["sla_deadline"]) == deadline
    assert_capacity_invariant(conn)

    at(conn, T0 + timedelta(hours=1, minutes=30))
    back = call(conn, "set_staff_availability", {"staff_id": DESK_A, "status": "available"})
    assert back["previous_status"] == "on_leave" and back["assigned_from_queue"] == 1
    assert queue(conn) == []
    taken = active_assignment(conn, "tk-u")
    assert taken["assignee_id"] == DESK_A and taken["id"] != first["assignment_id"]
    assert ts(taken["arrived_at"]) == T0
    assert ts(taken["sla_deadline"]) == deadline
    assert ts(taken["assigned_at"]) == T0 + timedelta(hours=1, minutes=30)
    assert load(conn, DESK_A) == 2
    assert_capacity_invariant(conn)


# ---------------------------------------------------------------------------------------- strategies

def test_round_robin_cycles_normal_tickets_by_least_recently_assigned(conn):
    at(conn, T0)
    for desk in (DESK_A, DESK_B, DESK_C):
        staff(conn, desk, "unit-it-support")
    results = []
    for n in range(6):
        at(conn, T0 + timedelta(minutes=n + 1))
        results.append(assign(conn, f"tk-{n}", "ticket", "normal" if n % 2 else "low"))
    assert [r["assignee_id"] for r in results] == [DESK_A, DESK_B, DESK_C, DESK_A, DESK_B, DESK_C]
    assert {r["rule_id"] for r in results} == {"rule-tickets"}

    decisions = [active_assignment(conn, f"tk-{n}")["decision"] for n in range(3)]
    assert {d["strategy"] for d in decisions} == {"round_robin"}
    assert decisions[0]["tie_break"] == "equally recently assigned; lowest staff id"   # nobody assigned yet
    assert decisions[2]["tie_break"] == "least recently assigned"                      # DESK_C never vs DESK_A

    # Round robin ignores load: DESK_B holds nothing now but was assigned last but one;
    # DESK_A (assigned longest ago) is next, holding two.
    for n in (1, 4):
        complete(conn, results[n]["assignment_id"])
    assert (load(conn, DESK_A), load(conn, DESK_B), load(conn, DESK_C)) == (2, 0, 2)
    following = []
    for n in range(6, 9):
        at(conn, T0 + timedelta(minutes=n + 1))
        following.append(assign(conn, f"tk-{n}", "ticket", "normal")["assignee_id"])
    assert following == [DESK_A, DESK_B, DESK_C]
    assert_capacity_invariant(conn)


def test_assigning_leaves_no_multixact_on_staff_rows(conn):
    """The pick locks a person and the assignment raises their load in one transaction id. A
    row locked by a subtransaction and updated by its parent keeps a MultiXact in its old
    version's xmax, which index scans cannot mark dead: every later pick would walk the pick
    index entries of every assignment since the last vacuum."""
    at(conn, T0)
    for desk in (DESK_A, DESK_B, DESK_C):
        staff(conn, desk, "unit-it-support")
    for n in range(12):
        at(conn, T0 + timedelta(minutes=n + 1))
        result = assign(conn, f"mx-{n}", "ticket", ("low", "normal", "urgent")[n % 3])
        if n % 2:
            complete(conn, result["assignment_id"])
    with conn.transaction():
        conn.execute("CREATE EXTENSION pageinspect")
        versions, updated, multi = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE h.t_xmax <> '0'),"
            "       count(*) FILTER (WHERE h.t_infomask & 4096 <> 0)"          # HEAP_XMAX_IS_MULTI
            " FROM generate_series(0, pg_relation_size('staff_profiles') / 8192 - 1) AS b,"
            "      heap_page_items(get_raw_page('staff_profiles', b::int)) AS h"
            " WHERE h.lp_flags = 1").fetchone()
        assert updated > 12 and versions > 3                                    # old versions are there
        assert multi == 0
        raise psycopg.Rollback()


def test_least_loaded_prefers_lower_load_then_least_recently_assigned_then_lowest_id(conn):
    at(conn, T0)
    for person in (TR_D, TR_B, TR_C, TR_A):        # created out of id order
        staff(conn, person, "unit-translation")

    def next_item(n, minute):
        at(conn, T0 + timedelta(minutes=minute))
        result = assign(conn, f"tr-{n}", "translation_request")
        return result["assignee_id"], active_assignment(conn, f"tr-{n}")["decision"]["tie_break"]

    # All empty and never assigned: lowest id.
    assert next_item(1, 1) == (TR_A, "equal load; equally recently assigned; lowest staff id")
    assert next_item(2, 2) == (TR_B, "equal load; equally recently assigned; lowest staff id")
    assert next_item(3, 3) == (TR_C, "equal load; equally recently assigned; lowest staff id")
    assert next_item(4, 4) == (TR_D, "lowest load")
    # Everyone holds one: the least recently assigned goes first.
    assert next_item(5, 5) == (TR_A, "equal load; least recently assigned")
    # TR_C frees up: lower load beats recency.
    complete(conn, active_assignment(conn, "tr-3")["id"])
    assert next_item(6, 6) == (TR_C, "lowest load")

    ranking = conn.execute("SELECT staff_id::text, current_load, wip_limit, last_assigned_at"
                           " FROM find_eligible_staff_for_assignment(ARRAY['unit-translation'], '{}', 0, 1,"
                           " 'least_loaded', 10)").fetchall()
    assert ranking == [(TR_B, 1, 3, T0 + timedelta(minutes=2)),
                       (TR_D, 1, 3, T0 + timedelta(minutes=4)),
                       (TR_C, 1, 3, T0 + timedelta(minutes=6)),
                       (TR_A, 2, 3, T0 + timedelta(minutes=5))]
    # The same people by round robin: recency only.
    by_recency = conn.execute("SELECT staff_id::text FROM find_eligible_staff_for_assignment("
                              "ARRAY['unit-translation'], '{}', 0, 1, 'round_robin', 10)").fetchall()
    assert [r[0] for r in by_recency] == [TR_B, TR_D, TR_A, TR_C]
    assert_capacity_invariant(conn)


def test_weighted_capacity_urgent_ticket_uses_two_slots(conn):
    at(conn, T0)
    staff(conn, DESK_A, "unit-it-support", wip_limit=3)
    first = assign(conn, "tk-urgent-1", "ticket", "urgent")
    assert first["status"] == "assigned" and first["rule_id"] == "rule-critical-tickets"
    assert active_assignment(conn, "tk-urgent-1")["capacity_weight"] == 2
    assert load(conn, DESK_A) == 2

    at(conn, T0 + timedelta(minutes=1))
    second = assign(conn, "tk-urgent-2", "ticket", "urgent")       # 2 + 2 > 3
    assert second["status"] == "queued" and second["position"] == 1
    at(conn, T0 + timedelta(minutes=2))
    normal = assign(conn, "tk-normal", "ticket", "normal")         # 2 + 1 <= 3
    assert normal["status"] == "assigned" and normal["assignee_id"] == DESK_A
    assert load(conn, DESK_A) == 3

    # One slot free is not enough for the waiting urgent ticket.
    complete(conn, normal["assignment_id"])
    assert load(conn, DESK_A) == 2
    assert [q["work_item_id"] for q in queue(conn)] == ["tk-urgent-2"]
    # Two are.
    complete(conn, first["assignment_id"])
    assert active_items(conn, DESK_A) == ["tk-urgent-2"]
    assert load(conn, DESK_A) == 2
    assert_capacity_invariant(conn)


def test_queue_aging_serves_long_waiting_low_item_before_newer_normal_and_high(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", wip_limit=1)
    busy = assign(conn, "tr-busy", "translation_request")
    assert assign(conn, "tr-low", "translation_request", "low")["status"] == "queued"
    assert [(q["work_item_id"], q["effective_rank"]) for q in queue(conn)] == [("tr-low", 1)]

    at(conn, T0 + timedelta(hours=4))                    # one level up: as good as normal
    assert [(q["work_item_id"], q["effective_rank"]) for q in queue(conn)] == [("tr-low", 2)]

    at(conn, T0 + timedelta(hours=8))                    # two levels up: high
    normal = assign(conn, "tr-normal", "translation_request", "normal")
    at(conn, T0 + timedelta(hours=8, minutes=1))
    high = assign(conn, "tr-high", "translation_request", "high")
    assert normal["position"] == 2                       # behind the aged low item
    assert high["position"] == 2                         # ties on rank with the low item, which is older
    assert [(q["work_item_id"], q["priority"], q["effective_rank"], q["position"]) for q in queue(conn)] == [
        ("tr-low", "low", 3, 1), ("tr-high", "high", 3, 2), ("tr-normal", "normal", 2, 3)]

    at(conn, T0 + timedelta(hours=8, minutes=5))
    complete(conn, busy["assignment_id"])
    assert active_items(conn, TR_A) == ["tr-low"]
    decision = active_assignment(conn, "tr-low")["decision"]
    assert decision["source"] == "queue"
    assert decision["effective_rank"] == 3
    assert decision["waited_seconds"] == 8 * 3600 + 5 * 60

    # Aging stops at high: after 32h more, the normal item is rank 3, never urgent (4).
    at(conn, T0 + timedelta(hours=40))
    assert [(q["work_item_id"], q["effective_rank"]) for q in queue(conn)] == [("tr-normal", 3), ("tr-high", 3)]
    urgent = assign(conn, "tr-urgent", "translation_request", "urgent")
    assert urgent["position"] == 1
    assert_capacity_invariant(conn)


def test_has_room_follows_load_own_limit_and_the_units_default(conn, engine_url, shipped_objects):
    """The pick indexes hold only people with room (has_room), so has_room must follow every
    write: load, a personal limit, and a unit default changed by a policy apply."""
    def room(staff_id):
        return scalar(conn, "SELECT has_room FROM staff_profiles WHERE id = %s", staff_id)

    at(conn, T0)
    staff(conn, TR_A, "unit-translation")                 # unit default WIP: 3
    staff(conn, TR_B, "unit-translation", wip_limit=1)
    for n in range(1, 5):
        assign(conn, f"tr-{n}", "translation_request")
    assert (load(conn, TR_A), load(conn, TR_B), room(TR_A), room(TR_B)) == (3, 1, False, False)

    conn.execute("UPDATE organizational_units SET default_wip_limit = 4 WHERE id = 'unit-translation'")
    assert (room(TR_A), room(TR_B)) == (True, False)       # TR_B keeps their own limit
    assert assign(conn, "tr-5", "translation_request")["assignee_id"] == TR_A
    assert room(TR_A) is False

    staff(conn, TR_B, "unit-translation", wip_limit=2)
    assert room(TR_B) is True
    assert assign(conn, "tr-6", "translation_request")["assignee_id"] == TR_B
    conn.execute("UPDATE organizational_units SET default_wip_limit = 3 WHERE id = 'unit-translation'")
    assert (room(TR_A), room(TR_B)) == (False, False)
    assert assign(conn, "tr-7", "translation_request")["status"] == "queued"
    assert_capacity_invariant(conn)

    # An upgrade adds the column as true for everyone; installing the trigger puts it right.
    from engine.migrate.apply import apply
    conn.execute("DROP TRIGGER staff_room_trigger ON staff_profiles")
    conn.execute("UPDATE staff_profiles SET has_room = true")
    policy, objects = shipped_objects
    assert apply(engine_url, objects, policy).outcome == "applied"
    assert (room(TR_A), room(TR_B)) == (False, False)


def test_queue_head_and_dequeues_follow_the_views_aged_order(conn):
    """queue_head and the dequeue probe each priority's oldest items instead of sorting the
    queue; with aging mixing priorities, both must agree with assignment_queue_ordered."""
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", wip_limit=1)
    busy = assign(conn, "tr-busy", "translation_request")
    priorities = ("low", "normal", "high", "urgent")
    for n in range(40):                                  # spread over 30 hours: many aged past others
        at(conn, T0 + timedelta(minutes=45 * n))
        assert assign(conn, f"tr-q{n:02d}", "translation_request", priorities[(n * 7) % 4])["status"] == "queued"
    at(conn, T0 + timedelta(hours=31))

    def view_order(limit):
        return [tuple(r) for r in conn.execute(
            "SELECT work_item_id, effective_rank, position FROM assignment_queue_ordered"
            " WHERE target_unit_id = 'unit-translation' AND position <= %s ORDER BY position", [limit])]

    for limit in (1, 5, 17, 50):
        head = [tuple(r) for r in conn.execute(
            "SELECT work_item_id, effective_rank, position FROM queue_head('unit-translation', %s)", [limit])]
        assert head == view_order(limit)
    assert len({rank for _, rank, _ in view_order(50)}) > 1        # the order really mixes ranks
    # Without a unit: the whole queue's head, each item with its place in its own unit's queue.
    staff(conn, HR_A, "unit-hr", wip_limit=0)
    for n in range(12):
        at(conn, T0 + timedelta(minutes=150 * n + 7))
        item = assign(conn, f"hr-q{n:02d}", "ticket", priorities[(n * 3) % 4], target_unit_id="unit-hr")
        assert item["status"] == "queued"
    at(conn, T0 + timedelta(hours=31))
    for limit in (1, 7, 30, 60):
        whole = [tuple(r) for r in conn.execute(
            "SELECT work_item_id, effective_rank, position FROM queue_head(NULL, %s)", [limit])]
        assert whole == [tuple(r) for r in conn.execute(
            "SELECT work_item_id, effective_rank, position FROM assignment_queue_ordered"
            " ORDER BY effective_rank DESC, created_at, seq LIMIT %s", [limit])]
    assert {unit for (unit,) in conn.execute("SELECT target_unit_id FROM queue_head(NULL, 30)")} == {
        "unit-translation", "unit-hr"}

    served, expected = [], []
    current = busy["assignment_id"]
    for _ in range(12):
        expected.append(view_order(1)[0][0])
        complete(conn, current)
        row = conn.execute("SELECT id, work_item_id FROM assignments WHERE assignee_id = %s"
                           " AND status = 'assigned'", [TR_A]).fetchone()
        current, item = row
        served.append(item)
    assert served == expected
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="limit"):
        conn.execute("SELECT * FROM queue_head('unit-translation', 0)")


def test_freed_capacity_takes_the_best_item_it_has_every_skill_for(conn):
    """The dequeue probes its own unit's queue per first required skill: whatever the skills
    in front, a person freeing capacity takes exactly the best-ranked item whose every skill
    they hold -- multi-skill items included, items needing one skill they lack never."""
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", "Arabic and English", wip_limit=1, skills=["skill-arabic", "skill-english"])
    busy = assign(conn, "tr-busy", "translation_request")
    needs = [[], ["skill-arabic"], ["skill-english"], ["skill-french"], ["skill-arabic", "skill-french"],
             ["skill-arabic", "skill-english"], ["skill-english", "skill-french"]]
    priorities = ("low", "normal", "high", "urgent")
    for n in range(42):
        at(conn, T0 + timedelta(minutes=40 * n))
        item = assign(conn, f"tr-s{n:02d}", "translation_request", priorities[(n * 5) % 4],
                      required_skills=needs[n % 7])
        assert item["status"] == "queued"
    at(conn, T0 + timedelta(hours=30))
    takeable = "required_skills <@ ARRAY['skill-arabic', 'skill-english']"
    current = busy["assignment_id"]
    for _ in range(15):
        expected = scalar(conn, "SELECT o.work_item_id FROM assignment_queue_ordered o"
                                " JOIN assignment_queue q USING (id) "
                                f"WHERE o.target_unit_id = 'unit-translation' AND q.{takeable}"
                                " ORDER BY o.position LIMIT 1")
        complete(conn, current)
        current, item = conn.execute("SELECT id, work_item_id FROM assignments"
                                     " WHERE assignee_id = %s AND status = 'assigned'", [TR_A]).fetchone()
        assert item == expected
    assert scalar(conn, f"SELECT count(*) FROM assignment_queue WHERE {takeable}") == 42 * 4 // 7 - 15
    assert scalar(conn, f"SELECT count(*) FROM assignment_queue WHERE NOT {takeable}") == 42 * 3 // 7


# ---------------------------------------------------------------------------------------- auto_assign contract

def test_auto_assign_is_idempotent_for_assigned_and_queued_items(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", wip_limit=1)
    first = assign(conn, "tr-1", "translation_request")
    assert first["status"] == "assigned" and first["existing"] is False
    queued = assign(conn, "tr-2", "translation_request")
    assert queued["status"] == "queued" and queued["existing"] is False
    snapshot = counts(conn)
    row_before = active_assignment(conn, "tr-1")
    staff_before = conn.execute("SELECT current_assignment_count, last_assigned_at, version FROM staff_profiles"
                                " WHERE id = %s", [TR_A]).fetchone()

    at(conn, T0 + timedelta(hours=1))                     # a retry, later: nothing is recomputed
    again = assign(conn, "tr-1", "translation_request")
    assert again == {**first, "existing": True}
    queued_again = assign(conn, "tr-2", "translation_request")
    assert queued_again == {**queued, "existing": True}

    assert counts(conn) == snapshot
    assert active_assignment(conn, "tr-1") == row_before
    assert conn.execute("SELECT current_assignment_count, last_assigned_at, version FROM staff_profiles"
                        " WHERE id = %s", [TR_A]).fetchone() == staff_before
    assert_capacity_invariant(conn)


def test_explicit_target_unit_wins_over_rule_unit(conn):
    at(conn, T0)
    staff(conn, DESK_A, "unit-it-support")
    staff(conn, HR_A, "unit-hr")
    # rule-tickets would send this to unit-it-support, where DESK_A has room.
    result = assign(conn, "tk-hr", "ticket", "normal", target_unit_id="unit-hr")
    assert result["status"] == "assigned"
    assert result["assignee_id"] == HR_A and result["unit_id"] == "unit-hr"
    assert result["rule_id"] == "rule-tickets"            # the rule still supplies strategy and weight
    row = active_assignment(conn, "tk-hr")
    assert row["target_unit_id"] == "unit-hr"
    assert row["decision"]["target"] == {"unit_id": "unit-hr", "unit_name": "Human Resources", "include_subtree": False,
                                         "explicit": True, "units": ["unit-hr"]}
    assert row["decision"]["strategy"] == "round_robin"

    # With nobody in the explicit unit the item waits there, even though IT has room.
    waiting = assign(conn, "tk-translation", "ticket", "normal", target_unit_id="unit-translation")
    assert waiting["status"] == "queued" and waiting["target_unit_id"] == "unit-translation"
    assert active_items(conn, DESK_A) == []
    assert_capacity_invariant(conn)


def test_survey_task_goes_anywhere_in_operations_subtree(conn):
    at(conn, T0)
    staff(conn, uid(52), "unit-methodology")
    staff(conn, uid(51), "unit-field-survey", wip_limit=1)
    staff(conn, TR_A, "unit-translation")                      # outside the subtree: never considered
    first = assign(conn, "sv-1", "survey_task")
    assert first["status"] == "assigned" and first["rule_id"] == "rule-survey-tasks"
    assert first["assignee_id"] == uid(51) and first["unit_id"] == "unit-field-survey"
    decision = active_assignment(conn, "sv-1")["decision"]
    assert decision["target"] == {"unit_id": "unit-operations", "unit_name": "Statistical Operations",
                                  "include_subtree": True, "explicit": False,
                                  "units": ["unit-data-processing", "unit-field-survey", "unit-methodology",
                                            "unit-operations"]}
    assert decision["candidates"]["considered"] == 2
    second = assign(conn, "sv-2", "survey_task")               # field survey is full (WIP 1)
    assert second["assignee_id"] == uid(52) and second["unit_id"] == "unit-methodology"
    call(conn, "upsert_staff_profile", {"id": uid(52), "unit_id": "unit-methodology", "full_name": "M",
                                        "wip_limit": 1})
    third = assign(conn, "sv-3", "survey_task")                # everyone in the subtree is full
    assert third["status"] == "queued" and third["target_unit_id"] == "unit-operations"
    assert active_items(conn, TR_A) == []
    # A newcomer anywhere in the subtree takes it.
    joined = staff(conn, uid(53), "unit-data-processing")
    assert joined["assigned_from_queue"] == 1
    assert active_items(conn, uid(53)) == ["sv-3"]
    assert_capacity_invariant(conn)


def test_data_request_overflows_to_parent_unit_and_decision_explains_the_choice(conn):
    desk, helper_busy, helper_free = uid(41), uid(42), uid(43)
    at(conn, T0)
    staff(conn, desk, "unit-data-requests", wip_limit=1)
    staff(conn, helper_busy, "unit-dissemination")
    staff(conn, helper_free, "unit-dissemination")
    assert assign(conn, "dr-1", "data_request")["assignee_id"] == desk          # the desk is now full
    assert assign(conn, "dr-side", "data_request", target_unit_id="unit-dissemination")["assignee_id"] == helper_busy

    at(conn, T0 + timedelta(minutes=5))
    result = assign(conn, "dr-2", "data_request")
    assert result["status"] == "assigned" and result["rule_id"] == "rule-data-requests"
    assert result["assignee_id"] == helper_free and result["unit_id"] == "unit-dissemination"
    row = active_assignment(conn, "dr-2")
    assert row["target_unit_id"] == "unit-data-requests"
    decision = row["decision"]
    assert decision["candidates"]["eligible"] == 0
    assert decision["candidates"]["excluded"] == {"no room under WIP limit": 1}
    overflow = decision["candidates"]["overflow"]
    assert overflow["considered"] == 2 and overflow["eligible"] == 2
    assert [(c["staff_id"], c["load"]) for c in overflow["ranking"]] == [(helper_free, 0), (helper_busy, 1)]
    assert decision["chosen"] == helper_free == row["assignee_id"]
    # The record must say why the chosen person won, not that nobody was eligible.
    assert decision["tie_break"] == "lowest load"
    assert_capacity_invariant(conn)


def test_process_stale_queue_items_assigns_overflow_item_missed_by_live_path(conn):
    desk, helper = uid(41), uid(42)
    at(conn, T0)
    assert scalar(conn, "SELECT process_stale_queue_items()") == 0             # empty queue
    staff(conn, desk, "unit-data-requests", wip_limit=1)
    staff(conn, helper, "unit-dissemination", wip_limit=1)
    assign(conn, "dr-1", "data_request")
    side = assign(conn, "dr-side", "data_request", target_unit_id="unit-dissemination")
    assert side["assignee_id"] == helper
    waiting = assign(conn, "dr-2", "data_request")
    assert waiting["status"] == "queued" and waiting["target_unit_id"] == "unit-data-requests"
    assert scalar(conn, "SELECT process_stale_queue_items()") == 0             # nobody has room

    # The helper frees up; the live path serves their own unit's (and ancestors') queue only,
    # so the overflow item waits for the fallback sweep.
    at(conn, T0 + timedelta(minutes=30))
    complete(conn, side["assignment_id"])
    assert [q["work_item_id"] for q in queue(conn)] == ["dr-2"]
    assert scalar(conn, "SELECT process_stale_queue_items()") == 1
    assert queue(conn) == []
    row = active_assignment(conn, "dr-2")
    assert row["assignee_id"] == helper and row["decision"]["source"] == "queue_fallback"
    assert ts(row["arrived_at"]) == T0 and ts(row["sla_deadline"]) == ts(waiting["sla_deadline"])
    assert scalar(conn, "SELECT process_stale_queue_items()") == 0
    assert_capacity_invariant(conn)


def test_upsert_staff_profile_new_person_or_raised_wip_limit_drains_queue(conn):
    at(conn, T0)
    for n in range(1, 4):
        at(conn, T0 + timedelta(minutes=n))
        assert assign(conn, f"tr-{n}", "translation_request")["status"] == "queued"   # nobody in Translation
    assert scalar(conn, "SELECT count(*) FROM assignment_queue") == 3

    at(conn, T0 + timedelta(minutes=10))
    created = staff(conn, TR_A, "unit-translation", "New translator", wip_limit=1)
    assert created["staff_id"] == TR_A and created["created"] is True and created["unit_id"] == "unit-translation"
    assert created["assigned_from_queue"] == 1
    assert active_items(conn, TR_A) == ["tr-1"]                        # the oldest of equals first
    assert [q["work_item_id"] for q in queue(conn)] == ["tr-2", "tr-3"]

    raised = staff(conn, TR_A, "unit-translation", "New translator", wip_limit=3)
    assert raised["created"] is False and raised["version"] > created["version"]
    assert raised["assigned_from_queue"] == 2
    assert queue(conn) == []
    assert active_items(conn, TR_A) == ["tr-1", "tr-2", "tr-3"]
    assert scalar(conn, "SELECT wip_limit FROM staff_profiles WHERE id = %s", TR_A) == 3

    # Someone who is not available takes nothing.
    assign(conn, "tr-4", "translation_request")
    offline = staff(conn, TR_B, "unit-translation", availability_status="offline")
    assert offline["assigned_from_queue"] == 0
    assert [q["work_item_id"] for q in queue(conn)] == ["tr-4"]
    assert_capacity_invariant(conn)


# ---------------------------------------------------------------------------------------- manual override

def test_manual_override_moves_assignment_and_audits_who_from_to_why(conn):
    at(conn, T0)
    staff(conn, IT_SUPERVISOR, "unit-it-support", "Desk supervisor", role="supervisor", wip_limit=0)
    staff(conn, DESK_A, "unit-it-support")
    staff(conn, DESK_B, "unit-it-support")
    original = assign(conn, "tk-1", "ticket", "urgent")
    assert original["assignee_id"] == DESK_A

    at(conn, T0 + timedelta(minutes=5))
    with claims(conn, sub=IT_SUPERVISOR, role="authenticated"):
        result = call(conn, "manual_override", {"assignment_id": original["assignment_id"], "assignee_id": DESK_B,
                                                "reason": "DESK_A is in a meeting"})
    assert result == {"assignment_id": original["assignment_id"], "work_item_id": "tk-1", "assignee_id": DESK_B,
                      "previous_assignee_id": DESK_A, "status": "assigned"}
    row = active_assignment(conn, "tk-1")
    assert row["id"] == original["assignment_id"] and row["assignee_id"] == DESK_B
    override = row["decision"]["override"]
    assert (override["by"], override["from"], override["to"], override["reason"], override["exceeded_wip"]) == \
        (IT_SUPERVISOR, DESK_A, DESK_B, "DESK_A is in a meeting", False)
    audit = conn.execute("SELECT action, work_item_id, assignment_id::text, actor_id::text, from_assignee::text,"
                         " to_assignee::text, reason, details FROM assignment_audit").fetchall()
    assert audit == [("manual_override", "tk-1", original["assignment_id"], IT_SUPERVISOR, DESK_A, DESK_B,
                      "DESK_A is in a meeting", {"allow_exceed_wip": False, "from_queue": False})]
    assert (load(conn, DESK_A), load(conn, DESK_B)) == (0, 2)

    # A trusted server-side caller (no JWT claims) may override too; the actor is then unknown.
    back = call(conn, "manual_override", {"work_item_id": "tk-1", "assignee_id": DESK_A, "reason": "meeting over"})
    assert back["previous_assignee_id"] == DESK_B and back["assignee_id"] == DESK_A
    assert conn.execute("SELECT actor_id, from_assignee::text, to_assignee::text FROM assignment_audit"
                        " ORDER BY id DESC LIMIT 1").fetchone() == (None, DESK_B, DESK_A)
    assert (load(conn, DESK_A), load(conn, DESK_B)) == (2, 0)
    assert_capacity_invariant(conn)


def test_manual_override_refuses_without_room_unless_allow_exceed_wip(conn):
    at(conn, T0)
    staff(conn, IT_SUPERVISOR, "unit-it-support", "Desk supervisor", role="supervisor", wip_limit=0)
    staff(conn, DESK_A, "unit-it-support")
    staff(conn, DESK_B, "unit-it-support", wip_limit=1)
    mine = assign(conn, "tk-b", "ticket", "normal", target_unit_id="unit-it-support")
    assert mine["assignee_id"] == DESK_A                          # round robin: lowest id first
    full = call(conn, "manual_override", {"assignment_id": mine["assignment_id"], "assignee_id": DESK_B,
                                          "reason": "B knows this printer"})
    assert full["assignee_id"] == DESK_B and load(conn, DESK_B) == 1   # now DESK_B is at the limit
    moving = assign(conn, "tk-a", "ticket", "normal")
    assert moving["assignee_id"] == DESK_A
    snapshot = counts(conn)

    request = {"assignment_id": moving["assignment_id"], "assignee_id": DESK_B, "reason": "B knows this one too"}
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        with claims(conn, sub=IT_SUPERVISOR, role="authenticated"):
            call(conn, "manual_override", request)
    assert refused.value.diag.column_name == "assignee_id"
    assert "WIP limit" in refused.value.diag.message_primary
    assert counts(conn) == snapshot
    assert active_assignment(conn, "tk-a")["assignee_id"] == DESK_A

    with claims(conn, sub=IT_SUPERVISOR, role="authenticated"):
        forced = call(conn, "manual_override", {**request, "allow_exceed_wip": True})
    assert forced["assignee_id"] == DESK_B
    assert load(conn, DESK_B) == 2                                 # over the limit of 1, by decision
    assert active_assignment(conn, "tk-a")["decision"]["override"]["exceeded_wip"] is True
    details = scalar(conn, "SELECT details FROM assignment_audit ORDER BY id DESC LIMIT 1")
    assert details == {"allow_exceed_wip": True, "from_queue": False}
    assert_capacity_invariant(conn)


def test_manual_override_of_queued_item_by_work_item_id(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", wip_limit=1)
    staff(conn, HR_A, "unit-hr", "Bilingual HR officer")
    assign(conn, "tr-1", "translation_request")
    queued = assign(conn, "tr-2", "translation_request", "high")
    assert queued["status"] == "queued"

    at(conn, T0 + timedelta(hours=1))
    with claims(conn, role="service_role"):
        result = call(conn, "manual_override", {"work_item_id": "tr-2", "assignee_id": HR_A,
                                                "reason": "translation desk is full"})
    assert result["assignee_id"] == HR_A and result["previous_assignee_id"] is None
    assert result["status"] == "assigned" and result["work_item_id"] == "tr-2"
    assert queue(conn) == []
    row = active_assignment(conn, "tr-2")
    assert row["id"] == result["assignment_id"]
    assert row["assignee_id"] == HR_A and row["unit_id"] == "unit-hr"
    assert ts(row["arrived_at"]) == T0 and ts(row["sla_deadline"]) == ts(queued["sla_deadline"])
    assert row["decision"]["source"] == "manual_override"
    audit = conn.execute("SELECT action, work_item_id, assignment_id::text, actor_id, from_assignee, to_assignee::text,"
                         " reason, details FROM assignment_audit").fetchall()
    assert audit == [("manual_override", "tr-2", result["assignment_id"], None, None, HR_A,
                      "translation desk is full", {"allow_exceed_wip": False, "from_queue": True})]
    assert load(conn, HR_A) == 1
    assert_capacity_invariant(conn)


# ---------------------------------------------------------------------------------------- read side

def test_capacity_check_reports_unit_figures(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation")                     # WIP 3 (unit default)
    staff(conn, TR_B, "unit-translation", wip_limit=4)
    staff(conn, TR_C, "unit-translation", availability_status="offline")
    for n in range(1, 6):
        at(conn, T0 + timedelta(minutes=n))
        assign(conn, f"tr-{n}", "translation_request")
    assert (load(conn, TR_A), load(conn, TR_B)) == (3, 2)

    check = scalar(conn, "SELECT capacity_check('unit-translation')")
    assert check == {"unit_id": "unit-translation", "staff": 2, "staff_total": 3, "capacity": 7, "assigned": 5,
                     "free_slots": 2, "utilisation": 71.4, "queue_depth": 0}

    call(conn, "set_staff_availability", {"staff_id": TR_B, "status": "busy"})
    assign(conn, "tr-6", "translation_request")              # nobody available has room
    check = scalar(conn, "SELECT capacity_check('unit-translation')")
    assert check == {"unit_id": "unit-translation", "staff": 1, "staff_total": 3, "capacity": 3, "assigned": 5,
                     "free_slots": 0, "utilisation": 100.0, "queue_depth": 1}

    empty = scalar(conn, "SELECT capacity_check('unit-methodology')")
    assert empty == {"unit_id": "unit-methodology", "staff": 0, "staff_total": 0, "capacity": 0, "assigned": 0,
                     "free_slots": 0, "utilisation": None, "queue_depth": 0}
    assert_capacity_invariant(conn)


def test_my_assignments_lists_equal_deadlines_in_the_order_they_were_assigned(conn):
    """Same deadline, assigned a minute apart: listed by assignment time, not by the random id."""
    staff(conn, DESK_A, "unit-it-support", wip_limit=10)
    filed = ["tk-m", "tk-z", "tk-a", "tk-q", "tk-c", "tk-x"]
    for minute, item in enumerate(filed):
        at(conn, T0 + timedelta(minutes=minute))
        assert assign(conn, item)["assignee_id"] == DESK_A
    conn.execute("UPDATE assignments SET sla_deadline = %s WHERE assignee_id = %s", [T0 + timedelta(days=1), DESK_A])
    with claims(conn, sub=DESK_A, role="authenticated"):
        listed = scalar(conn, "SELECT my_assignments()")["assignments"]
    assert [a["work_item_id"] for a in listed] == filed


def test_my_assignments_sla_status_moves_with_the_clock(conn):
    at(conn, T0)
    staff(conn, DESK_A, "unit-it-support")
    staff(conn, DESK_B, "unit-it-support")
    urgent = assign(conn, "tk-urgent", "ticket", "urgent")       # 2h, at risk from 1h30
    assert urgent["assignee_id"] == DESK_A
    assign(conn, "tk-other", "ticket", "normal")                 # round robin: DESK_B, not in A's list
    normal = assign(conn, "tk-normal", "ticket", "normal")       # 24h, at risk from 18h
    assert normal["assignee_id"] == DESK_A

    def mine(when):
        at(conn, when)
        with claims(conn, sub=DESK_A, role="authenticated"):
            result = scalar(conn, "SELECT my_assignments()")
        assert result["staff_id"] == DESK_A
        return [(a["work_item_id"], a["sla_status"], a["seconds_left"]) for a in result["assignments"]]

    assert mine(T0 + timedelta(hours=1)) == [("tk-urgent", "on_track", 3600), ("tk-normal", "on_track", 23 * 3600)]
    assert mine(T0 + timedelta(minutes=89)) == [("tk-urgent", "on_track", 31 * 60),
                                                ("tk-normal", "on_track", 24 * 3600 - 89 * 60)]
    assert mine(T0 + timedelta(minutes=90))[0] == ("tk-urgent", "at_risk", 30 * 60)
    assert mine(T0 + timedelta(hours=3)) == [("tk-urgent", "breached", -3600), ("tk-normal", "on_track", 21 * 3600)]
    assert mine(T0 + timedelta(hours=19))[1] == ("tk-normal", "at_risk", 5 * 3600)
    assert mine(T0 + timedelta(hours=24))[1] == ("tk-normal", "breached", 0)

    complete(conn, urgent["assignment_id"])
    assert [item for item, _, _ in mine(T0 + timedelta(hours=24))] == ["tk-normal"]
    assert_capacity_invariant(conn)


def test_decision_record_explains_assignment(conn):
    at(conn, T0)
    legal_expert = {"skill-legal-translation": "expert", "skill-arabic": "expert"}
    staff(conn, TR_B, "unit-translation", "Busy expert", skills=legal_expert)
    warmup = assign(conn, "tr-warmup", "translation_request")
    assert warmup["assignee_id"] == TR_B                         # TR_B now holds one item
    staff(conn, TR_A, "unit-translation", "Free expert", skills=legal_expert)
    staff(conn, TR_C, "unit-translation", "Proficient only", skills={"skill-legal-translation": "proficient"})
    staff(conn, TR_D, "unit-translation", "No legal skill", skills=["skill-arabic"])
    staff(conn, TR_E, "unit-translation", "Expert on leave", skills=legal_expert, availability_status="on_leave")
    staff(conn, TR_F, "unit-translation", "Expert, tiny WIP", skills=legal_expert, wip_limit=1)
    staff(conn, DESK_A, "unit-it-support", "Elsewhere", skills=legal_expert)       # other unit: not considered

    at(conn, T0 + timedelta(minutes=15))
    result = assign(conn, "tr-legal", "translation_request", "high", required_skills=["skill-legal-translation"])
    assert result["status"] == "assigned" and result["assignee_id"] == TR_A
    assert result["rule_id"] == "rule-legal-translation"
    row = active_assignment(conn, "tr-legal")
    assert row["capacity_weight"] == 2 and row["min_proficiency_rank"] == 3
    decision = row["decision"]
    assert decision["source"] == "auto_assign"
    assert decision["rule_id"] == "rule-legal-translation"
    assert decision["strategy"] == "least_loaded"
    assert decision["capacity_weight"] == 2
    assert decision["min_proficiency_rank"] == 3                  # expert
    assert decision["required_skills"] == ["skill-legal-translation"]
    assert decision["target"] == {"unit_id": "unit-translation", "unit_name": "Translation", "include_subtree": False,
                                  "explicit": False, "units": ["unit-translation"]}
    assert ts(decision["decided_at"]) == T0 + timedelta(minutes=15)
    candidates = decision["candidates"]
    assert candidates["considered"] == 6
    assert candidates["eligible"] == 2
    assert candidates["excluded"] == {"missing a required skill or proficiency": 2,    # TR_C, TR_D
                                      "not available: on_leave": 1,                     # TR_E
                                      "no room under WIP limit": 1}                     # TR_F
    assert [(c["staff_id"], c["load"], c["wip_limit"]) for c in candidates["ranking"]] == [(TR_A, 0, 3), (TR_B, 1, 3)]
    assert decision["chosen"] == TR_A == row["assignee_id"]
    assert decision["tie_break"] == "lowest load"
    assert (load(conn, TR_A), load(conn, TR_B)) == (2, 1)
    assert_capacity_invariant(conn)


def test_saying_on_leave_again_changes_only_the_dates(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", skills=["skill-arabic"])
    staff(conn, TR_B, "unit-translation", role="supervisor")
    assign(conn, "tr-normal", "translation_request", "normal", required_skills=["skill-arabic"])
    first = call(conn, "set_staff_availability", {"staff_id": TR_A, "status": "on_leave", "reason": "annual leave"})
    assert first["flagged_for_review"] == 1
    before = counts(conn)
    again = call(conn, "set_staff_availability", {"staff_id": TR_A, "status": "on_leave", "reason": "annual leave",
                                                  "until": "2027-01-20T08:00:00+03:00"})
    assert (again["previous_status"], again["flagged_for_review"], again["reassigned"]) == ("on_leave", 0, 0)
    assert counts(conn) == before
    assert ts(scalar(conn, "SELECT available_until FROM staff_profiles WHERE id = %s", TR_A)) == \
        datetime(2027, 1, 20, 8, 0, tzinfo=RIYADH)


def test_leave_through_a_staff_profile_update_applies_the_leave_policy(conn):
    at(conn, T0)
    staff(conn, DESK_A, "unit-it-support")
    staff(conn, DESK_B, "unit-it-support")
    urgent = assign(conn, "t-urgent", "ticket", "urgent")
    holder = urgent["assignee_id"]
    other = DESK_B if holder == DESK_A else DESK_A
    result = staff(conn, holder, "unit-it-support", availability_status="on_leave")
    assert result["reassigned"] == 1
    moved = active_assignment(conn, "t-urgent")
    assert moved["assignee_id"] == other and ts(moved["sla_deadline"]) == ts(urgent["sla_deadline"])
    assert_capacity_invariant(conn)


def test_queue_places_match_the_served_order_under_aging(conn):
    """queue_items_ahead counts index ranges per priority instead of ranking every row; for
    any mix of priorities and waits (aging raises a level per 4 h, up to high) each item's
    place equals its place in the served order, and so does an arrival's before it queues."""
    rng = random.Random(7)
    now = T0 + timedelta(days=2)
    at(conn, now)
    priorities = ("low", "normal", "high", "urgent")
    rows = []
    for index in range(300):
        created = now - timedelta(minutes=rng.choice((0, 1, 239, 240, 241, 479, 480, 481, 719, 720, 721))
                                  + rng.randrange(1, 3000))
        if index % 7 == 0:
            created = rows[-1][2] if rows else created          # ties on arrival time: the id decides
        rows.append((f"aq-{index}", rng.choice(priorities), created))
    with conn.transaction():
        for work_item_id, priority, created in rows:
            queue_ticket(conn, work_item_id, priority, created)
    served = [row[0] for row in conn.execute(
        "SELECT id FROM assignment_queue_ordered WHERE target_unit_id = 'unit-it-support' "
        "ORDER BY effective_rank DESC, created_at, seq")]
    places = dict(conn.execute("SELECT id, queue_position(id) FROM assignment_queue").fetchall())
    assert [places[queue_id] for queue_id in served] == list(range(1, len(served) + 1))
    for priority in priorities:       # an arrival now: behind everything ranked at least as high
        expected = scalar(conn, "SELECT count(*) FROM assignment_queue_ordered"
                                " WHERE target_unit_id = 'unit-it-support' "
                                "AND effective_rank >= priority_rank(%s)", priority)
        assert scalar(conn, "SELECT queue_items_ahead('unit-it-support', %s, engine_now(), gen_random_uuid())",
                      priority) == expected


def test_an_aged_items_place_counts_the_items_of_its_rank_aged_above_it(conn):
    """A low item aged to normal is behind a normal item aged to high even when it arrived
    first (a case the random property test above did not reach: an implementation that
    counted every item of the aged rank queued after it as behind it passed that one)."""
    now = T0 + timedelta(days=2)
    at(conn, now)
    for work_item_id, priority, hours_ago in (("aged-low", "low", 5), ("aged-normal", "normal", 4.5),
                                              ("fresh-normal", "normal", 1)):
        created = now - timedelta(hours=hours_ago)
        queue_ticket(conn, work_item_id, priority, created)
    places = conn.execute("SELECT work_item_id, effective_rank, queue_position(id) FROM assignment_queue_ordered"
                          " ORDER BY effective_rank DESC, created_at, seq").fetchall()
    assert places == [("aged-normal", 3, 1), ("aged-low", 2, 2), ("fresh-normal", 2, 3)]
