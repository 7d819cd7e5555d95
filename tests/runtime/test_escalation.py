"""The SLA monitor and escalation chains, against a real PostgreSQL with the shipped policy.

From rules/: an urgent ticket has 2h of resolution time on the always-on calendar and the
service-desk chain: 50% sla_warning to the assignee, 75% sla_warning to the supervisor, 100%
sla_breach to the unit head, 150% sla_breach to the parent unit's head. Tickets go to
unit-it-support (parent unit-corporate, whose parent is unit-gastat); urgent tickets weigh 2.
Recipients are resolved from staff data, skipping anyone not available and walking up the
unit tree. Time moves with the engine clock (rulesctl.now), never by sleeping.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import at, call, invalid, scalar, uid

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)


# IT Support (the service desk). Desk staff have the lowest ids, so they win assignment ties;
# managers carry no work (WIP 0) so assignments never land on them.
DESK_A, DESK_B = uid(11), uid(12)
IT_HEAD, IT_SUP, IT_SUP_2 = uid(17), uid(18), uid(19)
HR_A = uid(31)                                   # Human Resources: nobody above staff in the unit
CORP_HEAD, CORP_SUP = uid(51), uid(52)           # Corporate Services (parent of IT Support and HR)
GASTAT_HEAD, ADMIN = uid(61), uid(71)            # the authority (root)


# ---------------------------------------------------------------------------------------- helpers

@pytest.fixture
def listener(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as connection:
        connection.execute("LISTEN escalation_events")
        yield connection


@contextmanager
def claims(conn, **jwt):
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(jwt)])
        yield


def staff(conn, staff_id, unit_id, role="staff", **fields):
    payload = {"id": staff_id, "unit_id": unit_id, "full_name": f"{role} {staff_id[-4:]}", "role": role, **fields}
    return call(conn, "upsert_staff_profile", payload)


def manager(conn, staff_id, unit_id, role):
    return staff(conn, staff_id, unit_id, role, wip_limit=0)


def availability(conn, staff_id, status):
    return call(conn, "set_staff_availability", {"staff_id": staff_id, "status": status, "reason": "test"})


def assign(conn, work_item_id, work_item_type="ticket", priority="urgent", **fields):
    """auto_assign; an item assigned at once is answered at once (respond_assignment), so these
    tests follow the resolution chain alone (the response clock: test_sla_response.py)."""
    payload = {"work_item_id": work_item_id, "work_item_type": work_item_type, "priority": priority, **fields}
    result = call(conn, "auto_assign", payload)
    if result["status"] == "assigned":
        call(conn, "respond_assignment", {"assignment_id": result["assignment_id"]})
    return result


def sweep(conn) -> int:
    return scalar(conn, "SELECT sla_check_and_escalate()")


def escalate(conn, payload):
    return call(conn, "escalate_assignment", payload)


def complete(conn, assignment_id):
    return scalar(conn, "SELECT complete_assignment(%s)", assignment_id)


def events(conn, assignment_id=None) -> list[dict]:
    query = "SELECT to_jsonb(e) FROM escalation_events e"
    params = []
    if assignment_id is not None:
        query += " WHERE assignment_id = %s"
        params.append(assignment_id)
    rows = conn.execute(query + " ORDER BY assignment_id, level, escalated_at", params).fetchall()
    return [r[0] for r in rows]


def summary(conn, assignment_id) -> list[tuple]:
    """(level, reason, recipient_id, recipient_role) per event of the assignment."""
    return [(e["level"], e["reason"], e["recipient_id"], e["recipient_role"]) for e in events(conn, assignment_id)]


def assignment(conn, assignment_id) -> dict:
    return scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE id = %s", assignment_id)


def ts(value) -> datetime | None:
    if value is None:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def notifications(listener, expected: int) -> list[dict]:
    """The escalation_events notifications that arrived (waits at most 2 s for `expected` of them)
    once the outbox is relayed -- as the event-relay job or `rulesctl serve` would."""
    listener.execute("SELECT relay_engine_events()")
    got = []
    if expected:
        got = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=expected)
               if n.channel == "escalation_events"]
    # Anything more than expected would be a duplicate: drain briefly.
    got += [json.loads(n.payload) for n in listener.notifies(timeout=0.3) if n.channel == "escalation_events"]
    return got



def service_desk(conn, supervisor_on_leave=True):
    """IT Support with one desk worker, a supervisor (on leave), a unit head; Corporate's and
    the authority's heads above."""
    at(conn, T0 - timedelta(hours=1))
    staff(conn, DESK_A, "unit-it-support")
    manager(conn, IT_HEAD, "unit-it-support", "unit_head")
    manager(conn, IT_SUP, "unit-it-support", "supervisor")
    manager(conn, CORP_HEAD, "unit-corporate", "unit_head")
    manager(conn, GASTAT_HEAD, "unit-gastat", "unit_head")
    manager(conn, ADMIN, "unit-gastat", "admin")
    if supervisor_on_leave:
        availability(conn, IT_SUP, "on_leave")


