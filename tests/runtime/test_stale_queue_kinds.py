"""The fallback sweep's first look: which queued kinds someone eligible has room for now.

process_stale_queue_items asks that unit by unit (the pick index's range of each of the kind's
units) before it takes any lock; these pin what the look must still see: the units of a subtree,
the parent a kind overflows to, the proficiency asked for, and the weight of the item.
rules/units.yaml: unit-hr's parent is unit-corporate. Queue rows are put in behind the engine's
back (a wake-up that never came), as in test_queue_fallback.py.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from engine_calls import call, scalar

pytestmark = pytest.mark.db

HR, CORP = str(uuid.UUID(int=0xF1)), str(uuid.UUID(int=0xF2))


def person(conn, staff_id, unit_id, **fields):
    call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": unit_id, "full_name": "Idle", **fields})


def queue(conn, work_item_id, target_unit_id, **columns):
    names = ", ".join(["work_item_id", "work_item_type", "priority", "target_unit_id", "sla_deadline", *columns])
    values = ", ".join(["%s", "'ticket'", "'normal'", "%s", "now() + interval '1 day'", *["%s"] * len(columns)])
    conn.execute(f"INSERT INTO assignment_queue ({names}) VALUES ({values})",
                 [work_item_id, target_unit_id, *columns.values()])


def sweep(conn) -> int:
    return scalar(conn, "SELECT process_stale_queue_items()")


def taken(conn) -> list[tuple]:
    return conn.execute("SELECT work_item_id, assignee_id::text FROM assignments ORDER BY 1").fetchall()


def test_the_parent_a_kind_overflows_to_and_a_subtree_are_looked_at(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        person(conn, CORP, "unit-corporate", wip_limit=5)
        queue(conn, "hr-only", "unit-hr")                                     # nobody in unit-hr
        assert sweep(conn) == 0
        queue(conn, "hr-overflow", "unit-hr", when_no_capacity="overflow_to_parent")
        assert sweep(conn) == 1
        assert taken(conn) == [("hr-overflow", CORP)]

        call(conn, "upsert_staff_profile", {"id": CORP, "unit_id": "unit-corporate", "full_name": "Idle",
                                            "wip_limit": 0})
        person(conn, HR, "unit-hr", wip_limit=5)                             # takes hr-only itself
        assert taken(conn) == [("hr-only", HR), ("hr-overflow", CORP)]
        queue(conn, "corp-alone", "unit-corporate")                          # its only person is full
        queue(conn, "corp-tree", "unit-corporate", include_subtree=True)
        assert sweep(conn) == 1
        assert taken(conn) == [("corp-tree", HR), ("hr-only", HR), ("hr-overflow", CORP)]
        assert conn.execute("SELECT work_item_id FROM assignment_queue").fetchall() == [("corp-alone",)]


def test_the_proficiency_and_the_weight_asked_for_are_looked_at(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        person(conn, HR, "unit-hr", wip_limit=1, skills=["skill-french"])
        conn.execute("UPDATE staff_skills SET proficiency = 'basic' WHERE staff_id = %s", [HR])
        queue(conn, "french-expert", "unit-hr", required_skills=["skill-french"], min_proficiency_rank=3)
        queue(conn, "heavy", "unit-hr", capacity_weight=2)
        assert sweep(conn) == 0                                               # too basic; too heavy for 1
        conn.execute("UPDATE staff_skills SET proficiency = 'expert' WHERE staff_id = %s", [HR])
        assert sweep(conn) == 1
        assert taken(conn) == [("french-expert", HR)]
        assert conn.execute("SELECT work_item_id FROM assignment_queue").fetchall() == [("heavy",)]
