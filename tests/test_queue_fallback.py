"""The fallback sweep and the queue_process_needed notification."""

from __future__ import annotations

import json
import uuid

import psycopg
from psycopg.types.json import Jsonb

PERSON = str(uuid.UUID(int=0xF0))


def _call(conn, function, argument):
    return conn.execute(f"SELECT {function}(%s)", [argument]).fetchone()[0]


def test_stale_queue_items_are_swept(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        _call(conn, "upsert_staff_profile", Jsonb({"id": PERSON, "unit_id": "unit-hr", "full_name": "Idle", "wip_limit": 2}))
        # A wake-up that never came: rows put in the queue behind the engine's back.
        for item, priority in (("missed-low", "low"), ("missed-urgent", "urgent"), ("missed-normal", "normal")):
            conn.execute("""INSERT INTO assignment_queue (work_item_id, work_item_type, priority, target_unit_id, sla_deadline)
                            VALUES (%s, 'ticket', %s, 'unit-hr', now() + interval '1 day')""", (item, priority))
        assert conn.execute("SELECT process_stale_queue_items()").fetchone() == (2,)
        assigned = conn.execute("SELECT work_item_id, decision ->> 'source' FROM assignments ORDER BY work_item_id").fetchall()
        assert assigned == [("missed-normal", "queue_fallback"), ("missed-urgent", "queue_fallback")]
        assert conn.execute("SELECT work_item_id FROM assignment_queue").fetchall() == [("missed-low",)]
        assert conn.execute("SELECT process_stale_queue_items()").fetchone() == (0,)
        assert conn.execute("SELECT current_assignment_count FROM staff_profiles WHERE id = %s", (PERSON,)).fetchone() == (2,)


def test_queue_process_needed_is_notified(engine_url):
    """Notified when an item is queued, and when freed room is left with work still waiting
    that this person cannot take (here: it needs a skill they lack)."""
    with psycopg.connect(engine_url, autocommit=True) as listener, psycopg.connect(engine_url, autocommit=True) as conn:
        listener.execute("LISTEN queue_process_needed")
        _call(conn, "upsert_staff_profile", Jsonb({"id": PERSON, "unit_id": "unit-hr", "full_name": "One", "wip_limit": 1}))
        first = _call(conn, "auto_assign", Jsonb({"work_item_id": "n1", "work_item_type": "ticket", "priority": "low",
                                                  "target_unit_id": "unit-hr"}))
        second = _call(conn, "auto_assign", Jsonb({"work_item_id": "n2", "work_item_type": "ticket", "priority": "low",
                                                   "target_unit_id": "unit-hr", "required_skills": ["skill-french"]}))
        assert second["status"] == "queued"
        _call(conn, "complete_assignment", first["assignment_id"])
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
    assert payloads[0]["event"] == "queued" and payloads[0]["work_item_id"] == "n2"
    assert payloads[1] == {"event": "capacity_freed", "staff_id": PERSON, "unit_id": "unit-hr", "assigned": 0}


def test_a_dequeue_sends_no_notification(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as listener, psycopg.connect(engine_url, autocommit=True) as conn:
        _call(conn, "upsert_staff_profile", Jsonb({"id": PERSON, "unit_id": "unit-hr", "full_name": "One", "wip_limit": 1}))
        first = _call(conn, "auto_assign", Jsonb({"work_item_id": "d1", "work_item_type": "ticket", "priority": "low",
                                                  "target_unit_id": "unit-hr"}))
        _call(conn, "auto_assign", Jsonb({"work_item_id": "d2", "work_item_type": "ticket", "priority": "low",
                                          "target_unit_id": "unit-hr"}))
        listener.execute("LISTEN queue_process_needed")
        _call(conn, "complete_assignment", first["assignment_id"])
        assert conn.execute("SELECT count(*) FROM assignments WHERE work_item_id = 'd2' AND status = 'assigned'"
                            ).fetchone() == (1,)
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
