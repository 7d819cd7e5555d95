"""Running work obeys a changed SLA policy, consistently: one definition of
an item's deadline and SLA state serves the sweep, my_assignments and the queue; a change of
SLA targets, calendars or escalation levels recomputes deadlines and next checks of running and
queued work (`on_change: keep` keeps started work's deadlines, and the checks follow them); an
inserted level never re-notifies one already passed; the plan counts what moves.

The base policy (tests/policies/base): the office calendar works Sunday and Monday 08:00-16:00
(Riyadh); tickets: urgent 2h, low 8h of resolution; warning at 75%; the standard chain warns
the assignee at 75% and reports a breach to the supervisor at 100%. Staff take 3 items each.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import yaml
from engine_calls import at, call, scalar, uid
from policy_cases import make_policy

from engine.migrate.apply import apply
from engine.migrate.plan import Plan, build_plan
from engine.migrate.report import as_json, as_markdown, as_text
from engine.project import DEFAULT_TEMPLATES, build

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
MONDAY = datetime(2027, 1, 4, 9, 0, tzinfo=RIYADH)       # an hour into a working Monday
NEXT_SUNDAY = datetime(2027, 1, 10, 8, 0, tzinfo=RIYADH)  # the next working day


def edit(rules: Path, name: str, change) -> None:
    path = rules / name
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def set_target(rules: Path, priority: str, resolution: str) -> None:
    edit(rules, "sla.yaml", lambda doc: doc["matrix"]["ticket"][priority].update(resolution=resolution))


def apply_rules(database_url: str, workdir: Path):
    policy, objects = build(workdir / "rules")
    assert apply(database_url, objects, policy).outcome == "applied"
    return policy, objects


def installed(database_url: str, workdir: Path) -> Path:
    rules = make_policy(workdir)
    apply_rules(database_url, workdir)
    return rules


def arrive(conn, when: datetime, work_item_id: str, priority: str = "urgent") -> dict:
    """auto_assign at `when`; an item assigned is answered at once (respond_assignment): these
    tests follow the resolution clock (the response clock's: tests/runtime/test_sla_response.py)."""
    at(conn, when)
    result = call(conn, "auto_assign", {"work_item_id": work_item_id, "work_item_type": "ticket",
                                        "priority": priority})
    if result["status"] == "assigned":
        call(conn, "respond_assignment", {"assignment_id": result["assignment_id"]})
    return result


def clock(conn, assignment_id) -> tuple[datetime, datetime | None, int]:
    return conn.execute("SELECT sla_deadline, next_check_at, escalation_level FROM assignments WHERE id = %s",
                        [assignment_id]).fetchone()


def statuses(conn, staff_id: str) -> dict[str, str]:
    """my_assignments' sla_status per work item, as the staff member sees it."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     [json.dumps({"sub": staff_id, "role": "authenticated"})])
        mine = scalar(conn, "SELECT my_assignments()")
    return {a["work_item_id"]: a["sla_status"] for a in mine["assignments"]}


def levels_sent(conn, assignment_id) -> list[int]:
    return scalar(conn, "SELECT coalesce(array_agg(level ORDER BY level), '{}') FROM escalation_events "
                        "WHERE assignment_id = %s", assignment_id)


def status_from_sweep(levels: list[int]) -> str:
    """What the sweep's events say (standard chain: level 1 is the warning, 2 the breach)."""
    return "breached" if 2 in levels else "at_risk" if 1 in levels else "on_track"


def test_a_target_change_moves_deadlines_and_checks_together_and_my_assignments_agrees_with_the_sweep(
        database_url, traversable_tmp_path):
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        done = arrive(conn, MONDAY - timedelta(minutes=30), "T-done")
        conn.execute("SELECT complete_assignment(%s)", [done["assignment_id"]])
        done_clock = clock(conn, done["assignment_id"])
        running = arrive(conn, MONDAY, "T-run")["assignment_id"]
        low = arrive(conn, MONDAY, "T-low", "low")["assignment_id"]
        arrive(conn, MONDAY, "T-filler")
        queued = arrive(conn, MONDAY + timedelta(minutes=10), "T-queued")
        assert queued["status"] == "queued"
        assert clock(conn, running) == (MONDAY + timedelta(hours=2), MONDAY + timedelta(minutes=90), 0)

        set_target(rules, "urgent", "1h")
        apply_rules(database_url, traversable_tmp_path)

        # the deadline and the next check move together: 1h, its 75% at 45 minutes
        assert clock(conn, running) == (MONDAY + timedelta(hours=1), MONDAY + timedelta(minutes=45), 0)
        assert clock(conn, low)[0] == NEXT_SUNDAY + timedelta(hours=1)          # 8h: 7h on Monday, 1h Sunday
        assert clock(conn, done["assignment_id"]) == done_clock                  # completed work is history
        assert scalar(conn, "SELECT sla_deadline FROM assignment_queue WHERE work_item_id = 'T-queued'") \
            == MONDAY + timedelta(minutes=70)                                    # queued work follows too

        # at every moment my_assignments says what the sweep does at the same engine_now
        for minutes in (30, 44, 46, 59, 61, 120):
            at(conn, MONDAY + timedelta(minutes=minutes))
            scalar(conn, "SELECT sla_check_and_escalate()")
            seen = statuses(conn, uid(1))["T-run"]
            assert seen == status_from_sweep(levels_sent(conn, running)), minutes
        assert levels_sent(conn, running) == [1, 2]


def test_a_closure_moves_running_deadlines(database_url, traversable_tmp_path):
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        running = arrive(conn, MONDAY, "T-1")["assignment_id"]

        edit(rules, "calendars.yaml",
             lambda doc: doc["calendars"][0]["closures"].append({"date": "2027-01-04", "reason": "Power cut"}))
        apply_rules(database_url, traversable_tmp_path)

        # Monday is closed: the 2h run from Sunday 08:00, the warning at 09:30
        assert clock(conn, running) == (NEXT_SUNDAY + timedelta(hours=2), NEXT_SUNDAY + timedelta(minutes=90), 0)
        at(conn, MONDAY + timedelta(hours=3))
        assert statuses(conn, uid(1)) == {"T-1": "on_track"}
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 0


def test_on_change_keep_keeps_started_deadlines_and_the_checks_follow_them(database_url, traversable_tmp_path):
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk",
                                            "role": "staff", "wip_limit": 1})
        running = arrive(conn, MONDAY, "T-run")["assignment_id"]
        assert arrive(conn, MONDAY, "T-queued")["status"] == "queued"

        edit(rules, "sla.yaml", lambda doc: doc["defaults"].update(on_change="keep"))
        set_target(rules, "urgent", "4h")
        apply_rules(database_url, traversable_tmp_path)

        # started work keeps its 2h deadline, and its checks stay measured against it
        assert clock(conn, running) == (MONDAY + timedelta(hours=2), MONDAY + timedelta(minutes=90), 0)
        # queued work is not started: it takes the new 4h
        assert scalar(conn, "SELECT sla_deadline FROM assignment_queue WHERE work_item_id = 'T-queued'") \
            == MONDAY + timedelta(hours=4)
        at(conn, MONDAY + timedelta(minutes=121))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 2                # warning and breach, on time
        assert statuses(conn, uid(1)) == {"T-run": "breached"}

        # the queued item, taken when capacity frees, brings the new target with it
        conn.execute("SELECT complete_assignment(%s)", [running])
        taken = scalar(conn, "SELECT id FROM assignments WHERE work_item_id = 'T-queued'")
        assert clock(conn, taken)[0] == MONDAY + timedelta(hours=4)


