"""Usage counts (engine/migrate/usage.py): read only for what a plan takes away, and counted
right — a row once per id it names, however many of its columns (or skill list entries) name it.

They read every assignment, so a plan that removes nothing must not read them: at a million
assignments that was 6 of a plan's 8 seconds."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from engine_calls import call, uid

from engine.compiler.objects import ObjectKey
from engine.migrate.introspect import introspect
from engine.migrate.usage import row_usage, with_usage

pytestmark = pytest.mark.db

UNIT, OTHER = "unit-it-support", "unit-hr"


def unit_key(unit: str) -> ObjectKey:
    return ObjectKey(f"seed:public.organizational_units/{unit}")


def test_counts_only_what_the_plan_takes_away(conn):
    call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": UNIT, "full_name": "Desk One", "role": "staff"})
    call(conn, "auto_assign", {"work_item_id": "T-1", "work_item_type": "ticket", "priority": "normal",
                               "target_unit_id": UNIT})
    with conn.transaction():
        live = introspect(conn)
        assert all(obj.usage is None for obj in live.values())                  # introspection counts nothing
        desired = {key: obj for key, obj in live.items() if key != unit_key(UNIT)}  # the policy drops UNIT
        retiring = live[unit_key(OTHER)]
        desired[unit_key(OTHER)] = dataclasses.replace(retiring, definition={**retiring.definition, "retired": True})
        counted = with_usage(conn, "public", live, desired)
    assert counted[unit_key(UNIT)].usage == {"staff": 1, "assignments": 1, "active assignments": 1}
    assert counted[unit_key(OTHER)].usage is None                 # retired, but nothing references it
    kept = [obj for key, obj in counted.items() if key not in (unit_key(UNIT), unit_key(OTHER))]
    assert kept and all(obj.usage is None for obj in kept)
    with conn.transaction():
        assert with_usage(conn, "public", live, live) == live          # nothing taken away: nothing read


def test_a_row_counts_once_per_id_it_names(conn):
    call(conn, "upsert_staff_profile", {"id": uid(2), "unit_id": UNIT, "full_name": "Desk Two", "role": "staff"})
    call(conn, "auto_assign", {"work_item_id": "T-2", "work_item_type": "ticket", "priority": "normal",
                               "target_unit_id": UNIT})                  # unit_id and target_unit_id both UNIT
    with conn.transaction():
        # one completed row whose skill list names a skill twice (written by hand: the API removes duplicates)
        conn.execute("""INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id, unit_id,
                                                 target_unit_id, required_skills, status, completed_at)
                        VALUES ('T-3', 'ticket', 'normal', %s, %s, %s,
                                '{skill-arabic,skill-arabic,skill-english}', 'completed', now())""",
                     [uid(2), OTHER, UNIT])
        assert row_usage(conn, "public", "organizational_units", [UNIT, OTHER]) == {
            UNIT: {"staff": 1, "assignments": 2, "active assignments": 1},
            OTHER: {"assignments": 1}}
        assert row_usage(conn, "public", "skills", ["skill-arabic", "skill-english", "skill-french"]) == {
            "skill-arabic": {"assignments": 1}, "skill-english": {"assignments": 1}}
        assert row_usage(conn, "public", "skills", []) == {}
        raise psycopg.Rollback()                 # the hand-written row goes again
