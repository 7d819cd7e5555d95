"""The fallback sweep and the queue_process_needed notification."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from engine_calls import call, scalar
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

PERSON = str(uuid.UUID(int=0xF0))



def test_stale_queue_items_are_swept(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": PERSON, "unit_id": "unit-hr", "full_name": "Idle", "wip_limit": 2})
        # A wake-up that never came: rows put in the queue behind the engine's back.
        for item, priority in (("missed-low", "low"), ("missed-urgent", "urgent"), ("missed-normal", "normal")):
            conn.execute("""INSERT INTO assignment_queue
                              (work_item_id, work_item_type, priority, target_unit_id, sla_deadline)
                            VALUES (%s, 'ticket', %s, 'unit-hr', now() + interval '1 day')""", (item, priority))
        assert conn.execute("SELECT process_stale_queue_items()").fetchone() == (2,)
        assigned = conn.execute("SELECT work_item_id, decision ->> 'source' FROM assignments"
                                " ORDER BY work_item_id").fetchall()
        assert assigned == [("missed-normal", "queue_fallback"), ("missed-urgent", "queue_fallback")]
        assert conn.execute("SELECT work_item_id FROM assignment_queue").fetchall() == [("missed-low",)]
        assert conn.execute("SELECT process_stale_queue_items()").fetchone() == (0,)
        assert conn.execute("SELECT current_assignment_count FROM staff_profiles WHERE id = %s",
                            (PERSON,)).fetchone() == (2,)


def test_the_sweep_tries_only_items_someone_has_room_for(engine_url):
    """Its limit is spent on items someone eligible has room for: the best-ranked items here
    need a skill nobody free holds, and the one the idle person can take is still found with
    a limit of one."""
    with psycopg.connect(engine_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": PERSON, "unit_id": "unit-hr", "full_name": "Idle", "wip_limit": 1})
        for item, priority, skills in (("french-1", "urgent", ["skill-french"]), ("french-2", "high", ["skill-french"]),
                                       ("plain", "low", [])):
            conn.execute("""INSERT INTO assignment_queue
                              (work_item_id, work_item_type, priority, target_unit_id, required_skills, sla_deadline)
                            VALUES (%s, 'ticket', %s, 'unit-hr', %s, now() + interval '1 day')""",
                         (item, priority, skills))
        assert conn.execute("SELECT process_stale_queue_items(1)").fetchone() == (1,)
        assert conn.execute("SELECT work_item_id, assignee_id::text FROM assignments").fetchall() == [("plain", PERSON)]
        assert conn.execute("SELECT work_item_id FROM assignment_queue ORDER BY 1").fetchall() == [
            ("french-1",), ("french-2",)]
        assert conn.execute("SELECT process_stale_queue_items()").fetchone() == (0,)


def test_a_run_with_nothing_to_take_leaves_the_units_locks_alone(engine_url):
    """Every unit's exclusive lock would stall the units' completions: a run that finds nobody
    with room for any queued item returns without taking it (here a completion holds it)."""
    with psycopg.connect(engine_url, autocommit=True) as conn, psycopg.connect(engine_url) as completion:
        conn.execute("""INSERT INTO assignment_queue
                          (work_item_id, work_item_type, priority, target_unit_id, sla_deadline)
                        VALUES ('nobody-there', 'ticket', 'normal', 'unit-hr', now() + interval '1 day')""")
        completion.execute("SELECT lock_units(ARRAY['unit-hr'], true)")
        conn.execute("SET lock_timeout = '2s'")
        assert conn.execute("SELECT process_stale_queue_items()").fetchone() == (0,)
        completion.rollback()
        assert conn.execute("SELECT work_item_id FROM assignment_queue").fetchall() == [("nobody-there",)]


def test_queue_process_needed_is_notified(engine_url):
    """Notified when an item is queued, and when freed room is left with work still waiting
    that this person cannot take (here: it needs a skill they lack)."""
    with psycopg.connect(engine_url, autocommit=True) as listener, psycopg.connect(engine_url, autocommit=True) as conn:
        listener.execute("LISTEN queue_process_needed")
        call(conn, "upsert_staff_profile", {"id": PERSON, "unit_id": "unit-hr", "full_name": "One", "wip_limit": 1})
        first = call(conn, "auto_assign", {"work_item_id": "n1", "work_item_type": "ticket", "priority": "low",
                                           "target_unit_id": "unit-hr"})
        second = call(conn, "auto_assign", {"work_item_id": "n2", "work_item_type": "ticket", "priority": "low",
                                            "target_unit_id": "unit-hr", "required_skills": ["skill-french"]})
        assert second["status"] == "queued"
        scalar(conn, "SELECT complete_assignment(%s)", first["assignment_id"])
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []     # in the outbox, not sent at commit
        # these two, and assignment_changes for n1 assigned and completed
        assert listener.execute("SELECT relay_engine_events()").fetchone() == (4,)
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
    assert payloads[0]["event"] == "queued" and payloads[0]["work_item_id"] == "n2"
    assert payloads[1] == {"event": "capacity_freed", "staff_id": PERSON, "unit_id": "unit-hr", "assigned": 0}


def test_a_dequeue_sends_no_notification(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as listener, psycopg.connect(engine_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": PERSON, "unit_id": "unit-hr", "full_name": "One", "wip_limit": 1})
        first = call(conn, "auto_assign", {"work_item_id": "d1", "work_item_type": "ticket", "priority": "low",
                                           "target_unit_id": "unit-hr"})
        call(conn, "auto_assign", {"work_item_id": "d2", "work_item_type": "ticket", "priority": "low",
                                   "target_unit_id": "unit-hr"})
        listener.execute("SELECT relay_engine_events()")                     # d2's 'queued', before listening
        listener.execute("LISTEN queue_process_needed")
        scalar(conn, "SELECT complete_assignment(%s)", first["assignment_id"])
        assert conn.execute("SELECT count(*) FROM assignments WHERE work_item_id = 'd2' AND status = 'assigned'"
                            ).fetchone() == (1,)
        listener.execute("SELECT relay_engine_events()")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []


def test_the_relay_sends_the_outbox_in_order_once_and_empties_it(engine_url):
    """Engine transactions write notifications to engine_events; relay_engine_events sends
    them oldest first in one transaction and deletes them; two relays never send one twice."""
    with psycopg.connect(engine_url, autocommit=True) as listener, psycopg.connect(engine_url, autocommit=True) as conn:
        listener.execute("LISTEN queue_process_needed")
        call(conn, "upsert_staff_profile", {"id": PERSON, "unit_id": "unit-hr", "full_name": "One", "wip_limit": 0})
        for n in range(5):
            call(conn, "auto_assign", {"work_item_id": f"r{n}", "work_item_type": "ticket", "priority": "low",
                                       "target_unit_id": "unit-hr"})
        assert conn.execute("SELECT count(*) FROM engine_events").fetchone() == (5,)
        with psycopg.connect(engine_url) as other:                       # a concurrent relay, still open
            assert other.execute("SELECT relay_engine_events(2)").fetchone() == (2,)
            assert conn.execute("SELECT relay_engine_events()").fetchone() == (3,)   # skips the two it holds
            other.commit()
        assert conn.execute("SELECT relay_engine_events()").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM engine_events").fetchone() == (0,)
        items = sorted(json.loads(n.payload)["work_item_id"] for n in listener.notifies(timeout=2, stop_after=5))
        assert items == [f"r{n}" for n in range(5)]
        for n in range(5, 9):
            call(conn, "auto_assign", {"work_item_id": f"r{n}", "work_item_type": "ticket", "priority": "low",
                                       "target_unit_id": "unit-hr"})
        conn.execute("SELECT relay_engine_events()")
        in_order = [json.loads(n.payload)["work_item_id"] for n in listener.notifies(timeout=2, stop_after=4)]
    assert in_order == ["r5", "r6", "r7", "r8"]
    with psycopg.connect(engine_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="limit"):
            conn.execute("SELECT relay_engine_events(0)")


def test_health_says_when_nothing_relays_the_notifications(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        def stuck():
            health = conn.execute("SELECT engine_health()").fetchone()[0]
            return [r for r in health["reasons"] if "nothing relays them" in r], health["checks"]["notifications"]

        conn.execute("INSERT INTO engine_events (channel, payload, created_at) "
                     "VALUES ('queue_process_needed', '{}', now() - interval '2 minutes')")
        reasons, check = stuck()
        assert len(reasons) == 1 and check["oldest_unsent_at"]
        conn.execute("SELECT relay_engine_events()")
        assert stuck() == ([], {"oldest_unsent_at": None})
