"""Realtime: the supabase_realtime publication carries assignments, assignment_queue and
escalation_events, and real change records for them come out of a logical replication slot
(wal2json, as Supabase Realtime reads the WAL). The server runs with wal_level=logical."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import call, scalar
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)
DESK = "00000000-0000-4000-8000-000000000011"
REALTIME = {"assignments", "assignment_queue", "escalation_events"}


def published(conn) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in conn.execute(
        "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = 'supabase_realtime'")}


def test_publication_holds_the_three_tables(engine_url):
    with psycopg.connect(engine_url) as conn:
        assert scalar(conn, "SHOW wal_level") == "logical"
        assert published(conn) == {("public", t) for t in REALTIME}
        flags = conn.execute("SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication"
                             " WHERE pubname = 'supabase_realtime'").fetchone()
        assert flags == (False, True, True, True)
        health = scalar(conn, "SELECT engine_health()")
        assert set(health["checks"]["realtime"]["tables"]) == REALTIME
        assert not [r for r in health["reasons"] if "realtime" in r]


def test_the_generated_publication_sql_extends_an_existing_publication(engine_url, repo_root):
    """generated/realtime/publication.sql creates supabase_realtime when missing and adds the
    tables when it exists (as on Supabase, where other tables are published already)."""
    publication_sql = (repo_root / "generated" / "realtime" / "publication.sql").read_text()
    with psycopg.connect(engine_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.chat_messages (id bigint PRIMARY KEY, body text)")
        conn.execute("DROP PUBLICATION supabase_realtime")
        conn.execute("CREATE PUBLICATION supabase_realtime FOR TABLE public.chat_messages,"
                     " public.assignments")
        conn.execute(publication_sql)
        assert published(conn) == {("public", t) for t in REALTIME} | {("public", "chat_messages")}
        conn.execute(publication_sql)                       # idempotent
        assert published(conn) == {("public", t) for t in REALTIME} | {("public", "chat_messages")}
        conn.execute("DROP PUBLICATION supabase_realtime")
        conn.execute(publication_sql)                       # created when missing
        assert published(conn) == {("public", t) for t in REALTIME}


def test_health_reports_a_table_missing_from_the_publication(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        conn.execute("ALTER PUBLICATION supabase_realtime DROP TABLE public.escalation_events")
        health = scalar(conn, "SELECT engine_health()")
        assert health["status"] == "degraded"
        assert "realtime publication supabase_realtime lacks escalation_events" in health["reasons"]
        assert set(health["checks"]["realtime"]["tables"]) == REALTIME - {"escalation_events"}


def _records(conn, slot: str) -> list[dict]:
    rows = conn.execute(
        "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL, 'format-version', '2',"
        " 'include-transaction', 'false', 'add-tables', 'public.assignments,public.assignment_queue,"
        "public.escalation_events,public.staff_profiles')", [slot]).fetchall()
    return [json.loads(r[0]) for r in rows]


def _values(record: dict, key: str = "columns") -> dict:
    return {c["name"]: c["value"] for c in record.get(key, [])}


def test_logical_decoding_yields_change_records_for_the_realtime_tables(engine_url):
    slot = f"rulesctl_rt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(engine_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [T0.isoformat()])
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", [slot])
        try:
            # The service desk has one person with room for one urgent ticket (weight 2).
            call(conn, "upsert_staff_profile", {"id": DESK, "unit_id": "unit-it-support", "full_name": "Desk",
                                                "wip_limit": 2})
            first = call(conn, "auto_assign", {"work_item_id": "rt-1", "work_item_type": "ticket",
                                               "priority": "urgent"})
            assert first["status"] == "assigned"
            second = call(conn, "auto_assign", {"work_item_id": "rt-2", "work_item_type": "ticket",
                                                "priority": "urgent"})
            assert second["status"] == "queued"
            event = call(conn, "escalate_assignment", {"assignment_id": first["assignment_id"],
                                                        "reason": "watching the WAL"})
            conn.execute("SELECT set_config('rulesctl.now', %s, false)", [(T0 + timedelta(minutes=30)).isoformat()])
            conn.execute("SELECT complete_assignment(%s)", [first["assignment_id"]])   # rt-2 leaves the queue

            records = _records(conn, slot)
            changes = [r for r in records if r.get("action") in ("I", "U", "D")]
            assert {r["schema"] for r in changes} == {"public"}

            def of(table, action):
                return [r for r in changes if r["table"] == table and r["action"] == action]

            # assignments: rt-1 inserted, then completed; rt-2 inserted from the queue.
            inserted = {_values(r)["work_item_id"]: _values(r) for r in of("assignments", "I")}
            assert set(inserted) == {"rt-1", "rt-2"}
            assert inserted["rt-1"]["id"] == first["assignment_id"]
            assert inserted["rt-1"]["assignee_id"] == DESK and inserted["rt-1"]["status"] == "assigned"
            assert inserted["rt-2"]["assignee_id"] == DESK
            statuses = [_values(r)["status"] for r in of("assignments", "U")
                        if _values(r)["id"] == first["assignment_id"]]
            assert statuses and statuses[-1] == "completed"

            # assignment_queue: rt-2 queued, then taken off the queue.
            [queued] = of("assignment_queue", "I")
            assert _values(queued)["work_item_id"] == "rt-2"
            assert _values(queued)["id"] == second["queue_id"]
            assert [_values(r, "identity")["id"] for r in of("assignment_queue", "D")] == [second["queue_id"]]

            # escalation_events: the manual escalation, then resolved when rt-1 was completed.
            [escalated] = of("escalation_events", "I")
            assert _values(escalated)["id"] == event["event_id"]
            assert _values(escalated)["assignment_id"] == first["assignment_id"]
            assert _values(escalated)["reason"] == "manual"
            assert _values(escalated)["recipient_id"] == DESK
            resolved = [_values(r) for r in of("escalation_events", "U")]
            assert [r["id"] for r in resolved] == [event["event_id"]]
            assert resolved[0]["resolved_at"] is not None

            # Order within the WAL follows the calls: the queue insert precedes its delete.
            order = [(r["table"], r["action"]) for r in changes if r["table"] != "staff_profiles"]
            assert order.index(("assignment_queue", "I")) < order.index(("escalation_events", "I")) \
                < order.index(("assignment_queue", "D"))
            # Consumed: a second read returns nothing new.
            assert [r for r in _records(conn, slot) if r.get("action") in ("I", "U", "D")] == []
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
        assert scalar(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", slot) == 0
