"""unit_staff_counts: each unit's head count, kept by triggers on staff_profiles so that an
assignment's record of why reads a target's size without counting staff rows. It must follow
every way people arrive, move and leave, and be right when it is first created on a database
that already holds staff."""

from __future__ import annotations

import psycopg
import pytest
from engine_calls import call, uid

from engine.database.invariants import unit_counts_off
from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db


def kept(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT unit_id, staff FROM unit_staff_counts WHERE staff > 0").fetchall())


def person(conn, n: int, unit_id: str, **fields):
    return call(conn, "upsert_staff_profile",
                {"id": uid(n), "unit_id": unit_id, "full_name": f"Person {n}", "role": "staff", **fields})


def test_counts_follow_arrivals_moves_departures_and_truncate(conn):
    assert kept(conn) == {}
    for n in range(1, 4):
        person(conn, n, "unit-translation")
    person(conn, 4, "unit-hr")
    assert kept(conn) == {"unit-translation": 3, "unit-hr": 1}

    person(conn, 2, "unit-hr")                                   # moved by the HR sync
    person(conn, 3, "unit-translation", wip_limit=7)             # updated, same unit
    assert kept(conn) == {"unit-translation": 2, "unit-hr": 2}

    conn.execute("DELETE FROM staff_profiles WHERE id = %s", [uid(1)])
    conn.execute("INSERT INTO staff_profiles (id, unit_id, full_name) SELECT %s::uuid, 'unit-hr', 'Bulk'", [uid(9)])
    assert kept(conn) == {"unit-translation": 1, "unit-hr": 3}
    assert unit_counts_off(conn) == []

    conn.execute("TRUNCATE staff_profiles CASCADE")
    assert kept(conn) == {}
    assert unit_counts_off(conn) == []


def test_the_decision_record_reads_the_kept_size(conn):
    for n in range(1, 4):
        person(conn, n, "unit-translation", skills=["skill-arabic"])
    done = call(conn, "auto_assign", {"work_item_id": "TR-1", "work_item_type": "translation_request",
                                      "priority": "normal", "required_skills": ["skill-arabic"]})
    decision = conn.execute("SELECT decision FROM assignments WHERE id = %s", [done["assignment_id"]]).fetchone()[0]
    assert decision["candidates"]["considered"] == 3

    # a target of more than 100 people is not broken down
    conn.execute("UPDATE unit_staff_counts SET staff = 101 WHERE unit_id = 'unit-translation'")
    done = call(conn, "auto_assign", {"work_item_id": "TR-2", "work_item_type": "translation_request",
                                      "priority": "normal", "required_skills": ["skill-arabic"]})
    decision = conn.execute("SELECT decision FROM assignments WHERE id = %s", [done["assignment_id"]]).fetchone()[0]
    assert decision["candidates"]["excluded"] == "not counted for targets of more than 100 people"
    assert "considered" not in decision["candidates"]


def test_created_on_a_database_with_staff_it_starts_from_their_count(engine_url, shipped_objects):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        for n in range(1, 6):
            person(conn, n, "unit-translation" if n % 2 else "unit-hr")
        # as on a database installed before the table existed
        conn.execute("DROP TABLE unit_staff_counts CASCADE")
        conn.execute("DROP TRIGGER staff_unit_count_trigger ON staff_profiles")
        conn.execute("DROP TRIGGER staff_unit_count_truncate_trigger ON staff_profiles")
    policy, objects = shipped_objects
    # filling it holds staff writes off until the apply commits: the plan says so
    create = next(step for step in build_plan(engine_url, policy, objects, DEFAULT_TEMPLATES).steps
                  if step.key == "table:public.unit_staff_counts")
    assert create.hazards == (Hazard.LOCK,) and "write lock on public.staff_profiles" in create.reason
    with pytest.raises(HazardsBlocked, match="lock"):
        apply(engine_url, objects, policy)
    assert apply(engine_url, objects, policy, allowed={Hazard.LOCK}).outcome == "applied"
    with psycopg.connect(engine_url, autocommit=True) as conn:
        assert kept(conn) == {"unit-translation": 3, "unit-hr": 2}
        person(conn, 6, "unit-hr")
        assert kept(conn) == {"unit-translation": 3, "unit-hr": 3}
