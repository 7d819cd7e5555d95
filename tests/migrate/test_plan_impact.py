"""The plan's Impact section against a real database (the base policy: unit-root > unit-ops >
unit-desk, WIP limit 3; rule-urgent sends urgent tickets to unit-desk, rule-all the rest to
unit-root's subtree). Staff and work arrive through the engine's own API; every expected figure
is counted by hand from what the test creates."""

from __future__ import annotations

import json

import psycopg
import pytest
from apply_support import invoke
from engine_calls import call, uid

from engine.migrate.impact import Route, Shadowed, Unstaffed
from engine.migrate.plan import build_plan
from engine.migrate.report import as_markdown, as_text
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db

UNITS_DESK_LIMIT_1 = """\
defaults:
  timezone: Asia/Riyadh
  calendar: office
  wip_limit: 3
units:
  - id: unit-root
    name: Root
  - id: unit-ops
    name: Operations
    parent: unit-root
  - id: unit-desk
    name: Desk
    parent: unit-ops
    wip_limit: 1
"""

UNITS_WITH_EMPTY = UNITS_DESK_LIMIT_1.replace("    wip_limit: 1\n", "") + """\
  - id: unit-empty
    name: Empty
    parent: unit-root
"""

RULES_NEW = """\
defaults:
  strategy: least_loaded
  capacity_weight: 1
  when_no_capacity: queue
queue:
  aging: {raise_every: 2h, max_priority: urgent}
rules:
  - id: rule-network
    precedence: 5
    match: {skills_any: [skill-network]}
    target: {unit: unit-ops}
  - id: rule-empty
    precedence: 8
    match: {priorities: [urgent], skills_any: [skill-arabic]}
    target: {unit: unit-empty}
  - id: rule-arabic-low
    precedence: 9
    match: {priorities: [low], skills_any: [skill-arabic]}
    target: {unit: unit-ops}
  - id: rule-urgent
    precedence: 10
    match: {priorities: [urgent]}
    target: {unit: unit-desk}
  - id: rule-shadowed
    precedence: 15
    match: {skills_any: [skill-arabic]}
    target: {unit: unit-desk}
  - id: rule-all
    precedence: 20
    target: {unit: unit-root, include_subtree: true}
"""


def staff(conn, n: int, unit: str, name: str, **fields) -> None:
    call(conn, "upsert_staff_profile", {"id": uid(n), "unit_id": unit, "full_name": name, **fields})


def arrive(conn, item: str, priority: str, skills: list[str] | None = None) -> dict:
    payload = {"work_item_id": item, "work_item_type": "ticket", "priority": priority}
    if skills:
        payload["required_skills"] = skills
    return call(conn, "auto_assign", payload)


def test_lowering_a_unit_wip_limit_reports_capacity_and_the_people_over_it(base_url, policies):
    with psycopg.connect(base_url, autocommit=True) as conn:
        staff(conn, 1, "unit-desk", "Amal")               # on the unit default (3)
        for n in range(3):
            arrive(conn, f"T-A{n}", "urgent")             # Amal: 3 (her limit)
        staff(conn, 2, "unit-desk", "Badr")               # on the unit default
        arrive(conn, "T-B0", "urgent")                    # Amal is full: Badr 1
        staff(conn, 3, "unit-desk", "Carla", wip_limit=5)  # her own limit: the unit's does not bind her
        loads = dict(conn.execute("SELECT full_name, current_assignment_count FROM staff_profiles").fetchall())
    assert loads == {"Amal": 3, "Badr": 1, "Carla": 0}

    policy, objects = policies.build("desk1", units=UNITS_DESK_LIMIT_1)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    [desk] = plan.impact.capacity
    assert (desk.unit_id, desk.limit_before, desk.limit_after) == ("unit-desk", 3, 1)
    assert (desk.capacity_before, desk.capacity_after, desk.staff) == (3 + 3 + 5, 1 + 1 + 5, 3)
    assert [(o.full_name, o.staff_id, o.load, o.limit_after) for o in plan.impact.over_limit] == [
        ("Amal", uid(1), 3, 1)]                            # Badr has 1, not over 1; Carla keeps 5
    assert not plan.impact.routing_changed                # the rules did not change

    text = as_text(plan, colour=False)
    assert text.startswith("Impact:\n")
    assert "    unit-desk: WIP limit 3 -> 1; capacity 11 -> 7 (3 available staff)" in text
    assert f"    Amal ({uid(1)}), unit-desk: 3 assigned, new limit 1" in text
    assert "  1.  ~ update     seed:public.organizational_units/unit-desk" in text
    assert "default_wip_limit: 3 -> 1" not in text          # the reason says it already: 3 → 1
    markdown = as_markdown(plan)
    assert markdown.index("### Impact") < markdown.index("### Steps")
    assert "| `unit-desk` | 3 → 1 | 11 → 7 (3 staff) |" in markdown


