"""The SLA response clock, against a real PostgreSQL with the shipped policy.

rules/sla.yaml: a ticket (always-on calendar, service-desk chain) must be answered within 15
minutes when urgent; a translation_request (riyadh-business: Sunday-Thursday 08:00-16:00,
UTC+3) within 1h when urgent and 4h when normal; warning at 75%. The service-desk chain's
first level warns the assignee at 50% of the resolution time (1h for an urgent ticket).
The response clock starts when the assignment does and stops at the first response: moving
to in_progress or respond_assignment. Time moves with the engine clock (engine_calls.at).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
import yaml
from api_support import bearer, running_server
from engine_calls import at, call, invalid, scalar, uid
from policy_cases import make_policy

from engine.migrate.apply import apply
from engine.project import build

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)          # a Tuesday
THURSDAY = datetime(2027, 1, 7, 15, 30, tzinfo=RIYADH)   # half an hour before the weekend
DESK_A, IT_HEAD = uid(11), uid(17)
TR_A = uid(21)


# ---------------------------------------------------------------------------------------- helpers

def staff(conn, staff_id, unit_id, role="staff", **fields):
    return call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": unit_id, "role": role,
                                               "full_name": f"{role} {staff_id[-4:]}", **fields})


def assign(conn, work_item_id, work_item_type="ticket", priority="urgent") -> dict:
    return call(conn, "auto_assign", {"work_item_id": work_item_id, "work_item_type": work_item_type,
                                      "priority": priority})


def desk_ticket(conn, work_item_id="tk-1") -> str:
    """At T0, a desk person (and their unit head) and an urgent ticket assigned to them: its id."""
    at(conn, T0)
    staff(conn, DESK_A, "unit-it-support", wip_limit=10)
    staff(conn, IT_HEAD, "unit-it-support", "unit_head", wip_limit=0)
    result = assign(conn, work_item_id)
    assert result["status"] == "assigned" and result["assignee_id"] == DESK_A
    return result["assignment_id"]


def row(conn, assignment_id) -> dict:
    return scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE id = %s", assignment_id)


def ts(value) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def respond(conn, assignment_id, **fields) -> dict:
    return call(conn, "respond_assignment", {"assignment_id": assignment_id, **fields})


def sweep(conn) -> int:
    return scalar(conn, "SELECT sla_check_and_escalate()")


def response_breaches(conn) -> list[tuple]:
    """(assignment, level, recipient, recipient role) of every response_breach event."""
    return [tuple(r) for r in conn.execute(
        "SELECT assignment_id::text, level, recipient_id::text, recipient_role FROM escalation_events"
        " WHERE reason = 'response_breach' ORDER BY assignment_id").fetchall()]


def mine(conn, staff_id) -> dict[str, dict]:
    """my_assignments as the staff member sees it, by work item."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     [f'{{"sub": "{staff_id}", "role": "authenticated"}}'])
        result = scalar(conn, "SELECT my_assignments()")
    return {a["work_item_id"]: a for a in result["assignments"]}


def set_status(conn, assignment_id, status) -> None:
    conn.execute("UPDATE assignments SET status = %s WHERE id = %s", [status, assignment_id])



def counts(conn) -> dict:
    return {t: scalar(conn, f"SELECT count(*) FROM {t}")
            for t in ("assignment_audit", "escalation_events", "engine_events")} | {
        "responded": scalar(conn, "SELECT count(*) FROM assignments WHERE first_response_at IS NOT NULL")}


# ---------------------------------------------------------------------------------- the deadline

