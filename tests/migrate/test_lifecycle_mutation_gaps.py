"""Tests that kill mutations of scripts/mutations.toml the retire/rename and SLA tests let
survive (scripts/mutate names them). The base policy (tests/policies/base): unit-desk under
unit-ops under unit-root; rule-urgent sends urgent work to unit-desk, rule-all everything else
to unit-root's whole subtree; WIP 3."""

from __future__ import annotations

import psycopg
import pytest
from engine_calls import call, scalar, uid
from policy_cases import BASE

from engine.migrate.apply import apply
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db

DESK = uid(1)
OPS = uid(2)


def test_staff_of_a_retired_unit_get_no_new_work_through_a_subtree_rule(base_url, policies):
    """Mutation retired-unit-staff-eligible: the pick's `NOT u.retired`. unit-desk is retired
    with its one person still in it; a low ticket goes by rule-all to unit-root's subtree, which
    still holds unit-desk: it must queue rather than go to the retired unit's person, and the
    next person of a live unit takes work."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": DESK, "unit_id": "unit-desk", "full_name": "Desk"})
    units = (BASE / "units.yaml").read_text().replace("    name: Desk\n", "    name: Desk\n    retired: true\n")
    rules = (BASE / "assignment_rules.yaml").read_text().replace("target: {unit: unit-desk}",
                                                                 "target: {unit: unit-ops}")
    policy, objects = policies.build("retire-desk", units=units, assignment_rules=rules)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    apply(base_url, objects, policy, allowed=plan.hazards)
    with psycopg.connect(base_url, autocommit=True) as conn:
        assert scalar(conn, "SELECT retired FROM organizational_units WHERE id = 'unit-desk'") is True
        first = call(conn, "auto_assign", {"work_item_id": "w-low", "work_item_type": "ticket", "priority": "low"})
        assert first["status"] == "queued", first
        assert scalar(conn, "SELECT count(*) FROM assignments WHERE assignee_id = %s", DESK) == 0
        call(conn, "upsert_staff_profile", {"id": OPS, "unit_id": "unit-ops", "full_name": "Ops"})
        second = call(conn, "auto_assign", {"work_item_id": "w-next", "work_item_type": "ticket", "priority": "low"})
        assert second.get("assignee_id") == OPS or scalar(
            conn, "SELECT assignee_id FROM assignments WHERE work_item_id = 'w-low'") == OPS, second
        assert scalar(conn, "SELECT count(*) FROM assignments WHERE assignee_id = %s", DESK) == 0
