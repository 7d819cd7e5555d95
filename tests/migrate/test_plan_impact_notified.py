"""The plan's Impact says who would now be notified when an escalation chain or the leave
policy changes. Base policy: unit-root > unit-ops > unit-desk; chain `standard` notifies the
assignee at 75% and the supervisor at 100%; leave reassigns urgent work, flags low work and
notifies the supervisor. Staff and work arrive through the engine's API; every expected figure
is counted by hand from what the test creates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from engine_calls import at, call, uid

from engine.migrate.notify_impact import NO_LEVEL, NOBODY, LeaveAction, Notified
from engine.migrate.plan import build_plan
from engine.migrate.report import as_json, as_markdown, as_text
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db

CHAIN_NEW = """\
chains:
  - id: standard
    name: Standard
    levels:
      - {at: 75%, reason: sla_warning, notify: assignee}
      - {at: 100%, reason: sla_breach, notify: unit_head}
      - {at: 150%, reason: sla_breach, notify: admin}
"""

LEAVE_NEW = """\
leave:
  reassign: [urgent, low]
  flag_for_review: []
  notify: unit_head
"""

FUTURE_SUNDAY = datetime(2030, 1, 6, 5, 0, tzinfo=UTC)     # 08:00 in Riyadh: office hours, deadlines ahead of now
PAST_SUNDAY = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)     # every share of a 2 h SLA long passed


def person(n: int, name: str) -> str:
    return f"{name} ({uid(n)})"


@pytest.fixture
def running(base_url):
    """Amal (staff, unit-desk) holds 3 urgent and 2 low items arrived in the future and 1 urgent
    item whose SLA has long passed; then Sami (supervisor, unit-desk), Hana (unit head, unit-ops)
    and Zed (admin, unit-root) join, holding nothing."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-desk", "full_name": "Amal",
                                            "wip_limit": 10})
        at(conn, PAST_SUNDAY)
        call(conn, "auto_assign", {"work_item_id": "OLD", "work_item_type": "ticket", "priority": "urgent"})
        at(conn, FUTURE_SUNDAY)
        for n in range(3):
            call(conn, "auto_assign", {"work_item_id": f"U{n}", "work_item_type": "ticket", "priority": "urgent"})
        for n in range(2):
            call(conn, "auto_assign", {"work_item_id": f"L{n}", "work_item_type": "ticket", "priority": "low"})
        for n, unit, name, role in ((2, "unit-desk", "Sami", "supervisor"), (3, "unit-ops", "Hana", "unit_head"),
                                    (4, "unit-root", "Zed", "admin")):
            call(conn, "upsert_staff_profile", {"id": uid(n), "unit_id": unit, "full_name": name, "role": role})
        holders = conn.execute("SELECT DISTINCT assignee_id::text FROM assignments").fetchall()
    assert holders == [(uid(1),)]
    return base_url


def test_escalation_change_names_who_would_now_be_notified(running, policies):
    policy, objects = policies.build("chain", escalation=CHAIN_NEW)
    plan = build_plan(running, policy, objects, DEFAULT_TEMPLATES)
    # OLD is past 100% and 150% already: only the five items still ahead of the levels count
    assert plan.impact.notified == [
        Notified("escalation standard at 100%", "supervisor", "unit_head", person(2, "Sami"), person(3, "Hana"), 5),
        Notified("escalation standard at 150%", NO_LEVEL, "admin", NOBODY, person(4, "Zed"), 5)]
    assert plan.impact.leave_actions == []

    text = as_text(plan, colour=False)
    assert "  Who would now be notified (running items, by recipient before -> after):" in text
    assert f"    escalation standard at 100%: supervisor -> unit_head: Sami ({uid(2)}) -> Hana ({uid(3)})  5" in text
    assert (f"| escalation standard at 150% | {NO_LEVEL} → admin | {NOBODY} → Zed ({uid(4)}) | 5 |"
            in as_markdown(plan))
    assert json.loads(as_json(plan))["impact"]["notified"][0]["recipient_after"] == person(3, "Hana")


def test_leave_change_names_who_would_now_be_notified_and_what_happens_to_the_work(running, policies):
    policy, objects = policies.build("leave", leave=LEAVE_NEW)
    plan = build_plan(running, policy, objects, DEFAULT_TEMPLATES)
    # every active item counts (leave can come at any time): urgent 3 + OLD, low 2
    assert plan.impact.notified == [
        Notified("leave urgent", "supervisor", "unit_head", person(2, "Sami"), person(3, "Hana"), 4),
        Notified("leave low", "supervisor", "unit_head", person(2, "Sami"), person(3, "Hana"), 2)]
    assert plan.impact.leave_actions == [LeaveAction("low", "flag_for_review", "reassign", 2)]
    text = as_text(plan, colour=False)
    assert "  When an assignee goes on leave (active items of that priority today):" in text
    assert "    low: flag_for_review -> reassign  2" in text
    assert "- `low`: flag_for_review → reassign (2 active item(s) today)" in as_markdown(plan)


def test_an_unchanged_chain_and_leave_policy_report_nobody(running, policies):
    policy, objects = policies.build("same")
    plan = build_plan(running, policy, objects, DEFAULT_TEMPLATES)
    assert plan.impact.notified == [] and plan.impact.leave_actions == []
    assert "notified" not in as_text(plan, colour=False)