# ---------------------------------------------------------------------------------------- scenario 3

def test_urgent_ticket_past_its_deadline_escalates_along_the_chain_once_each(conn, listener):
    service_desk(conn)
    assert scalar(conn, "SELECT availability_status FROM staff_profiles WHERE id = %s", IT_SUP) == "on_leave"
    at(conn, T0)
    result = assign(conn, "tk-urgent-1")
    assert result["status"] == "assigned" and result["assignee_id"] == DESK_A
    aid = result["assignment_id"]
    assert ts(result["sla_deadline"]) == T0 + timedelta(hours=2)

    # Nothing is due yet.
    at(conn, T0 + timedelta(minutes=59))
    assert sweep(conn) == 0
    assert notifications(listener, 0) == []

    # Three hours later (150% of the SLA): every level of the chain, once.
    at(conn, T0 + timedelta(hours=3))
    assert sweep(conn) == 4
    assert summary(conn, aid) == [
        (1, "sla_warning", DESK_A, "assignee"),
        (2, "sla_warning", IT_HEAD, "supervisor"),       # the supervisor is on leave: skipped
        (3, "sla_breach", IT_HEAD, "unit_head"),
        (4, "sla_breach", CORP_HEAD, "parent_unit_head"),
    ]
    rows = events(conn, aid)
    assert all(ts(e["escalated_at"]) == T0 + timedelta(hours=3) for e in rows)
    assert all(e["resolved_at"] is None for e in rows)
    assert [ts(e["details"]["due_at"]) for e in rows] == [T0 + timedelta(minutes=m) for m in (60, 90, 120, 180)]
    assert {e["details"]["chain_id"] for e in rows} == {"service-desk"}
    a = assignment(conn, aid)
    assert a["escalation_level"] == 4 and a["next_check_at"] is None

    # One notification per new event, carrying the event.
    notes = notifications(listener, 4)
    assert len(notes) == 4
    assert sorted((n["level"], n["reason"], n["recipient_id"]) for n in notes) == [
        (1, "sla_warning", DESK_A), (2, "sla_warning", IT_HEAD), (3, "sla_breach", IT_HEAD),
        (4, "sla_breach", CORP_HEAD)]
    assert {n["event_id"] for n in notes} == {e["id"] for e in rows}
    assert {n["assignment_id"] for n in notes} == {aid}

    # Running the sweep again writes nothing and notifies nobody, now or later.
    assert sweep(conn) == 0
    at(conn, T0 + timedelta(days=2))
    assert sweep(conn) == 0
    assert len(events(conn, aid)) == 4
    assert notifications(listener, 0) == []


def test_sweep_is_idempotent(conn):
    service_desk(conn, supervisor_on_leave=False)
    staff(conn, DESK_B, "unit-it-support")
    at(conn, T0)
    first = assign(conn, "tk-1")["assignment_id"]
    second = assign(conn, "tk-2")["assignment_id"]
    done = assign(conn, "tk-3")["assignment_id"]
    at(conn, T0 + timedelta(minutes=30))
    complete(conn, done)                                   # finished before any level fell due
    at(conn, T0 + timedelta(minutes=95))                   # past 50% and 75% of the open ones
    assert sweep(conn) == 4
    assert sweep(conn) == 0
    assert sweep(conn) == 0
    counts = conn.execute("SELECT assignment_id::text, count(*), count(DISTINCT level) FROM escalation_events"
                          " GROUP BY 1 ORDER BY 1").fetchall()
    assert sorted(counts) == sorted([(first, 2, 2), (second, 2, 2)])
    assert events(conn, done) == []
    # Unique per assignment and level, enforced by the database too.
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO escalation_events (assignment_id, level, reason) VALUES (%s, 1, 'sla_warning')",
                     [first])