def test_the_response_deadline_runs_on_the_business_calendar_from_the_assignment(conn):
    at(conn, THURSDAY)
    staff(conn, TR_A, "unit-translation", wip_limit=1)
    first = assign(conn, "tr-urgent", "translation_request", "urgent")
    a = row(conn, first["assignment_id"])
    # 1h of working time: 30 minutes on Thursday, the weekend off, 30 minutes on Sunday.
    assert ts(a["response_deadline"]) == datetime(2027, 1, 10, 8, 30, tzinfo=RIYADH)
    assert a["first_response_at"] is None
    # the response deadline comes before the first escalation level, so the monitor looks then
    assert ts(a["next_check_at"]) == ts(a["response_deadline"])
    assert ts(a["sla_deadline"]) == datetime(2027, 1, 10, 15, 30, tzinfo=RIYADH)

    # A queued item's response clock starts when someone takes it, not when it arrived.
    at(conn, THURSDAY + timedelta(minutes=10))
    queued = assign(conn, "tr-normal", "translation_request", "normal")
    assert queued["status"] == "queued"
    sunday = datetime(2027, 1, 10, 9, 0, tzinfo=RIYADH)
    at(conn, sunday)
    conn.execute("SELECT complete_assignment(%s)", [first["assignment_id"]])
    taken = scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE work_item_id = 'tr-normal'")
    assert ts(taken["assigned_at"]) == sunday
    assert ts(taken["response_deadline"]) == sunday + timedelta(hours=4)            # 4h, all on Sunday
    assert ts(taken["response_deadline"]) == scalar(
        conn, "SELECT sla_response_deadline_for('translation_request', 'normal', %s, 0)", sunday)


# ---------------------------------------------------------------------------------- first response

def test_moving_to_in_progress_is_the_first_response(conn):
    aid = desk_ticket(conn)
    at(conn, T0 + timedelta(minutes=5))
    set_status(conn, aid, "in_progress")
    a = row(conn, aid)
    assert ts(a["first_response_at"]) == T0 + timedelta(minutes=5)
    assert ts(a["next_check_at"]) == T0 + timedelta(hours=1)       # the first level (50% of 2h), no longer 15 min
    at(conn, T0 + timedelta(minutes=30))
    assert sweep(conn) == 0
    assert response_breaches(conn) == []
    assert mine(conn, DESK_A)["tk-1"]["response_status"] == "met"
    # back and forth later does not move the first response
    set_status(conn, aid, "assigned")
    set_status(conn, aid, "in_progress")
    assert ts(row(conn, aid)["first_response_at"]) == T0 + timedelta(minutes=5)


def test_respond_stops_the_clock_once_and_is_audited_once(conn):
    aid = desk_ticket(conn)
    at(conn, T0 + timedelta(minutes=4))
    first = respond(conn, aid, note="looking at it")
    assert first["existing"] is False and first["response_status"] == "met"
    assert ts(first["responded_at"]) == T0 + timedelta(minutes=4)
    assert ts(first["response_deadline"]) == T0 + timedelta(minutes=15)
    a = row(conn, aid)
    assert a["status"] == "assigned"                               # a response is not a status change
    assert ts(a["next_check_at"]) == T0 + timedelta(hours=1)

    at(conn, T0 + timedelta(minutes=20))
    again = respond(conn, aid, note="again")
    assert again["existing"] is True
    assert ts(again["responded_at"]) == T0 + timedelta(minutes=4)  # the first response stands
    assert again["response_status"] == "met"
    audit = conn.execute("SELECT action, actor_id, from_assignee::text, reason, details ->> 'note', at"
                         " FROM assignment_audit WHERE assignment_id = %s", [aid]).fetchall()
    assert audit == [("respond", None, DESK_A, "looking at it", "looking at it", T0 + timedelta(minutes=4))]
    assert sweep(conn) == 0                                        # answered in time: no breach


# ----------------------------------------------------------------------------------------- sweep