def test_a_level_inserted_in_the_middle_never_re_notifies(database_url, traversable_tmp_path):
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        breached = arrive(conn, MONDAY, "T-breached")["assignment_id"]             # deadline 11:00
        warned = arrive(conn, MONDAY + timedelta(minutes=20), "T-warned")["assignment_id"]   # deadline 11:20
        at(conn, MONDAY + timedelta(minutes=125))                                  # 11:05
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 3
        assert (levels_sent(conn, breached), levels_sent(conn, warned)) == ([1, 2], [1])

        edit(rules, "escalation.yaml", lambda doc: doc["chains"][0]["levels"].insert(
            1, {"at": "90%", "reason": "sla_warning", "notify": "supervisor"}))
        apply_rules(database_url, traversable_tmp_path)

        # the breached item has passed 75%, 90% and 100%: nothing is left to send it
        assert clock(conn, breached)[1:] == (None, 3)
        # the warned one passed 75% only: the new 90% level is next (11:08), then 100% (11:20)
        assert clock(conn, warned)[1:] == (MONDAY + timedelta(minutes=128), 1)
        at(conn, MONDAY + timedelta(minutes=200))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 2
        assert levels_sent(conn, breached) == [1, 3]          # never re-notified: 75% and 100%, renumbered
        assert levels_sent(conn, warned) == [1, 2, 3]