def test_the_monitor_job_works_through_a_backlog_in_committed_batches(conn):
    """The sla-monitoring job's command (rules/jobs.yaml batch) sweeps batch after batch, each
    its own transaction, until one comes back short: every due level once, and no transaction
    held more than a batch of assignments."""
    from engine.compiler.render import job_commands
    from engine.policy.model import Job

    service_desk(conn, supervisor_on_leave=False)
    staff(conn, DESK_A, "unit-it-support", wip_limit=60)         # urgent tickets weigh 2
    at(conn, T0)
    results = [assign(conn, f"tk-backlog-{n}") for n in range(25)]
    assert [r["status"] for r in results] == ["assigned"] * 25, results[-1]
    ids = [r["assignment_id"] for r in results]
    at(conn, T0 + timedelta(minutes=95))                   # two levels due on each: 50 events
    job = Job("sla-monitoring", None, "30 seconds", "sla_check_and_escalate", None, 8, None)
    command, _ = job_commands(job, "public")
    assert command == "CALL public.run_batches('SELECT public.sla_check_and_escalate(8)', 8, 30)"
    conn.execute(command)
    per_assignment = conn.execute("SELECT assignment_id::text, count(*) FROM escalation_events GROUP BY 1").fetchall()
    assert sorted(per_assignment) == sorted((aid, 2) for aid in ids)
    transactions = conn.execute("SELECT xmin::text, count(DISTINCT assignment_id) FROM escalation_events"
                                " GROUP BY 1").fetchall()
    assert len(transactions) >= 4                          # 25 assignments, at most 8 per transaction
    assert max(n for _, n in transactions) <= 8
    assert sweep(conn) == 0                                # nothing left for the next run


def test_levels_fire_as_time_passes(conn, listener):
    service_desk(conn, supervisor_on_leave=False)
    at(conn, T0)
    aid = assign(conn, "tk-steps")["assignment_id"]
    assert ts(assignment(conn, aid)["next_check_at"]) == T0 + timedelta(minutes=60)

    steps = [
        # minutes after arrival, events written, level reached, next check (minutes), last event
        (59, 0, 0, 60, None),
        (60, 1, 1, 90, (1, "sla_warning", DESK_A, "assignee")),
        (75, 0, 1, 90, None),
        (90, 1, 2, 120, (2, "sla_warning", IT_SUP, "supervisor")),
        (119, 0, 2, 120, None),
        (120, 1, 3, 180, (3, "sla_breach", IT_HEAD, "unit_head")),
        (179, 0, 3, 180, None),
        (180, 1, 4, None, (4, "sla_breach", CORP_HEAD, "parent_unit_head")),
        (600, 0, 4, None, None),
    ]
    expected_events = []
    for minutes, written, level, next_check, event in steps:
        at(conn, T0 + timedelta(minutes=minutes))
        assert sweep(conn) == written, f"at {minutes} min"
        assert sweep(conn) == 0, f"again at {minutes} min"
        a = assignment(conn, aid)
        assert a["escalation_level"] == level, f"at {minutes} min"
        assert ts(a["next_check_at"]) == (None if next_check is None else T0 + timedelta(minutes=next_check))
        if event:
            expected_events.append(event)
            newest = events(conn, aid)[-1]
            assert ts(newest["escalated_at"]) == T0 + timedelta(minutes=minutes)
        assert summary(conn, aid) == expected_events
        notes = notifications(listener, written)
        assert [(n["level"], n["reason"], n["recipient_id"]) for n in notes] == [e[:3] for e in
                                                                                  ([event] if event else [])]


def test_recipients_walk_up_the_tree(conn):
    # Human Resources has no supervisor and no head: its escalations go up to Corporate Services.
    at(conn, T0 - timedelta(hours=1))
    staff(conn, HR_A, "unit-hr")
    manager(conn, CORP_HEAD, "unit-corporate", "unit_head")
    manager(conn, GASTAT_HEAD, "unit-gastat", "unit_head")
    manager(conn, ADMIN, "unit-gastat", "admin")
    at(conn, T0)
    result = assign(conn, "tk-hr", target_unit_id="unit-hr")
    assert result["assignee_id"] == HR_A
    aid = result["assignment_id"]

    def recipient(notify):
        return scalar(conn, "SELECT get_escalation_recipient(%s, %s)::text", aid, notify)

    assert [recipient(n) for n in ("assignee", "supervisor", "unit_head", "parent_unit_head", "admin")] == [
        HR_A, CORP_HEAD, CORP_HEAD, CORP_HEAD, ADMIN]

    # A supervisor in Corporate is nearer than its head for the supervisor level.
    manager(conn, CORP_SUP, "unit-corporate", "supervisor")
    assert recipient("supervisor") == CORP_SUP
    assert recipient("unit_head") == CORP_HEAD
    # Corporate's head on leave: the authority's head, one level further up.
    availability(conn, CORP_HEAD, "on_leave")
    assert recipient("unit_head") == GASTAT_HEAD
    assert recipient("parent_unit_head") == GASTAT_HEAD
    # Anyone not available is skipped, not only people on leave.
    availability(conn, CORP_SUP, "busy")
    assert recipient("supervisor") == GASTAT_HEAD
    # The assignee not available: their warning goes to the nearest available supervisor.
    availability(conn, HR_A, "offline")
    assert recipient("assignee") == GASTAT_HEAD
    availability(conn, HR_A, "available")

    # The sweep resolves recipients the same way, from the staff data at the time it runs.
    at(conn, T0 + timedelta(hours=3))
    assert sweep(conn) == 4
    assert summary(conn, aid) == [
        (1, "sla_warning", HR_A, "assignee"),
        (2, "sla_warning", GASTAT_HEAD, "supervisor"),
        (3, "sla_breach", GASTAT_HEAD, "unit_head"),
        (4, "sla_breach", GASTAT_HEAD, "parent_unit_head"),
    ]