def test_routing_table_shadowed_rule_and_unstaffed_target(base_url, policies):
    with psycopg.connect(base_url, autocommit=True) as conn:
        staff(conn, 1, "unit-desk", "Amal", wip_limit=20)
        staff(conn, 2, "unit-ops", "Badr", wip_limit=20, skills={"skill-network": "expert"})
        for n in range(3):
            arrive(conn, f"U{n}", "urgent")                         # rule-urgent -> unit-desk, stays
        arrive(conn, "UN0", "urgent", ["skill-network"])            # rule-urgent -> unit-desk, moves to rule-network
        for n in range(2):
            arrive(conn, f"L{n}", "low")                            # rule-all -> unit-root, stays
        for n in range(4):
            arrive(conn, f"LN{n}", "low", ["skill-network"])        # rule-all -> unit-root, moves to rule-network
        went = conn.execute("SELECT rule_id, target_unit_id, count(*) FROM (SELECT rule_id, target_unit_id "
                            "FROM assignments UNION ALL SELECT rule_id, target_unit_id FROM assignment_queue) a "
                            "GROUP BY 1, 2").fetchall()
        queued = conn.execute("SELECT count(*) FROM assignment_queue").fetchone()[0]
    assert queued == 1                                                  # UN0: Amal lacks skill-network
    assert sorted(went) == [("rule-all", "unit-root", 6), ("rule-urgent", "unit-desk", 4)]

    policy, objects = policies.build("routing", units=UNITS_WITH_EMPTY, assignment_rules=RULES_NEW)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    impact = plan.impact
    assert impact.routing_changed and impact.arrivals == 10 and impact.moved == 5
    assert sorted(impact.routes, key=lambda r: (r.from_rule, r.to_rule)) == [
        Route("rule-all", "unit-root", "rule-all", "unit-root", 2),
        Route("rule-all", "unit-root", "rule-network", "unit-ops", 4),
        Route("rule-urgent", "unit-desk", "rule-network", "unit-ops", 1),
        Route("rule-urgent", "unit-desk", "rule-urgent", "unit-desk", 3)]
    # an Arabic item is urgent (rule-empty) or low (rule-arabic-low): the base has no other priority
    assert impact.shadowed == [Shadowed("rule-shadowed", ("rule-empty", "rule-arabic-low"))]
    assert impact.unstaffed == [Unstaffed("rule-empty", "unit-empty", 0, 0)]

    text = as_text(plan, colour=False)
    assert "  Routing of the last 30 days' 10 arrival(s) under the new rules: 5 would go elsewhere" in text
    assert "rule-all / unit-root     ->  rule-network / unit-ops  4" in text
    assert "    rule-shadowed: every item it matches is taken first by rule-empty, rule-arabic-low" in text
    assert "    rule-empty -> unit-empty: no staff" in text
    markdown = as_markdown(plan)
    assert "| `rule-all` / `unit-root` | `rule-network` / `unit-ops` | 4 |" in markdown
    assert "- ⚠️ rule `rule-shadowed` can never match: every item it matches is taken first by `rule-empty`, " \
           "`rule-arabic-low`" in markdown

    rules = policies.rules("routing", units=UNITS_WITH_EMPTY, assignment_rules=RULES_NEW)
    result = invoke("plan", "--rules", rules, "--database-url", base_url, "--format", "json", "--impact-days", "7")
    data = json.loads(result.stdout)
    assert data["impact"]["days"] == 7 and data["impact"]["arrivals"] == 10
    assert data["plan_line"].startswith("Plan: ") and data["fingerprint"] == plan.fingerprint


def test_old_arrivals_fall_outside_the_window(base_url, policies):
    with psycopg.connect(base_url, autocommit=True) as conn:
        staff(conn, 1, "unit-desk", "Amal", wip_limit=20)
        arrive(conn, "OLD", "urgent")
        arrive(conn, "NEW", "urgent", ["skill-network"])                # queued: Amal lacks the skill
        conn.execute("UPDATE assignments SET arrived_at = now() - interval '10 days' WHERE work_item_id = 'OLD'")
    policy, objects = policies.build("routing", units=UNITS_WITH_EMPTY, assignment_rules=RULES_NEW)
    assert build_plan(base_url, policy, objects, DEFAULT_TEMPLATES, impact_days=30).impact.arrivals == 2
    recent = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES, impact_days=7).impact
    assert recent.arrivals == 1 and recent.routes == [Route("rule-urgent", "unit-desk", "rule-network", "unit-ops", 1)]


def test_a_replaced_function_is_shown_as_a_diff_of_its_body(base_url, policies):
    policy, objects = policies.build("routing", units=UNITS_WITH_EMPTY, assignment_rules=RULES_NEW)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    [match] = [s for s in plan.steps if s.key.kind == "function" and s.key.name.startswith("match_assignment_rule(")]
    diff = plan.impact.details[str(match.key)]
    assert diff[:2] == ["--- live", "+++ policy"]
    assert any(line.startswith("+") and "rule-network" in line for line in diff)
    assert not any(line.startswith("-") and "rule-urgent" in line for line in diff)   # unchanged lines are context
    assert len(diff) < len(match.sql.splitlines()) + 5
