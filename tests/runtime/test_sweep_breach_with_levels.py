"""One SLA sweep that finds both kinds of event due: missed response deadlines and chain levels.

sla_check_and_escalate writes the two through one recipient rule and one INSERT; this pins what
that must keep: each event's recipient is get_escalation_recipient's (an unavailable assignee's
goes to the supervisor), level events come before the response breaches in the notifications
(each kind by assignment), levels and next checks move as before, and a second run writes nothing.
rules/sla.yaml: an urgent ticket must be answered within 15 minutes; the service-desk chain's
first level warns the assignee at 50% of its resolution time (at 1 h), the next at 75% (90 min).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from engine_calls import at, call, scalar, uid

pytestmark = pytest.mark.db

T0 = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=3)))
DESK_A, DESK_B, IT_HEAD = uid(11), uid(12), uid(17)


def staff(conn, staff_id, role="staff", **fields):
    return call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": "unit-it-support", "role": role,
                                               "full_name": f"{role} {staff_id[-4:]}", **fields})


def ticket(conn, work_item_id) -> dict:
    return call(conn, "auto_assign", {"work_item_id": work_item_id, "work_item_type": "ticket", "priority": "urgent"})


def sweep(conn) -> int:
    return scalar(conn, "SELECT sla_check_and_escalate()")


def test_one_sweep_writes_response_breaches_and_levels_with_the_same_recipients(conn):
    at(conn, T0)
    staff(conn, DESK_A, wip_limit=10)
    staff(conn, DESK_B, wip_limit=10)
    staff(conn, IT_HEAD, "unit_head", wip_limit=0)
    held_by = {}
    for n in (1, 2):
        result = ticket(conn, f"tk-{n}")
        assert result["status"] == "assigned", result
        held_by[result["assignment_id"]] = result["assignee_id"]
    assert sorted(held_by.values()) == sorted([DESK_A, DESK_B])
    call(conn, "set_staff_availability", {"staff_id": DESK_B, "status": "offline", "reason": "test"})

    at(conn, T0 + timedelta(minutes=61))            # no sweep since: 15 min and 1 h both passed
    assert sweep(conn) == 4
    rows = conn.execute("""SELECT e.assignment_id::text, e.level, e.reason::text, e.recipient_role,
                                  e.recipient_id::text, e.details,
                                  get_escalation_recipient(e.assignment_id, e.recipient_role)::text
                           FROM escalation_events e ORDER BY 1, 2 NULLS LAST""").fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (aid, level, reason, "assignee") for aid in sorted(held_by)
        for level, reason in ((1, "sla_warning"), (None, "response_breach"))]
    assert all(r[4] == r[6] for r in rows), rows
    recipient = {DESK_A: DESK_A, DESK_B: IT_HEAD}                 # offline: the unit's head is told
    assert [r[4] for r in rows] == [recipient[held_by[r[0]]] for r in rows]
    for _, level, _, _, _, details, _ in rows:
        if level is None:
            assert set(details) == {"chain_id", "response_deadline"}
            assert datetime.fromisoformat(details["response_deadline"]) == T0 + timedelta(minutes=15)
        else:
            assert set(details) == {"chain_id", "threshold_percent", "due_at", "sla_deadline"}
            assert datetime.fromisoformat(details["due_at"]) == T0 + timedelta(hours=1)

    notes = [r[0] for r in conn.execute("SELECT payload::jsonb FROM engine_events"
                                        " WHERE channel = 'escalation_events' ORDER BY id")]
    assert [(n["assignment_id"], n["level"], n["reason"]) for n in notes] == (
        [(aid, 1, "sla_warning") for aid in sorted(held_by)]
        + [(aid, None, "response_breach") for aid in sorted(held_by)])
    for aid in held_by:
        state = scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE id = %s", aid)
        assert state["escalation_level"] == 1
        assert datetime.fromisoformat(state["next_check_at"]) == T0 + timedelta(minutes=90)

    at(conn, T0 + timedelta(minutes=62))
    assert sweep(conn) == 0
    assert scalar(conn, "SELECT count(*) FROM escalation_events") == 4