def test_unit_without_managers_escalates_to_the_parent_units_head(conn):
    at(conn, T0 - timedelta(hours=1))
    staff(conn, HR_A, "unit-hr")
    manager(conn, CORP_HEAD, "unit-corporate", "unit_head")
    manager(conn, GASTAT_HEAD, "unit-gastat", "unit_head")
    at(conn, T0)
    aid = assign(conn, "tk-hr", target_unit_id="unit-hr")["assignment_id"]
    at(conn, T0 + timedelta(hours=3))
    assert sweep(conn) == 4
    assert summary(conn, aid) == [
        (1, "sla_warning", HR_A, "assignee"),
        (2, "sla_warning", CORP_HEAD, "supervisor"),
        (3, "sla_breach", CORP_HEAD, "unit_head"),
        (4, "sla_breach", CORP_HEAD, "parent_unit_head"),
    ]


def test_a_batch_resolves_each_recipient_as_get_escalation_recipient_does(conn):
    """The sweep looks each (unit, role) up once per batch; an assignee who holds that role
    themself must still be skipped, and an assignee not available still passes their warning
    to the supervisor. Every event's recipient equals get_escalation_recipient's answer."""
    service_desk(conn, supervisor_on_leave=False)
    # The supervisors and the head take work here too (the lowest ids win ties: desk first).
    for person, role in ((IT_HEAD, "unit_head"), (IT_SUP, "supervisor"), (IT_SUP_2, "supervisor")):
        staff(conn, person, "unit-it-support", role, wip_limit=4)
    at(conn, T0)
    held_by = {}
    for n in range(8):
        result = assign(conn, f"tk-batch-{n}")
        held_by[result["assignment_id"]] = result["assignee_id"]
    assert set(held_by.values()) == {DESK_A, IT_HEAD, IT_SUP, IT_SUP_2}, held_by
    availability(conn, DESK_A, "offline")

    at(conn, T0 + timedelta(hours=3))
    assert sweep(conn) == 4 * len(held_by)
    rows = conn.execute("""SELECT e.assignment_id::text, e.level, e.recipient_role, e.recipient_id::text,
                                  get_escalation_recipient(e.assignment_id, e.recipient_role)::text
                           FROM escalation_events e ORDER BY 1, 2""").fetchall()
    assert len(rows) == 4 * len(held_by)
    assert [(aid, level, got) for aid, level, _, got, _ in rows] == [
        (aid, level, expected) for aid, level, _, _, expected in rows]
    by_assignee_and_level = {(held_by[aid], level): got for aid, level, _, got, _ in rows}
    assert by_assignee_and_level[(IT_SUP, 2)] == IT_SUP_2          # not themself
    assert by_assignee_and_level[(IT_SUP_2, 2)] == IT_SUP
    assert by_assignee_and_level[(IT_HEAD, 2)] == IT_SUP
    assert by_assignee_and_level[(IT_HEAD, 3)] == CORP_HEAD        # the head's breach goes up a unit
    assert by_assignee_and_level[(IT_SUP, 3)] == IT_HEAD
    assert by_assignee_and_level[(DESK_A, 1)] == IT_SUP            # offline: the supervisor is warned
    assert by_assignee_and_level[(IT_SUP, 1)] == IT_SUP


