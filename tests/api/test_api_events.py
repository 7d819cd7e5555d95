"""Server-sent events (GET /functions/v1/assignments/events): the caller's own assignment
changes and escalations arrive; someone else's do not. Row level security decides, asked as the
caller for each notification. Notifications are delivered in commit order, so "an event for
someone else never arrived" is shown by a later event of the caller's own arriving first.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from api_support import (  # noqa: F401 -- module fixtures these tests use
    add_staff,
    assert_error,
    bearer,
    event_stream,
    installed,
    reset_runtime_data,
    running_server,
    server,
)
from engine_calls import uid

pytestmark = pytest.mark.db

V1 = "/functions/v1"
DESK_A = uid(201)                     # IT Support
TRANSLATOR = uid(202)                 # Translation
IT_SUPERVISOR = uid(209)


@pytest.fixture
def api(installed, server):
    reset_runtime_data(installed)
    add_staff(installed, DESK_A, "unit-it-support", wip_limit=5)
    add_staff(installed, TRANSLATOR, "unit-translation", wip_limit=5, skills=["skill-arabic", "skill-english"])
    add_staff(installed, IT_SUPERVISOR, "unit-it-support", role="supervisor", wip_limit=0)
    return server


def assign(api, item: str, work_item_type: str = "ticket") -> dict:
    response = api.as_("service_role").post(f"{V1}/assignments/auto-assign", json={
        "work_item_id": item, "work_item_type": work_item_type, "priority": "normal"})
    assert response.status_code == 200, response.text
    return response.json()


def is_item(item: str):
    return lambda event, data: event == "assignment_changes" and data["work_item_id"] == item


def test_the_caller_sees_their_own_changes_and_not_someone_elses(api):
    with event_stream(api, "authenticated", DESK_A) as mine, event_stream(api, "authenticated", IT_SUPERVISOR) as sup:
        own = assign(api, "EV-1")
        other = assign(api, "EV-2", "translation_request")
        later = assign(api, "EV-3")
        assert own["assignee_id"] == DESK_A and other["assignee_id"] == TRANSLATOR

        seen = mine.until(is_item("EV-1"))
        event, data = seen[-1]
        assert data == {"assignment_id": own["assignment_id"], "work_item_id": "EV-1", "assignee_id": DESK_A,
                        "unit_id": "unit-it-support", "status": "assigned", "op": "insert"}
        seen = mine.until(is_item("EV-3"))
        assert all(data.get("work_item_id") != "EV-2" for _, data in seen), seen

        # the supervisor of IT Support sees the unit's work, not Translation's
        seen = sup.until(is_item("EV-3"))
        assert [d["work_item_id"] for e, d in seen if e == "assignment_changes"] == ["EV-1", "EV-3"]

        # a status change and an escalation of one's own work arrive too
        done = api.as_("authenticated", DESK_A).post(f"{V1}/assignments/complete",
                                                    json={"assignment_id": own["assignment_id"]})
        assert done.status_code == 200, done.text
        event, data = mine.until(is_item("EV-1"))[-1]
        assert (data["status"], data["op"]) == ("completed", "update")
        escalated = api.as_("authenticated", DESK_A).post(f"{V1}/assignments/escalate", json={
            "assignment_id": later["assignment_id"], "reason": "stuck"})
        assert escalated.status_code == 200, escalated.text
        event, data = mine.until(lambda e, d: e == "escalation_events")[-1]
        assert data == {"event_id": escalated.json()["event_id"], "assignment_id": later["assignment_id"],
                        "recipient_id": DESK_A, "level": 1, "reason": "manual"}


def test_the_translator_never_sees_it_support_work(api):
    with event_stream(api, "authenticated", TRANSLATOR) as theirs:
        assign(api, "EV-10")
        assign(api, "EV-11", "translation_request")
        seen = theirs.until(is_item("EV-11"))
        assert [d["work_item_id"] for e, d in seen if e == "assignment_changes"] == ["EV-11"]


def test_events_need_a_token_and_a_role_that_may_read_what_they_carry(api):
    assert_error(api.client.get(f"{V1}/assignments/events"), 401, error="unauthorized")
    assert_error(api.as_("anon").get(f"{V1}/assignments/events"), 403, error="forbidden")
    # service_role reads every table (generated/security/grants.sql) and bypasses row level
    # security, as on Supabase: its stream carries everyone's changes
    with event_stream(api, "service_role") as everything:
        assign(api, "EV-30")
        assert everything.until(is_item("EV-30"))


def test_a_lost_listener_connection_is_announced_and_recovered(api, installed):
    with event_stream(api, "authenticated", DESK_A) as mine:
        with psycopg.connect(installed, autocommit=True) as conn:
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE application_name = 'rulesctl-api-events'").fetchone()[0]
        assert killed == 1
        event, data = mine.next_event()
        assert event == "resync" and "refetch" in data["reason"]
        assign(api, "EV-20")                          # and events flow again
        assert mine.until(is_item("EV-20"))


def test_streams_end_when_the_server_shuts_down(api, installed):
    with running_server(installed) as own, event_stream(own, "authenticated", DESK_A) as stream:
        own.server.shutdown_soon()
        assert stream.next_event() == ("closed", {"reason": "server shutting down"})


def test_a_stream_ends_when_its_token_expires(api):
    with httpx.Client(base_url=api.base_url, headers=bearer("authenticated", DESK_A, expires_in=1.5)) as client:
        with client.stream("GET", f"{V1}/assignments/events") as response:
            from api_support import EventStream
            stream = EventStream(response)
            assert stream.next_event()[0] == "ready"
            assert stream.next_event() == ("closed", {"reason": "token expired"})


def test_someone_elses_escalation_is_withheld_and_one_the_caller_may_see_arrives(api):
    """Each escalation is asked of the database as the subscriber: the translator's escalation
    (Translation) reaches neither a colleague in IT Support nor IT Support's supervisor, while
    the escalation of the IT desk's work reaches both (its assignee, and the supervisor of its unit).
    Commit order shows the withheld one never arrived: it was committed first."""
    theirs = assign(api, "EV-40", "translation_request")
    mine_item = assign(api, "EV-41")
    assert (theirs["assignee_id"], mine_item["assignee_id"]) == (TRANSLATOR, DESK_A)
    with event_stream(api, "authenticated", DESK_A) as mine, event_stream(api, "authenticated", IT_SUPERVISOR) as sup, \
            event_stream(api, "authenticated", TRANSLATOR) as translator:
        withheld = api.as_("authenticated", TRANSLATOR).post(f"{V1}/assignments/escalate", json={
            "assignment_id": theirs["assignment_id"], "reason": "needs a second reader"})
        assert withheld.status_code == 200, withheld.text
        visible = api.as_("authenticated", IT_SUPERVISOR).post(f"{V1}/assignments/escalate", json={
            "assignment_id": mine_item["assignment_id"], "reason": "the customer is waiting"})
        assert visible.status_code == 200, visible.text
        withheld_id, visible_id = withheld.json()["event_id"], visible.json()["event_id"]

        for stream in (mine, sup):
            seen = stream.until(lambda e, d: e == "escalation_events" and d["event_id"] == visible_id)
            escalations = [d for e, d in seen if e == "escalation_events"]
            assert [d["event_id"] for d in escalations] == [visible_id], escalations
            assert escalations[-1]["assignment_id"] == mine_item["assignment_id"]
        # ... and the translator, who may see their own, sees it and not IT Support's
        seen = translator.until(lambda e, d: e == "escalation_events")
        assert seen[-1][1]["event_id"] == withheld_id


def test_a_stream_that_falls_too_far_behind_is_closed(api, installed):
    """More notifications at once than the stream's queue holds: the stream is told to reconnect
    (it would otherwise miss events silently), and the server carries on serving others."""
    with running_server(installed, event_queue_size=4) as own, event_stream(own, "service_role") as stream:
        with psycopg.connect(installed, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('assignment_changes', jsonb_build_object("
                         "'assignment_id', gen_random_uuid(), 'work_item_id', 'burst-' || n)::text)"
                         " FROM generate_series(1, 500) n")
        assert stream.until(lambda e, d: e == "closed")[-1] == ("closed", {"reason": "too far behind; reconnect"})
        with event_stream(own, "service_role") as again:           # a new stream works
            assign(own, "EV-50")
            assert again.until(is_item("EV-50"))