def test_at_risk_is_a_share_of_working_time(database_url, traversable_tmp_path):
    """A low ticket (8h) arriving Monday 14:00: 2h on Monday, 6h from Sunday 08:00, deadline
    Sunday 14:00, warning (75%, 6h of work) Sunday 12:00. On Sunday at 09:00 six days of wall
    clock have passed (97%), but only 3h of work (37.5%): on track, and the sweep agrees."""
    installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        item = arrive(conn, MONDAY + timedelta(hours=5), "T-low", "low")["assignment_id"]
        assert clock(conn, item)[:2] == (NEXT_SUNDAY + timedelta(hours=6), NEXT_SUNDAY + timedelta(hours=4))
        at(conn, NEXT_SUNDAY + timedelta(hours=1))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 0
        assert statuses(conn, uid(1)) == {"T-low": "on_track"}
        at(conn, NEXT_SUNDAY + timedelta(hours=4, minutes=1))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 1
        assert statuses(conn, uid(1)) == {"T-low": "at_risk"}


def test_the_plan_counts_what_moves(database_url, traversable_tmp_path):
    """Hand count, urgent 2h -> 1h and low 8h -> 6h, the plan read at Monday 10:20:
    - R1 urgent from 09:00: 11:00 -> 10:00 (1h), on track -> breached
    - R2 urgent from 09:30: 11:30 -> 10:30 (1h), on track -> at risk (warning now 10:15)
    - R3 low from 09:00: Sunday 09:00 -> Monday 15:00 (5d 18h), on track -> on track
    - Q1 urgent queued from 10:00: 12:00 -> 11:00 (1h), on track -> on track
    - a completed urgent item: not counted
    3 running and 1 queued move, the largest by 5d 18h; 1 becomes at risk, 1 breached."""
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        done = arrive(conn, MONDAY - timedelta(minutes=30), "C1")
        conn.execute("SELECT complete_assignment(%s)", [done["assignment_id"]])
        arrive(conn, MONDAY, "R1")
        arrive(conn, MONDAY + timedelta(minutes=30), "R2")
        arrive(conn, MONDAY, "R3", "low")
        assert arrive(conn, MONDAY + timedelta(minutes=60), "Q1")["status"] == "queued"

    set_target(rules, "urgent", "1h")
    set_target(rules, "low", "6h")
    policy, objects = build(traversable_tmp_path / "rules")
    plan_now = (MONDAY + timedelta(minutes=80)).isoformat()
    url = f"{database_url}{'&' if '?' in database_url else '?'}options={quote(f'-c rulesctl.now={plan_now}')}"
    last = build_plan(url, policy, objects, DEFAULT_TEMPLATES).steps[-1]
    assert last.key == "reschedule:public.sla_next_checks"
    assert last.reason.endswith("; 3 running and 1 queued items change deadline, the largest by 5d 18h; "
                                "1 become at risk, 1 become breached")