def test_a_batch_on_a_business_calendar_falls_due_when_sla_level_due_at_says(conn):
    """Translation requests run on riyadh-business (Sunday to Thursday, 08:00-16:00) with the
    standard chain (75/100/150/200% of 8h or 40h). Arrivals spread over a week, one sweep ten
    days on: every event's due time is sla_level_due_at's, every level at or before the sweep
    fired, and each next check is the first level still ahead."""
    at(conn, T0 - timedelta(hours=1))
    for n in range(4):
        staff(conn, uid(80 + n), "unit-translation", wip_limit=10)
    ids = []
    for n in range(12):
        at(conn, T0 + timedelta(hours=13 * n))                 # through nights and the weekend
        ids.append(assign(conn, f"tr-cal-{n}", "translation_request", ("urgent", "normal")[n % 2])["assignment_id"])
    sweep_at = T0 + timedelta(days=10)
    at(conn, sweep_at)
    written = sweep(conn)
    rows = conn.execute("""
        SELECT l.level, sla_level_due_at(a.work_item_type, a.priority, a.arrived_at, a.paused_working_minutes, l.level),
               e.details ->> 'due_at', a.escalation_level, a.next_check_at, a.id
        FROM assignments a
        JOIN sla_configs c ON c.work_item_type = a.work_item_type AND c.priority = a.priority
        JOIN escalation_levels l ON l.chain_id = c.escalation_chain_id
        LEFT JOIN escalation_events e ON e.assignment_id = a.id AND e.level = l.level
        WHERE a.id = ANY (%s::uuid[]) ORDER BY a.id, l.level""", [ids]).fetchall()
    assert written == sum(1 for r in rows if r[2] is not None)
    assert any(r[1] <= sweep_at for r in rows) and any(r[1] > sweep_at for r in rows)   # both kinds present
    ahead = {}
    for level, due, event_due, reached, _next_check, aid in rows:
        if due <= sweep_at:
            assert event_due is not None and ts(event_due) == due, (level, due, event_due)
            assert reached >= level
        else:
            assert event_due is None and reached < level
            ahead.setdefault(aid, []).append(due)
    for _, _, _, _, next_check, aid in rows:
        assert next_check == min(ahead.get(aid, [None])), (aid, next_check)


def test_every_update_moves_version_by_one_and_stamps_the_engine_time(conn):
    """Plain updates, the sweep's batch update, a completion and the load counter it moves:
    each moves version by exactly one and stamps updated_at with the engine's time."""
    service_desk(conn, supervisor_on_leave=False)
    at(conn, T0)
    aid = assign(conn, "tk-stamped")["assignment_id"]

    def stamps(table, row_id):
        return tuple(conn.execute(f"SELECT version, updated_at FROM {table} WHERE id = %s", [row_id]).fetchone())

    version, _ = stamps("assignments", aid)
    staff_version, _ = stamps("staff_profiles", DESK_A)
    at(conn, T0 + timedelta(minutes=10))
    conn.execute("UPDATE assignments SET needs_review = true WHERE id = %s", [aid])            # by the triggers
    assert stamps("assignments", aid) == (version + 1, T0 + timedelta(minutes=10))
    conn.execute("UPDATE assignments SET version = version WHERE id = %s", [aid])
    assert stamps("assignments", aid) == (version + 2, T0 + timedelta(minutes=10))

    at(conn, T0 + timedelta(minutes=95))                   # two levels fall due: one update
    assert sweep(conn) == 2
    assert stamps("assignments", aid) == (version + 3, T0 + timedelta(minutes=95))

    at(conn, T0 + timedelta(minutes=100))
    complete(conn, aid)
    assert stamps("assignments", aid) == (version + 4, T0 + timedelta(minutes=100))
    assert stamps("staff_profiles", DESK_A) == (staff_version + 1, T0 + timedelta(minutes=100))


def test_paused_assignments_do_not_escalate(conn):
    service_desk(conn, supervisor_on_leave=False)
    staff(conn, DESK_B, "unit-it-support")
    at(conn, T0)
    paused = assign(conn, "tk-paused")["assignment_id"]
    running = assign(conn, "tk-running")["assignment_id"]
    at(conn, T0 + timedelta(minutes=10))
    conn.execute("UPDATE assignments SET status = 'on_hold' WHERE id = %s", [paused])

    at(conn, T0 + timedelta(hours=5))
    assert sweep(conn) == 4                                 # all four for the running one ...
    assert events(conn, paused) == []                       # ... none for the paused one
    assert len(events(conn, running)) == 4
    assert assignment(conn, paused)["escalation_level"] == 0

    # Resumed after 4h50m on hold: 10 min of work done, the 50% level is 50 min of work away.
    conn.execute("UPDATE assignments SET status = 'in_progress' WHERE id = %s", [paused])
    a = assignment(conn, paused)
    assert ts(a["next_check_at"]) == T0 + timedelta(hours=5, minutes=50)
    assert ts(a["sla_deadline"]) == T0 + timedelta(hours=6, minutes=50)
    at(conn, T0 + timedelta(hours=5, minutes=49))
    assert sweep(conn) == 0
    at(conn, T0 + timedelta(hours=5, minutes=50))
    assert sweep(conn) == 1
    assert summary(conn, paused) == [(1, "sla_warning", DESK_A, "assignee")]
    # The 75% level (90 min of work) falls due at 6h20m, the breach at the pushed deadline, 6h50m.
    at(conn, T0 + timedelta(hours=6, minutes=49))
    assert sweep(conn) == 1
    assert [e[0] for e in summary(conn, paused)] == [1, 2]
    at(conn, T0 + timedelta(hours=6, minutes=50))
    assert sweep(conn) == 1
    assert summary(conn, paused)[-1] == (3, "sla_breach", IT_HEAD, "unit_head")