def test_the_sweep_records_one_response_breach_for_unanswered_work_only(conn):
    quiet = desk_ticket(conn, "tk-quiet")
    answered = assign(conn, "tk-answered")["assignment_id"]
    at(conn, T0 + timedelta(minutes=10))
    respond(conn, answered)

    at(conn, T0 + timedelta(minutes=14))
    assert sweep(conn) == 0                                        # not yet due
    at(conn, T0 + timedelta(minutes=16))
    assert sweep(conn) == 1
    # the service-desk chain's first level notifies the assignee; no chain level is used up
    assert response_breaches(conn) == [(quiet, None, DESK_A, "assignee")]
    assert row(conn, quiet)["escalation_level"] == 0
    assert ts(row(conn, quiet)["next_check_at"]) == T0 + timedelta(hours=1)
    payloads = [r[0] for r in conn.execute("SELECT payload::jsonb FROM engine_events"
                                           " WHERE channel = 'escalation_events'")]
    assert [(p["assignment_id"], p["reason"]) for p in payloads] == [(quiet, "response_breach")]

    at(conn, T0 + timedelta(minutes=20))
    assert sweep(conn) == 0
    # the first level falls due for both; the response breach is not sent again
    at(conn, T0 + timedelta(minutes=61))
    assert sweep(conn) == 2
    assert response_breaches(conn) == [(quiet, None, DESK_A, "assignee")]
    assert scalar(conn, "SELECT count(*) FROM escalation_events WHERE reason = 'sla_warning'") == 2


def test_a_manual_escalation_keeps_the_pending_response_check(conn):
    aid = desk_ticket(conn)
    at(conn, T0 + timedelta(minutes=5))
    assert call(conn, "escalate_assignment", {"assignment_id": aid, "reason": "customer called"})["level"] == 1
    assert ts(row(conn, aid)["next_check_at"]) == T0 + timedelta(minutes=15)     # not the next level (90 min)
    at(conn, T0 + timedelta(minutes=16))
    assert sweep(conn) == 1
    assert [r[0] for r in response_breaches(conn)] == [aid]
    assert ts(row(conn, aid)["next_check_at"]) == T0 + timedelta(minutes=90)     # 75% of 2h


def test_a_late_answer_is_breached_and_still_recorded_once(conn):
    aid = desk_ticket(conn)
    at(conn, T0 + timedelta(minutes=20))                           # past the deadline, before any sweep
    assert respond(conn, aid)["response_status"] == "breached"
    assert ts(row(conn, aid)["next_check_at"]) == T0 + timedelta(minutes=15)
    assert sweep(conn) == 1
    assert [r[0] for r in response_breaches(conn)] == [aid]
    assert ts(row(conn, aid)["next_check_at"]) == T0 + timedelta(hours=1)
    assert mine(conn, DESK_A)["tk-1"]["response_status"] == "breached"


def test_a_pause_before_the_first_response_moves_the_response_deadline(conn):
    aid = desk_ticket(conn)
    at(conn, T0 + timedelta(minutes=5))
    set_status(conn, aid, "on_hold")
    at(conn, T0 + timedelta(minutes=30))
    assert sweep(conn) == 0 and response_breaches(conn) == []     # a stopped clock is not checked
    assert mine(conn, DESK_A)["tk-1"]["response_status"] == "on_track"   # read where it stopped
    at(conn, T0 + timedelta(minutes=40))
    set_status(conn, aid, "assigned")
    a = row(conn, aid)
    assert float(a["response_paused_minutes"]) == 35
    assert ts(a["response_deadline"]) == T0 + timedelta(minutes=50)
    assert ts(a["next_check_at"]) == T0 + timedelta(minutes=50)
    # at risk from 75% of its 15 minutes of working time: 11.25 minutes + 35 paused
    for minute, expected in ((46, "on_track"), (47, "at_risk"), (50, "breached")):
        at(conn, T0 + timedelta(minutes=minute))
        assert mine(conn, DESK_A)["tk-1"]["response_status"] == expected, minute
    assert sweep(conn) == 1