def set_response(rules: Path, priority: str, response: str) -> None:
    edit(rules, "sla.yaml", lambda doc: doc["matrix"]["ticket"][priority].update(response=response))


def response_targets_changed(database_url: str, workdir: Path, keep: bool = False) -> Plan:
    """The plan, read at Monday 09:18, of response urgent 15m -> 30m and low 1h -> 20m over five
    assignments: L2 low from 08:40; U1 urgent, L1 low, A1 urgent from 09:00; U2 urgent from 09:05;
    A1 answered at once, the others not."""
    rules = installed(database_url, workdir)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY - timedelta(minutes=20))
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff",
                                            "wip_limit": 5})
        for minutes, item, priority in ((-20, "L2", "low"), (0, "U1", "urgent"), (0, "L1", "low"),
                                        (0, "A1", "urgent"), (5, "U2", "urgent")):
            at(conn, MONDAY + timedelta(minutes=minutes))
            result = call(conn, "auto_assign", {"work_item_id": item, "work_item_type": "ticket",
                                                "priority": priority})
            assert result["status"] == "assigned"
        answered = scalar(conn, "SELECT id::text FROM assignments WHERE work_item_id = 'A1'")
        call(conn, "respond_assignment", {"assignment_id": answered})
    if keep:
        edit(rules, "sla.yaml", lambda doc: doc["defaults"].update(on_change="keep"))
    set_response(rules, "urgent", "30m")
    set_response(rules, "low", "20m")
    policy, objects = build(workdir / "rules")
    plan_now = (MONDAY + timedelta(minutes=18)).isoformat()
    url = f"{database_url}{'&' if '?' in database_url else '?'}options={quote(f'-c rulesctl.now={plan_now}')}"
    return build_plan(url, policy, objects, DEFAULT_TEMPLATES)