# ---------------------------------------------------------------------------------------- by hand

def test_manual_escalation_moves_one_level_and_the_sweep_carries_on(conn, listener):
    service_desk(conn, supervisor_on_leave=False)
    at(conn, T0)
    aid = assign(conn, "tk-manual")["assignment_id"]

    at(conn, T0 + timedelta(minutes=10))
    result = escalate(conn, {"assignment_id": aid, "reason": "Minister's office called twice"})
    assert result["level"] == 1 and result["reason"] == "manual"
    assert result["recipient_id"] == DESK_A and result["recipient_role"] == "assignee"
    [event] = events(conn, aid)
    assert event["id"] == result["event_id"]
    assert (event["level"], event["reason"], event["recipient_id"]) == (1, "manual", DESK_A)
    assert event["details"]["reason"] == "Minister's office called twice"
    assert ts(event["escalated_at"]) == T0 + timedelta(minutes=10)
    assert event["escalated_by"] is None                    # a trusted server-side caller
    a = assignment(conn, aid)
    assert a["escalation_level"] == 1
    assert ts(a["next_check_at"]) == T0 + timedelta(minutes=90)
    [note] = notifications(listener, 1)
    assert (note["event_id"], note["level"], note["reason"], note["recipient_id"]) == (
        result["event_id"], 1, "manual", DESK_A)

    # The 50% level was taken by hand: the sweep does not repeat it ...
    at(conn, T0 + timedelta(minutes=60))
    assert sweep(conn) == 0
    # ... and carries on from the next level.
    at(conn, T0 + timedelta(minutes=90))
    assert sweep(conn) == 1
    assert summary(conn, aid)[-1] == (2, "sla_warning", IT_SUP, "supervisor")
    notifications(listener, 1)

    # The supervisor escalates by hand to the unit head; escalated_by records who did.
    at(conn, T0 + timedelta(minutes=100))
    with claims(conn, sub=IT_SUP, role="authenticated"):
        result = escalate(conn, {"assignment_id": aid, "reason": "needs the head's decision"})
    assert (result["level"], result["recipient_id"]) == (3, IT_HEAD)
    assert events(conn, aid)[-1]["escalated_by"] == IT_SUP
    assert ts(assignment(conn, aid)["next_check_at"]) == T0 + timedelta(minutes=180)
    at(conn, T0 + timedelta(minutes=120))
    assert sweep(conn) == 0                                 # the 100% level was taken by hand
    at(conn, T0 + timedelta(minutes=180))
    assert sweep(conn) == 1
    assert [(e[0], e[1]) for e in summary(conn, aid)] == [(1, "manual"), (2, "sla_warning"), (3, "manual"),
                                                          (4, "sla_breach")]
    before = len(events(conn, aid))
    with invalid("assignment_id") as caught:               # nothing left above the last level
        escalate(conn, {"assignment_id": aid, "reason": "again"})
    assert "last level" in str(caught.value)
    assert len(events(conn, aid)) == before


def test_manual_escalation_bad_input_writes_nothing(conn):
    service_desk(conn, supervisor_on_leave=False)
    staff(conn, DESK_B, "unit-it-support")
    at(conn, T0)
    active = assign(conn, "tk-active")["assignment_id"]
    done = assign(conn, "tk-done")["assignment_id"]
    assert {assignment(conn, active)["assignee_id"], assignment(conn, done)["assignee_id"]} == {DESK_A, DESK_B}
    at(conn, T0 + timedelta(minutes=5))
    complete(conn, done)

    def state():
        return (scalar(conn, "SELECT count(*) FROM escalation_events"),
                conn.execute("SELECT id, escalation_level, next_check_at FROM assignments ORDER BY id").fetchall())

    before = state()
    with invalid("assignment_id") as caught:
        escalate(conn, {"assignment_id": done, "reason": "too late"})
    assert "completed" in str(caught.value)
    with invalid("reason"):
        escalate(conn, {"assignment_id": active})
    with invalid("reason"):
        escalate(conn, {"assignment_id": active, "reason": "   "})
    with invalid("reason"):
        escalate(conn, {"assignment_id": active, "reason": None})
    with invalid("assignment_id") as caught:
        escalate(conn, {"assignment_id": uid(999), "reason": "who?"})
    assert "unknown assignment" in str(caught.value)
    with invalid("assignment_id"):
        escalate(conn, {"assignment_id": "not-a-uuid", "reason": "x"})
    with invalid("assignment_id"):
        escalate(conn, {"reason": "no assignment"})
    # A plain staff member may not escalate someone else's work.
    other = assignment(conn, active)["assignee_id"]
    outsider = DESK_A if other == DESK_B else DESK_B
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with claims(conn, sub=outsider, role="authenticated"):
            escalate(conn, {"assignment_id": active, "reason": "not mine"})
    assert state() == before


