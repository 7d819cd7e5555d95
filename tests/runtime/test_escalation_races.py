"""Escalation races (the shipped policy), written for mutations of scripts/mutations.toml that
nothing else killed: the SLA sweep and a manual escalation of one assignment, truly overlapping
(one holds its transaction open while the other runs), never write the same level and never make
the other fail or wait where it should not.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import at, call, uid

pytestmark = pytest.mark.db

# The SLA sweep (sla_check_and_escalate) and a manual escalation (escalate_assignment) of one
# assignment never write the same level: the sweep skips a row the manual escalation holds, and
# the manual escalation waits for a row the sweep holds, then escalates from the level the sweep
# reached. (So the sweep's ON CONFLICT guard never fires: see its template.)

T0 = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=3)))
DESK, IT_HEAD, IT_SUP = uid(2011), uid(2017), uid(2018)


def urgent_ticket(conn) -> str:
    """An urgent ticket (2 h, always-on calendar, the service-desk chain: 50% to the assignee,
    75% to the supervisor, ...) assigned at T0 to the only desk worker of IT Support, who answers
    at once (the response clock is not what these races are about)."""
    at(conn, T0 - timedelta(hours=1))
    for staff_id, role, wip in ((DESK, "staff", 4), (IT_HEAD, "unit_head", 0), (IT_SUP, "supervisor", 0)):
        call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": "unit-it-support", "full_name": role,
                                            "role": role, "wip_limit": wip})
    at(conn, T0)
    assignment_id = call(conn, "auto_assign", {"work_item_id": "tk-race", "work_item_type": "ticket",
                                               "priority": "urgent"})["assignment_id"]
    call(conn, "respond_assignment", {"assignment_id": assignment_id})
    return assignment_id


def levels(conn, assignment_id) -> list[tuple]:
    return conn.execute("SELECT level, reason::text FROM escalation_events WHERE assignment_id = %s ORDER BY level",
                        [assignment_id]).fetchall()


def wait_until_waiting_for_a_lock(conn, pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() != ("Lock",):
        assert time.monotonic() < deadline, "the manual escalation never waited for the sweep"
        time.sleep(0.02)


def test_a_manual_escalation_waits_for_the_sweep_holding_the_row_then_takes_the_next_level(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as setup, psycopg.connect(engine_url) as sweep, \
            psycopg.connect(engine_url, autocommit=True) as manual, \
            psycopg.connect(engine_url, autocommit=True) as observer:
        aid = urgent_ticket(setup)
        for conn in (sweep, manual):
            at(conn, T0 + timedelta(minutes=60))                  # the 50% level is due
        assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (1,)   # level 1, not committed
        outcome = {}

        def escalate():
            try:
                outcome["result"] = call(manual, "escalate_assignment", {"assignment_id": aid, "reason": "urgent"})
            except psycopg.Error as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=escalate)
        thread.start()
        try:
            wait_until_waiting_for_a_lock(observer, manual.info.backend_pid)
            assert outcome == {}
        finally:
            sweep.commit()
            thread.join(10)
        assert "error" not in outcome, outcome
        assert outcome["result"]["level"] == 2
        assert levels(setup, aid) == [(1, "sla_warning"), (2, "manual")]
        assert setup.execute("SELECT escalation_level FROM assignments WHERE id = %s", [aid]).fetchone() == (2,)


def test_the_sweep_skips_a_row_a_manual_escalation_holds_and_carries_on_after_it(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as setup, psycopg.connect(engine_url) as manual, \
            psycopg.connect(engine_url, autocommit=True) as sweep:
        aid = urgent_ticket(setup)
        for conn in (sweep, manual):
            at(conn, T0 + timedelta(minutes=60))
        assert call(manual, "escalate_assignment", {"assignment_id": aid, "reason": "urgent"})["level"] == 1
        sweep.execute("SET lock_timeout = '2s'")                  # it must not wait for the held row
        try:
            assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (0,)
        finally:
            manual.commit()
        assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (0,)   # level 1 was taken by hand
        at(sweep, T0 + timedelta(minutes=90))
        assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (1,)
        assert levels(setup, aid) == [(1, "manual"), (2, "sla_warning")]
