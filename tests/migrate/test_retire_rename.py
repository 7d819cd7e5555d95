"""Retire, rename and blocked removal of units, skills and rules on a database with history:
staff, running, queued and completed work (the base policy: unit-desk takes urgent items by
rule-urgent, WIP 3)."""

from __future__ import annotations

import psycopg
import pytest
from engine_calls import call, scalar, uid

from engine.errors import HazardsBlocked
from engine.migrate.apply import apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db

BASE_UNITS = open(__file__.replace("migrate/test_retire_rename.py", "policies/base/units.yaml")).read()
BASE_SKILLS = open(__file__.replace("migrate/test_retire_rename.py", "policies/base/skills.yaml")).read()
BASE_RULES = open(__file__.replace("migrate/test_retire_rename.py", "policies/base/assignment_rules.yaml")).read()
DESK = uid(1)


@pytest.fixture
def live(base_url):
    """unit-desk: one person holding skill-network; 5 urgent items: one completed, three running, one queued."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": DESK, "unit_id": "unit-desk", "full_name": "Desk",
                                            "skills": ["skill-network"]})
        ids = [call(conn, "auto_assign", {"work_item_id": f"w{n}", "work_item_type": "ticket", "priority": "urgent",
                                          "required_skills": ["skill-network"]}) for n in range(4)]
        assert [r["status"] for r in ids] == ["assigned", "assigned", "assigned", "queued"]
        conn.execute("SELECT complete_assignment(%s)", [ids[0]["assignment_id"]])     # w3 leaves the queue
        assert call(conn, "auto_assign", {"work_item_id": "w4", "work_item_type": "ticket", "priority": "urgent",
                                          "required_skills": ["skill-network"]})["status"] == "queued"
    return base_url


def plan_and_apply(url, policies, name, allowed=frozenset(), **files):
    policy, objects = policies.build(name, **files)
    plan = build_plan(url, policy, objects, DEFAULT_TEMPLATES)
    apply(url, objects, policy, allowed=set(allowed) | plan.hazards)
    assert build_plan(url, policy, objects, DEFAULT_TEMPLATES).steps == []       # converged
    return plan


def test_removing_a_unit_skill_and_rule_with_history_is_blocked_by_the_plan_with_counts(live, policies):
    units = BASE_UNITS.replace("  - id: unit-desk\n    name: Desk\n    parent: unit-ops\n", "")
    rules = BASE_RULES.replace("target: {unit: unit-desk}", "target: {unit: unit-ops}")
    skills = BASE_SKILLS.replace("  - id: skill-network\n    name: Networking\n    category: technology\n", "")
    policy, objects = policies.build("remove", units=units, assignment_rules=rules, skills=skills)
    plan = build_plan(live, policy, objects, DEFAULT_TEMPLATES)
    blocked = {str(s.key): s for s in plan.steps if Hazard.REFERENCED_REMOVAL in s.hazards}
    assert set(blocked) == {"seed:public.organizational_units/unit-desk", "seed:public.skills/skill-network"}
    assert ("unit-desk: 1 staff, 4 assignments, 1 queued items reference it; retire it (retired: true), or move them"
            in blocked["seed:public.organizational_units/unit-desk"].reason)
    assert ("skill-network: 1 staff, 4 assignments, 1 queued items reference it"
            in blocked["seed:public.skills/skill-network"].reason)
    counts = "unit-desk: 1 staff, 4 assignments, 1 queued items reference it"
    with pytest.raises(HazardsBlocked, match=counts) as refused:
        apply(live, objects, policy, allowed=set(Hazard))           # even with every hazard allowed
    assert "hazards that can never be allowed: referenced-removal" in str(refused.value)
    assert "hazards not allowed" not in str(refused.value)            # nothing left that --allow-hazard would fix


def test_a_rule_with_history_cannot_be_removed(live, policies):
    rules = BASE_RULES.replace("  - id: rule-urgent\n    precedence: 10\n    match: {priorities: [urgent]}\n"
                               "    target: {unit: unit-desk}\n", "")
    policy, objects = policies.build("no-rule", assignment_rules=rules)
    step = next(s for s in build_plan(live, policy, objects, DEFAULT_TEMPLATES).steps if s.action == "delete")
    assert step.hazards == (Hazard.REFERENCED_REMOVAL,)
    assert "rule-urgent: 4 assignments, 1 queued items reference it" in step.reason


def test_retire_a_unit_in_use_is_a_named_hazard_then_it_takes_no_new_work(live, policies):
    units = BASE_UNITS.replace("    name: Desk\n", "    name: Desk\n    retired: true\n")
    rules = BASE_RULES.replace("target: {unit: unit-desk}", "target: {unit: unit-ops}")
    policy, objects = policies.build("retire", units=units, assignment_rules=rules)
    plan = build_plan(live, policy, objects, DEFAULT_TEMPLATES)
    step = next(s for s in plan.steps if str(s.key) == "seed:public.organizational_units/unit-desk")
    assert step.hazards == (Hazard.RETIRE_IN_USE,)
    assert "unit-desk still has 1 staff, 3 active assignments, 1 queued items: move the staff" in step.reason
    with pytest.raises(HazardsBlocked, match="retire-in-use"):
        apply(live, objects, policy, allowed=plan.hazards - {Hazard.RETIRE_IN_USE})
    plan_and_apply(live, policies, "retire", units=units, assignment_rules=rules)
    with psycopg.connect(live, autocommit=True) as conn:
        assert scalar(conn, "SELECT retired FROM organizational_units WHERE id = 'unit-desk'") is True
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            call(conn, "auto_assign", {"work_item_id": "new", "work_item_type": "ticket", "priority": "low",
                                       "target_unit_id": "unit-desk"})
        assert refused.value.diag.column_name == "target_unit_id"
        assert scalar(conn, "SELECT count(*) FROM assignments") == 4                  # history kept
        # capacity freed in the retired unit takes nothing from the queue either
        running = scalar(conn, "SELECT id FROM assignments WHERE status = 'assigned' ORDER BY work_item_id LIMIT 1")
        conn.execute("SELECT complete_assignment(%s)", [running])
        assert scalar(conn, "SELECT count(*) FROM assignment_queue WHERE work_item_id = 'w4'") == 1
        # nor can work or people be moved into it by hand (the people already there may stay)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="retired") as moved:
            call(conn, "manual_override", {"work_item_id": "w4", "assignee_id": DESK, "reason": "by hand",
                                           "allow_exceed_wip": True})
        assert moved.value.diag.column_name == "assignee_id"
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="retired") as hired:
            call(conn, "upsert_staff_profile", {"id": uid(2), "unit_id": "unit-desk", "full_name": "New"})
        assert hired.value.diag.column_name == "unit_id"
        call(conn, "upsert_staff_profile", {"id": DESK, "unit_id": "unit-desk", "full_name": "Desk, renamed"})


def test_retired_rule_never_matches_and_retired_skill_cannot_be_required(live, policies):
    rules = BASE_RULES.replace("    target: {unit: unit-desk}\n", "    target: {unit: unit-desk}\n    retired: true\n")
    skills = BASE_SKILLS.replace("    category: technology\n", "    category: technology\n    retired: true\n")
    plan_and_apply(live, policies, "retired-rule", assignment_rules=rules, skills=skills)
    with psycopg.connect(live, autocommit=True) as conn:
        assert scalar(conn, "SELECT rule_id FROM match_assignment_rule('ticket', 'urgent', '{}')") == "rule-all"
        assert scalar(conn, "SELECT retired FROM assignment_rules WHERE id = 'rule-urgent'") is True
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            call(conn, "auto_assign", {"work_item_id": "new", "work_item_type": "ticket", "priority": "low",
                                       "required_skills": ["skill-network"]})
        assert refused.value.diag.column_name == "required_skills"


def test_rename_a_unit_a_skill_and_a_rule_with_history_in_place(live, policies):
    units = BASE_UNITS.replace("  - id: unit-desk\n", "  - id: unit-front\n    renamed_from: unit-desk\n")
    skills = BASE_SKILLS.replace("  - id: skill-network\n", "  - id: skill-net\n    renamed_from: skill-network\n")
    rules = (BASE_RULES.replace("  - id: rule-urgent\n", "  - id: rule-hot\n    renamed_from: rule-urgent\n")
             .replace("target: {unit: unit-desk}", "target: {unit: unit-front}"))
    plan = plan_and_apply(live, policies, "rename", units=units, skills=skills, assignment_rules=rules)
    renames = [str(s.key) for s in plan.steps if s.action == "rename"]
    assert renames == ["seed:public.assignment_rules/rule-hot", "seed:public.organizational_units/unit-front",
                       "seed:public.skills/skill-net"]
    assert not [s for s in plan.steps if s.action in ("insert", "delete")]
    with psycopg.connect(live, autocommit=True) as conn:
        rows = conn.execute("SELECT DISTINCT unit_id, rule_id, required_skills FROM assignments").fetchall()
        assert rows == [("unit-front", "rule-hot", ["skill-net"])]
        assert scalar(conn, "SELECT unit_id FROM staff_profiles WHERE id = %s", DESK) == "unit-front"
        assert scalar(conn, "SELECT skills FROM staff_profiles WHERE id = %s", DESK) == ["skill-net"]
        assert scalar(conn, "SELECT target_unit_id || ' ' || rule_id FROM assignment_queue") == "unit-front rule-hot"
        tree = "SELECT count(*) FROM organizational_unit_tree WHERE 'unit-desk' IN (unit_id, ancestor_id)"
        assert scalar(conn, tree) == 0


BASE_WORK_ITEMS = open(__file__.replace("migrate/test_retire_rename.py", "policies/base/work_items.yaml")).read()
BASE_SLA = open(__file__.replace("migrate/test_retire_rename.py", "policies/base/sla.yaml")).read()
BASE_LEAVE = open(__file__.replace("migrate/test_retire_rename.py", "policies/base/leave.yaml")).read()
# urgent leaves the priorities (high takes its place) or ticket leaves the types (complaint takes its place)
NO_URGENT = {"work_items": BASE_WORK_ITEMS.replace("[low, urgent]", "[low, high]"),
             "sla": BASE_SLA.replace("    urgent:", "    high:"),
             "assignment_rules": BASE_RULES.replace("[urgent]", "[high]").replace("max_priority: urgent",
                                                                                  "max_priority: high"),
             "leave": BASE_LEAVE.replace("[urgent]", "[high]")}
NO_TICKET = {"work_items": BASE_WORK_ITEMS.replace("id: ticket\n    name: Ticket",
                                                   "id: complaint\n    name: Complaint"),
             "sla": BASE_SLA.replace("  ticket:", "  complaint:")}


@pytest.mark.parametrize(("files", "enum", "used"), [
    (NO_URGENT, "enum:public.priority_level", "urgent: 4 running or queued items use it"),
    (NO_TICKET, "enum:public.work_item_type", "ticket: 4 running or queued items use it"),
], ids=["priority", "work-item-type"])
def test_removing_a_priority_or_type_running_or_queued_work_uses_is_blocked_with_counts(live, policies, files,
                                                                                         enum, used):
    name = "no-" + enum.rsplit(".", 1)[1]
    policy, objects = policies.build(name, **files)
    plan = build_plan(live, policy, objects, DEFAULT_TEMPLATES)
    (step,) = [s for s in plan.steps if s.action == "remove-value"]
    assert str(step.key) == enum
    assert step.hazards == (Hazard.REFERENCED_REMOVAL,)          # not the enum-value-removal --allow-hazard fixes
    assert f"({used}); finish or move that work first" in step.reason        # 3 running + 1 queued, not the completed
    assert step.origin.startswith("rules/work_items.yaml:")
    assert all(line.startswith("--") for line in step.sql.strip().splitlines()), step.sql        # says, never does
    with pytest.raises(HazardsBlocked, match=used) as refused:
        apply(live, objects, policy, allowed=set(Hazard))            # even with every hazard allowed
    assert "hazards that can never be allowed: referenced-removal" in str(refused.value)
    with psycopg.connect(live, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM assignments") == 4                  # nothing changed
        assert scalar(conn, "SELECT count(*) FROM assignment_queue") == 1
        while conn.execute("SELECT complete_assignment(id) FROM assignments "
                           "WHERE status::text IN ('assigned', 'in_progress', 'on_hold')").fetchall():
            pass                                                                       # the queued item follows
        assert scalar(conn, "SELECT count(*) FROM assignment_queue") == 0
    # once the work is done only the enum's own removal is left: a hazard that can be allowed
    (step,) = [s for s in build_plan(live, policy, objects, DEFAULT_TEMPLATES).steps if s.action == "remove-value"]
    assert step.hazards == (Hazard.ENUM_VALUE_REMOVAL,)