def test_an_answer_given_while_paused_counts_the_pause_so_far(conn):
    aid = desk_ticket(conn)
    at(conn, T0 + timedelta(minutes=5))
    set_status(conn, aid, "on_hold")
    at(conn, T0 + timedelta(minutes=30))
    assert respond(conn, aid)["response_status"] == "met"          # 5 working minutes used of 15
    a = row(conn, aid)
    assert float(a["response_paused_minutes"]) == 25
    assert ts(a["response_deadline"]) == T0 + timedelta(minutes=40)
    assert a["next_check_at"] is None                              # still paused
    at(conn, T0 + timedelta(minutes=45))
    set_status(conn, aid, "in_progress")
    assert ts(row(conn, aid)["response_deadline"]) == T0 + timedelta(minutes=40)   # answered: the clock is done
    assert sweep(conn) == 0


# ----------------------------------------------------------------------------------- read sides

def test_my_assignments_shows_each_response_state(conn):
    desk_ticket(conn, "tk-met")
    for item in ("tk-on-track", "tk-at-risk", "tk-breached"):
        assign(conn, item)
    at(conn, T0 + timedelta(minutes=1))
    respond(conn, scalar(conn, "SELECT id::text FROM assignments WHERE work_item_id = 'tk-met'"))
    # started later, so at the same moment each is at a different point of its 15 minutes
    for item, started in (("tk-at-risk", 0), ("tk-on-track", 10)):
        conn.execute("UPDATE assignments SET assigned_at = %s, response_deadline = %s WHERE work_item_id = %s",
                     [T0 + timedelta(minutes=started), T0 + timedelta(minutes=started + 15), item])
    conn.execute("UPDATE assignments SET response_deadline = %s WHERE work_item_id = 'tk-breached'",
                 [T0 + timedelta(minutes=5)])
    at(conn, T0 + timedelta(minutes=12))
    seen = mine(conn, DESK_A)
    assert {item: a["response_status"] for item, a in seen.items()} == {
        "tk-met": "met", "tk-on-track": "on_track", "tk-at-risk": "at_risk", "tk-breached": "breached"}
    assert ts(seen["tk-met"]["responded_at"]) == T0 + timedelta(minutes=1)
    assert ts(seen["tk-at-risk"]["response_deadline"]) == T0 + timedelta(minutes=15)
    assert seen["tk-on-track"]["responded_at"] is None