# ---------------------------------------------------------------------------------------- housekeeping

def test_cleanup_deletes_only_resolved_events_older_than_the_retention(conn):
    assert scalar(conn, "SELECT value FROM engine_settings WHERE key = 'escalation_events.retention'") == {
        "interval": "90 days"}
    # Whole days of retention are counted in the session's time zone: UTC keeps the boundaries
    # below exact whatever zone the test cluster was initialised with.
    conn.execute("SET TimeZone = 'UTC'")
    service_desk(conn, supervisor_on_leave=False)
    call(conn, "upsert_staff_profile", {"id": DESK_A, "unit_id": "unit-it-support", "full_name": "Desk A",
                                         "wip_limit": 10})
    at(conn, T0)
    old = assign(conn, "tk-old")["assignment_id"]
    recent = assign(conn, "tk-recent")["assignment_id"]
    still_open = assign(conn, "tk-open")["assignment_id"]
    at(conn, T0 + timedelta(hours=3))
    assert sweep(conn) == 12
    complete(conn, old)                                      # resolves its four events now
    assert {ts(e["resolved_at"]) for e in events(conn, old)} == {T0 + timedelta(hours=3)}
    assert {e["resolved_at"] for e in events(conn, recent)} == {None}
    at(conn, T0 + timedelta(days=60))
    complete(conn, recent)
    assert {ts(e["resolved_at"]) for e in events(conn, recent)} == {T0 + timedelta(days=60)}

    def remaining():
        return {a: len(events(conn, a)) for a in (old, recent, still_open)}

    at(conn, T0 + timedelta(days=90, hours=3) - timedelta(minutes=1))
    assert scalar(conn, "SELECT cleanup_escalation_events()") == 0
    at(conn, T0 + timedelta(days=90, hours=3, minutes=1))
    assert scalar(conn, "SELECT cleanup_escalation_events()") == 4
    assert remaining() == {old: 0, recent: 4, still_open: 4}
    assert scalar(conn, "SELECT cleanup_escalation_events()") == 0
    at(conn, T0 + timedelta(days=400))
    assert scalar(conn, "SELECT cleanup_escalation_events()") == 4
    assert remaining() == {old: 0, recent: 0, still_open: 4}     # unresolved events are kept, however old
    # The assignments themselves stay.
    assert scalar(conn, "SELECT count(*) FROM assignments WHERE id = ANY(%s::uuid[])",
                  [old, recent, still_open]) == 3


def test_capacity_snapshot_is_one_row_per_unit_per_day(conn):
    units = scalar(conn, "SELECT count(*) FROM organizational_units")
    assert units == 11
    day1 = datetime(2027, 1, 5, 9, 0, tzinfo=RIYADH)
    at(conn, day1)
    staff(conn, DESK_A, "unit-it-support")                    # unit default WIP 5
    staff(conn, DESK_B, "unit-it-support", wip_limit=3)
    manager(conn, IT_SUP, "unit-it-support", "supervisor")
    availability(conn, IT_SUP, "on_leave")
    staff(conn, uid(21), "unit-translation", wip_limit=1)

    def snapshot(unit_id, date="2027-01-05"):
        return conn.execute(
            "SELECT staff_count, capacity, assigned, utilisation, queue_depth, captured_at FROM capacity_snapshots"
            " WHERE unit_id = %s AND snapshot_date = %s", [unit_id, date]).fetchone()

    assert scalar(conn, "SELECT capture_capacity_snapshot()") == units
    assert scalar(conn, "SELECT count(*) FROM capacity_snapshots") == units
    assert snapshot("unit-it-support") == (2, 8, 0, 0, 0, day1)      # the supervisor on leave does not count
    assert snapshot("unit-hr") == (0, 0, 0, None, 0, day1)

    # Work arrives; the same day's snapshot is updated in place.
    later = day1 + timedelta(hours=6)
    at(conn, later)
    assign(conn, "tk-u", "ticket", "urgent")                   # weight 2
    assign(conn, "tk-n", "ticket", "normal")                   # weight 1
    assign(conn, "tr-1", "translation_request", "normal")
    queued = assign(conn, "tr-2", "translation_request", "normal")
    assert queued["status"] == "queued"
    assert scalar(conn, "SELECT capture_capacity_snapshot()") == units
    assert scalar(conn, "SELECT count(*) FROM capacity_snapshots") == units
    assert scalar(conn, "SELECT count(DISTINCT (unit_id, snapshot_date)) FROM capacity_snapshots") == units
    assert snapshot("unit-it-support") == (2, 8, 3, 37.5, 0, later)
    assert snapshot("unit-translation") == (1, 1, 1, 100, 1, later)

    # The next day: new rows; yesterday's stay as they were.
    day2 = day1 + timedelta(days=1)
    at(conn, day2)
    assert scalar(conn, "SELECT capture_capacity_snapshot()") == units
    assert scalar(conn, "SELECT count(*) FROM capacity_snapshots") == 2 * units
    assert snapshot("unit-it-support", "2027-01-06") == (2, 8, 3, 37.5, 0, day2)
    assert snapshot("unit-it-support") == (2, 8, 3, 37.5, 0, later)

    # The day is the unit's own (Asia/Riyadh): 22:30 UTC on the 6th is already the 7th there.
    at(conn, datetime(2027, 1, 6, 22, 30, tzinfo=UTC))
    capture = scalar(conn, "SELECT capture_capacity_snapshot()")
    assert capture == units
    assert scalar(conn, "SELECT count(*) FROM capacity_snapshots WHERE snapshot_date = '2027-01-07'") == units
    assert scalar(conn, "SELECT count(*) FROM capacity_snapshots") == 3 * units