def test_the_plan_counts_response_deadline_moves(database_url, traversable_tmp_path):
    """Hand count, response urgent 15m -> 30m and low 1h -> 20m (resolution targets unchanged),
    the plan read at Monday 09:18, every item assigned and not yet answered unless said:
    - U1 urgent from 09:00: 09:15 -> 09:30 (15m), breached -> on track
    - U2 urgent from 09:05: 09:20 -> 09:35 (15m), at risk (13 of 15m) -> on track
    - L1 low from 09:00: 10:00 -> 09:20 (40m), on track (18 of 60m) -> at risk (18 of 20m)
    - L2 low from 08:40: 09:40 -> 09:00 (40m), on track (38 of 60m) -> breached
    - A1 urgent from 09:00, answered at once: its response deadline stays; not counted
    4 unanswered items change response deadline, the largest by 40m; 1 becomes at risk, 1
    breached. No resolution deadline moves, so the text says only the response clock's; the
    JSON carries both clocks' counts, the text and Markdown Impact say them."""
    plan = response_targets_changed(database_url, traversable_tmp_path)
    moves = ("4 unanswered items change response deadline, the largest by 40m; 1 become at risk, "
             "1 become breached on the response clock")
    last = plan.steps[-1]
    assert last.key == "reschedule:public.sla_next_checks"
    assert last.reason.endswith(f"); {moves}") and "queued items change deadline" not in last.reason
    assert f"  SLA deadlines: {last.reason}" in as_text(plan, colour=False).splitlines()
    assert f"**SLA deadlines:** {last.reason}" in as_markdown(plan).splitlines()
    impact = json.loads(as_json(plan))["impact"]
    assert impact["sla_deadlines"] == last.reason
    assert impact["sla_moves"] == {
        "resolution": {"running": 0, "queued": 0, "largest_minutes": 0, "at_risk": 0, "breached": 0},
        "response": {"running": 4, "queued": 0, "largest_minutes": 40, "at_risk": 1, "breached": 1}}
    assert Plan.from_dict(json.loads(as_json(plan))).impact.sla_moves == plan.impact.sla_moves
    # and apply moves exactly those: the plan counted with what sla_reschedule_checks() writes
    apply_rules(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        deadlines = dict(conn.execute("SELECT work_item_id, response_deadline FROM assignments").fetchall())
    assert deadlines == {"U1": MONDAY + timedelta(minutes=30), "U2": MONDAY + timedelta(minutes=35),
                         "L1": MONDAY + timedelta(minutes=20), "L2": MONDAY, "A1": MONDAY + timedelta(minutes=15)}


def test_kept_response_deadlines_are_not_counted_as_moving(database_url, traversable_tmp_path):
    """The same change under `on_change: keep`: sla_reschedule_checks keeps every started
    response deadline, so the plan counts none moving (yet still reschedules the checks)."""
    plan = response_targets_changed(database_url, traversable_tmp_path, keep=True)
    assert plan.steps[-1].reason.endswith("; no deadline moves")
    assert plan.impact.sla_moves is not None and not plan.impact.sla_moves.response.moves


def test_a_manual_escalation_follows_a_kept_deadline_and_counts_as_passed(database_url, traversable_tmp_path):
    """escalate_assignment measures the next level against the item's own (kept) deadline, as the
    sweep does, and records the share it passed, so a level inserted below it later is never sent."""
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        running = arrive(conn, MONDAY, "T-manual")["assignment_id"]                 # urgent: 2h, deadline 11:00
        edit(rules, "sla.yaml", lambda doc: doc["defaults"].update(on_change="keep"))
        set_target(rules, "urgent", "4h")
        apply_rules(database_url, traversable_tmp_path)
        assert clock(conn, running)[0] == MONDAY + timedelta(hours=2)               # kept

        at(conn, MONDAY + timedelta(minutes=10))
        event = call(conn, "escalate_assignment", {"assignment_id": running, "reason": "customer called"})
        assert event["level"] == 1
        assert scalar(conn, "SELECT (details->>'threshold_percent')::numeric FROM escalation_events WHERE id = %s",
                      event["event_id"]) == 75
        # level 2 (100%) falls due at the kept deadline, not at 100% of the new 4h target
        assert clock(conn, running)[1:] == (MONDAY + timedelta(hours=2), 1)

        edit(rules, "escalation.yaml", lambda doc: doc["chains"][0]["levels"].insert(
            0, {"at": "50%", "reason": "sla_warning", "notify": "assignee"}))
        apply_rules(database_url, traversable_tmp_path)
        # 50% and 75% count as passed (the manual event recorded 75%): 100% is next, now level 3
        assert clock(conn, running)[1:] == (MONDAY + timedelta(hours=2), 2)
        at(conn, MONDAY + timedelta(minutes=121))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 1
        assert levels_sent(conn, running) == [2, 3]                                 # 75% (manual) is level 2 now


def test_a_database_from_before_the_response_clock_gets_its_moves_counted_too(database_url, traversable_tmp_path):
    """A database installed before the response clock (its three columns absent) and an SLA change
    in the same plan: the plan is made, the resolution moves counted, no response move claimed."""
    rules = installed(database_url, traversable_tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        at(conn, MONDAY)
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
        arrive(conn, MONDAY, "R1")
        conn.execute("ALTER TABLE assignments DROP COLUMN first_response_at CASCADE,"
                     " DROP COLUMN response_paused_minutes CASCADE, DROP COLUMN response_deadline CASCADE")
    set_target(rules, "urgent", "1h")
    policy, objects = build(traversable_tmp_path / "rules")
    plan_now = (MONDAY + timedelta(minutes=20)).isoformat()
    url = f"{database_url}{'&' if '?' in database_url else '?'}options={quote(f'-c rulesctl.now={plan_now}')}"
    plan = build_plan(url, policy, objects, DEFAULT_TEMPLATES)
    last = plan.steps[-1]
    assert last.key == "reschedule:public.sla_next_checks"
    assert "1 running and 0 queued items change deadline, the largest by 1h" in last.reason, last.reason
    assert "response" not in last.reason.split("; ", 1)[1], last.reason
    assert any(s.key == "table:public.assignments" for s in plan.steps)       # the columns come back