def test_over_http_my_assignments_shows_the_response_clock_and_respond_stops_it(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        staff(conn, DESK_A, "unit-it-support", wip_limit=10)
        aid = assign(conn, "tk-http")["assignment_id"]              # the real clock: 15 minutes from now
    with running_server(engine_url) as server:
        desk = server.as_("authenticated", DESK_A)
        item = desk.get("/functions/v1/assignments/my-assignments").json()["assignments"][0]
        assert item["response_status"] == "on_track" and item["responded_at"] is None
        assert item["response_deadline"] is not None
        answered = desk.post("/functions/v1/assignments/respond", json={"assignment_id": aid, "note": "on it"})
        assert answered.status_code == 200, answered.text
        assert answered.json()["existing"] is False and answered.json()["response_status"] == "met"
        # Supabase's deployed function name answers too, idempotently
        again = desk.post("/functions/v1/assignments-respond", json={"assignment_id": aid})
        assert again.status_code == 200, again.text
        assert again.json()["existing"] is True
        assert again.json()["responded_at"] == answered.json()["responded_at"]
        item = desk.get("/functions/v1/assignments/my-assignments").json()["assignments"][0]
        assert item["response_status"] == "met" and item["responded_at"] == answered.json()["responded_at"]
        refused = server.client.post("/functions/v1/assignments/respond", json={"assignment_id": aid},
                                     headers=bearer("authenticated", uid(12)))
        assert refused.status_code == 403
        bad = desk.post("/functions/v1/assignments/respond", json={"assignment_id": "nope"})
        assert bad.status_code == 400 and bad.json()["field"] == "assignment_id"


# --------------------------------------------------------------------------------- policy change

def set_response(rules: Path, priority: str, response: str, on_change: str | None = None) -> None:
    path = rules / "sla.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["matrix"]["ticket"][priority]["response"] = response
    if on_change:
        doc["matrix"]["ticket"][priority]["on_change"] = on_change
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def apply_rules(database_url: str, workdir: Path) -> None:
    policy, objects = build(workdir / "rules")
    assert apply(database_url, objects, policy).outcome == "applied"


MONDAY = datetime(2027, 1, 4, 9, 0, tzinfo=RIYADH)              # the base policy's office works Sun-Mon 08-16


@pytest.mark.parametrize("on_change", [None, "keep"])
def test_a_response_target_change_recomputes_unanswered_work_unless_kept(database_url, traversable_tmp_path,
                                                                          on_change):
    rules = make_policy(traversable_tmp_path)
    apply_rules(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk",
                                            "role": "staff"})
        waiting = assign(conn, "T-waiting")["assignment_id"]
        answered = assign(conn, "T-answered")["assignment_id"]
        respond(conn, answered)
        assert ts(row(conn, waiting)["response_deadline"]) == MONDAY + timedelta(minutes=15)

        set_response(rules, "urgent", "5m", on_change)
        apply_rules(database_url, traversable_tmp_path)

        expected = MONDAY + timedelta(minutes=15 if on_change == "keep" else 5)
        assert ts(row(conn, waiting)["response_deadline"]) == expected
        assert ts(row(conn, waiting)["next_check_at"]) == expected
        assert ts(row(conn, answered)["response_deadline"]) == MONDAY + timedelta(minutes=15)   # answered: history
        at(conn, MONDAY + timedelta(minutes=6))
        assert sweep(conn) == (0 if on_change == "keep" else 1)


# ------------------------------------------------------------------------------------ bad input

HOSTILE = [
    ([], "request"),
    ("assignment", "request"),
    ({}, "assignment_id"),
    ({"assignment_id": None}, "assignment_id"),
    ({"assignment_id": 42}, "assignment_id"),
    ({"assignment_id": "not-a-uuid"}, "assignment_id"),
    ({"assignment_id": "'; DELETE FROM assignments; --"}, "assignment_id"),
    ({"assignment_id": uid(424242)}, "assignment_id"),           # well formed, unknown
    ({"assignment_id": "ID", "note": 7}, "note"),
    ({"assignment_id": "ID", "note": {"text": "x"}}, "note"),
    ({"assignment_id": "ID", "note": "  "}, "note"),
    ({"assignment_id": "ID", "note": "x" * 2001}, "note"),
]


@pytest.mark.parametrize(("payload", "field"), HOSTILE, ids=[f"{f}-{i}" for i, (_, f) in enumerate(HOSTILE)])
def test_respond_assignment_refuses_bad_input_naming_the_field_and_writes_nothing(conn, payload, field):
    aid = desk_ticket(conn)
    if isinstance(payload, dict) and payload.get("assignment_id") == "ID":
        payload = {**payload, "assignment_id": aid}
    before = counts(conn)
    with invalid(field):
        call(conn, "respond_assignment", payload)
    assert counts(conn) == before


def test_finished_work_cannot_be_answered(conn):
    aid = desk_ticket(conn)
    conn.execute("SELECT complete_assignment(%s)", [aid])
    before = counts(conn)
    with invalid("assignment_id") as caught:
        respond(conn, aid)
    assert "completed" in str(caught.value)
    assert counts(conn) == before
    # a note at the limit is taken as it is, quotes and all
    other = assign(conn, "tk-2")["assignment_id"]
    note = "O'Brien \"East\"; drop table x; --" + "x" * (2000 - 32)
    assert len(note) == 2000
    respond(conn, other, note=note)
    assert scalar(conn, "SELECT reason FROM assignment_audit WHERE assignment_id = %s", other) == note