def test_reassigned_work_keeps_its_paused_time_for_escalation(conn):
    # Translation urgent: 8h on riyadh-business (Sunday-Thursday 08:00-16:00), standard chain
    # 75% assignee / 100% supervisor / 150% unit head / 200% parent unit head.
    sunday = datetime(2027, 1, 10, 8, 0, tzinfo=RIYADH)
    at(conn, sunday)
    tr_a, tr_b = uid(21), uid(22)
    staff(conn, tr_a, "unit-translation")
    staff(conn, tr_b, "unit-translation")
    aid = assign(conn, "tr-urgent", "translation_request")["assignment_id"]
    assert assignment(conn, aid)["assignee_id"] == tr_a
    at(conn, sunday + timedelta(hours=1))
    conn.execute("UPDATE assignments SET status = 'on_hold' WHERE id = %s", [aid])
    monday = datetime(2027, 1, 11, 9, 0, tzinfo=RIYADH)
    at(conn, monday)
    conn.execute("UPDATE assignments SET status = 'in_progress' WHERE id = %s", [aid])
    a = assignment(conn, aid)
    # Paused Sunday 09:00-16:00 and Monday 08:00-09:00: 480 working minutes.
    assert float(a["paused_working_minutes"]) == 480
    assert ts(a["sla_deadline"]) == datetime(2027, 1, 11, 16, 0, tzinfo=RIYADH)
    assert ts(a["next_check_at"]) == datetime(2027, 1, 11, 14, 0, tzinfo=RIYADH)    # 6h of work

    # Monday 10:00 (2h of the 8h worked) the assignee goes on leave: urgent work is reassigned.
    at(conn, monday + timedelta(hours=1))
    assert availability(conn, tr_a, "on_leave")["reassigned"] == 1
    new = scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE work_item_id = 'tr-urgent'"
                       " AND status = 'assigned'")
    assert new["assignee_id"] == tr_b
    assert ts(new["sla_deadline"]) == datetime(2027, 1, 11, 16, 0, tzinfo=RIYADH)  # the deadline is kept ...
    # ... and so must be the time paused: the 75% warning is still at Monday 14:00, and nothing
    # (certainly no sla_breach) is due at 10:00, hours before the deadline. The new assignee's
    # response clock starts now (1h: Monday 11:00), so the monitor looks then first.
    assert scalar(conn, "SELECT sla_next_level_due_at(a) FROM assignments a WHERE id = %s", new["id"]) \
        == datetime(2027, 1, 11, 14, 0, tzinfo=RIYADH)
    assert ts(new["next_check_at"]) == ts(new["response_deadline"]) == datetime(2027, 1, 11, 11, 0, tzinfo=RIYADH)
    assert sweep(conn) == 0
    assert events(conn, new["id"]) == []


def test_every_new_escalation_event_is_notified_including_leave_flags(conn, listener):
    # leave.yaml: normal/low work of someone going on leave is flagged and the supervisor told,
    # through an escalation_events row (reason staff_unavailable). Listeners (the HTTP API's
    # event stream) learn about new events only through the escalation_events channel.
    service_desk(conn, supervisor_on_leave=False)
    at(conn, T0)
    aid = assign(conn, "tk-normal", priority="normal")["assignment_id"]
    at(conn, T0 + timedelta(minutes=30))
    assert availability(conn, DESK_A, "on_leave")["flagged_for_review"] == 1
    [event] = events(conn, aid)
    assert (event["reason"], event["recipient_id"]) == ("staff_unavailable", IT_SUP)
    notes = notifications(listener, 1)
    assert [(n.get("event_id"), n.get("recipient_id")) for n in notes] == [(event["id"], IT_SUP)]
