"""A change to the SLA policy reaches running clocks: `rulesctl apply` ends with
sla_reschedule_checks() whenever the plan changes SLA targets, escalation levels or calendars,
so a threshold moved earlier fires at its new time, not at the check planned under the old one.

The small base policy (tests/policies/base): urgent tickets go to unit-desk, 2h of resolution
on the office calendar (Sunday and Monday 08:00-16:00, Riyadh); the standard chain warns the
assignee at 75% and reports a breach to the supervisor at 100%.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
import yaml
from engine_calls import at, call, scalar, uid
from policy_cases import make_policy

from engine.migrate.apply import apply
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES, build

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=RIYADH)          # a Monday, an hour into the working day


def build_in(workdir: Path):
    return build(workdir / "rules")


def set_warning_level(rules: Path, at_percent: str) -> None:
    path = rules / "escalation.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["chains"][0]["levels"][0]["at"] = at_percent
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def next_check(conn, assignment_id):
    return scalar(conn, "SELECT next_check_at FROM assignments WHERE id = %s", assignment_id)


def running_urgent_ticket(conn, work_item_id: str) -> str:
    """At T0, a desk person and an urgent ticket assigned to them (2h, warning at 75%) and
    answered at once, so only its resolution clock runs: its id."""
    at(conn, T0)
    call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Desk", "role": "staff"})
    done = call(conn, "auto_assign", {"work_item_id": work_item_id, "work_item_type": "ticket", "priority": "urgent"})
    assert done["status"] == "assigned"
    call(conn, "respond_assignment", {"assignment_id": done["assignment_id"]})
    return done["assignment_id"]


def test_an_earlier_threshold_reschedules_running_clocks(database_url, traversable_tmp_path):
    rules = make_policy(traversable_tmp_path)
    policy, objects = build_in(traversable_tmp_path)
    first = build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps
    assert not any(step.key.startswith("reschedule:") for step in first)       # a first install has no clocks
    apply(database_url, objects, policy)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assignment = running_urgent_ticket(conn, "T-1")
        assert next_check(conn, assignment) == T0 + timedelta(minutes=90)      # 75% of 2h

        set_warning_level(rules, "25%")
        policy, objects = build_in(traversable_tmp_path)
        steps = build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps
        last = steps[-1]
        assert (last.action, last.key) == ("run", "reschedule:public.sla_next_checks")
        assert "escalation_levels" in last.reason and last.origin.startswith("rules/escalation.yaml:")
        assert apply(database_url, objects, policy).outcome == "applied"

        assert next_check(conn, assignment) == T0 + timedelta(minutes=30)      # 25% of 2h
        assert next_check(conn, assignment) == scalar(
            conn, "SELECT sla_level_due_at(work_item_type, priority, arrived_at, paused_working_minutes, 1) "
                  "FROM assignments WHERE id = %s", assignment)
        at(conn, T0 + timedelta(minutes=31))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 1             # the warning, on its new time
        assert scalar(conn, "SELECT array_agg(level) FROM escalation_events WHERE assignment_id = %s",
                      assignment) == [1]
        assert next_check(conn, assignment) == T0 + timedelta(minutes=120)     # the breach, next

    # converged: nothing left to do, and no reschedule without a cause
    assert build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps == []


def test_a_paused_clock_and_unrelated_changes_are_left_alone(database_url, traversable_tmp_path):
    rules = make_policy(traversable_tmp_path)
    policy, objects = build_in(traversable_tmp_path)
    apply(database_url, objects, policy)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assignment = running_urgent_ticket(conn, "T-2")
        conn.execute("UPDATE assignments SET paused_at = %s, next_check_at = NULL WHERE id = %s", [T0, assignment])

        skills = rules / "skills.yaml"
        doc = yaml.safe_load(skills.read_text())
        doc["skills"].append({"id": "skill-extra", "name": "Extra", "category": "test"})
        skills.write_text(yaml.safe_dump(doc, sort_keys=False))
        policy, objects = build_in(traversable_tmp_path)
        keys = [step.key for step in build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps]
        assert keys and not any(key.startswith("reschedule:") for key in keys)

        set_warning_level(rules, "25%")
        policy, objects = build_in(traversable_tmp_path)
        assert apply(database_url, objects, policy).outcome == "applied"
        assert next_check(conn, assignment) is None                                # resuming computes it


def test_a_closure_added_to_the_calendar_moves_running_clocks(database_url, traversable_tmp_path):
    """calendars.yaml is SLA policy too: closing today pushes a running clock's next check to
    the next working day, at the same share of working time."""
    rules = make_policy(traversable_tmp_path)
    policy, objects = build_in(traversable_tmp_path)
    apply(database_url, objects, policy)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assignment = running_urgent_ticket(conn, "T-3")
        assert next_check(conn, assignment) == T0 + timedelta(minutes=90)      # 75% of 2h, Monday 10:30

        path = rules / "calendars.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["calendars"][0]["closures"].append({"date": "2027-01-04", "reason": "Power cut"})
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        policy, objects = build_in(traversable_tmp_path)
        steps = build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps
        assert (steps[-1].action, steps[-1].key) == ("run", "reschedule:public.sla_next_checks")
        assert "calendar" in steps[-1].reason
        assert apply(database_url, objects, policy).outcome == "applied"

        # Monday is closed now; the office works Sundays and Mondays: 90 working minutes from
        # the arrival end on Sunday 10 January at 09:30.
        assert next_check(conn, assignment) == datetime(2027, 1, 10, 9, 30, tzinfo=RIYADH)
        at(conn, T0 + timedelta(minutes=91))
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 0             # nothing falls due today
    assert build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps == []
