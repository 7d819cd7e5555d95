"""The official Supabase Python client (supabase-py) against `rulesctl serve`, as a real
deployment's clients call it: `client.functions.invoke("<deployed name>", ...)`, which POSTs
to /functions/v1/<name> with the project key in `apikey` and the user's JWT (or the key itself)
in `Authorization`. Tokens have Supabase's shape: role, sub, iss, aud, exp, iat.

Every endpoint is called by its deployed function name and its result checked against what
the engine did: an item gets assigned, the queue and capacity show the one left waiting, a new
person takes it from the queue, a refused call is a FunctionsHttpError with status 403.
"""

from __future__ import annotations

import threading

import pytest
from api_support import installed, reset_runtime_data, server, supabase_token  # noqa: F401 -- module fixtures
from engine_calls import uid
from supabase import Client, ClientOptions, create_client
from supabase_functions.errors import FunctionsHttpError

# supabase-py's own create_client passes the functions client a deprecated argument
pytestmark = [pytest.mark.db,
              pytest.mark.filterwarnings("ignore:The 'timeout' parameter is deprecated:DeprecationWarning")]

DESK_A, DESK_B = uid(3101), uid(3102)       # IT Support, WIP limit 1 each
IT_SUPERVISOR = uid(3109)
ADMIN = uid(3199)
UNIT = "unit-it-support"


ANON_KEY = supabase_token("anon")
SERVICE_KEY = supabase_token("service_role")


def client(server, key: str = ANON_KEY, user_jwt: str | None = None) -> Client:
    """A supabase-py client for the project key; signed in as a user when user_jwt is given
    (what a session's access token does: Authorization carries it, apikey stays the key)."""
    options = ClientOptions(headers={"Authorization": f"Bearer {user_jwt}"}) if user_jwt else ClientOptions()
    return create_client(server.base_url, key, options)


def as_user(server, sub: str) -> Client:
    return client(server, user_jwt=supabase_token("authenticated", sub))


def invoke(supabase: Client, name: str, body: dict | None = None, **options) -> dict:
    """functions.invoke as an application writes it: POST with a JSON body, the answer as JSON."""
    invoke_options = {"responseType": "json", **options}
    if body is not None:
        invoke_options["body"] = body
    return supabase.functions.invoke(name, invoke_options=invoke_options)


def refused(supabase: Client, name: str, body: dict | None = None, **options) -> FunctionsHttpError:
    with pytest.raises(FunctionsHttpError) as caught:
        invoke(supabase, name, body, **options)
    return caught.value


def ticket(item: str, priority: str = "normal") -> dict:
    return {"work_item_id": item, "work_item_type": "ticket", "priority": priority}


@pytest.fixture
def api(installed, server):
    reset_runtime_data(installed)
    service = client(server, SERVICE_KEY)
    for person, role, wip in ((DESK_A, "staff", 1), (IT_SUPERVISOR, "supervisor", 0), (ADMIN, "admin", 0)):
        created = invoke(service, "staff-profile", {"id": person, "unit_id": UNIT if role != "admin" else "unit-gastat",
                                                    "full_name": f"{role} {person[-4:]}", "role": role,
                                                    "wip_limit": wip})
        assert created["staff_id"] == person and created["created"] is True
    return server


def test_every_endpoint_by_its_deployed_name(api):
    service = client(api, SERVICE_KEY)
    desk_a, supervisor = as_user(api, DESK_A), as_user(api, IT_SUPERVISOR)

    first = invoke(service, "assignments-auto-assign", ticket("S-1"))
    assert first["status"] == "assigned" and first["assignee_id"] == DESK_A and first["rule_id"] == "rule-tickets"
    second = invoke(desk_a, "assignments-auto-assign", ticket("S-2"))          # a person may create work
    assert second["status"] == "queued" and second["position"] == 1           # DESK_A is full (WIP 1)

    # GET functions invoked the supabase-py way: POST, the parameters in the body
    queue = invoke(supervisor, "assignments-queue", {"unit_id": UNIT})
    assert [item["work_item_id"] for item in queue["items"]] == ["S-2"] and queue["total"] == 1
    capacity = invoke(supervisor, "capacity-check", {"unit_id": UNIT})
    assert (capacity["assigned"], capacity["free_slots"], capacity["queue_depth"]) == (1, 0, 1)
    # ... and with method GET and a query string, as the guide's curl does
    assert invoke(supervisor, "capacity-check?unit_id=unit-it-support", method="GET") == capacity
    mine = invoke(desk_a, "assignments-my-assignments")
    assert [a["work_item_id"] for a in mine["assignments"]] == ["S-1"] and mine["staff_id"] == DESK_A

    # a new person arrives through the staff endpoint and takes the queued item at once
    added = invoke(as_user(api, ADMIN), "staff-profile", {"id": DESK_B, "unit_id": UNIT, "full_name": "B",
                                                          "wip_limit": 1})
    assert added["created"] is True and added["assigned_from_queue"] == 1
    assert invoke(as_user(api, DESK_B), "assignments-my-assignments")["assignments"][0]["work_item_id"] == "S-2"
    assert invoke(supervisor, "assignments-queue", {})["total"] == 0

    moved = invoke(supervisor, "assignments-manual-override", {
        "assignment_id": first["assignment_id"], "assignee_id": DESK_B, "reason": "knows it",
        "allow_exceed_wip": True})
    assert moved["assignee_id"] == DESK_B and moved["previous_assignee_id"] == DESK_A

    escalated = invoke(as_user(api, DESK_B), "assignments-escalate",
                       {"assignment_id": first["assignment_id"], "reason": "stuck"})
    assert escalated["assignment_id"] == first["assignment_id"] and escalated["level"] >= 1

    done = invoke(as_user(api, DESK_B), "assignments-complete", {"assignment_id": first["assignment_id"]})
    assert done["status"] == "completed"

    leave = invoke(desk_a, "staff-availability", {"staff_id": DESK_A, "status": "on_leave"})
    assert leave["status"] == "on_leave" and leave["previous_status"] == "available"

    # health: no pg_cron in this test database, so degraded (503) for every caller
    assert refused(client(api), "health-assignment-engine", method="GET").status == 503
    assert refused(service, "health-assignment-engine").status == 503
    # the guide's path is what Supabase routes to a function `health` (sub-path assignment-engine)
    assert refused(client(api), "health/assignment-engine", method="GET").status == 503


def test_the_event_stream_by_its_deployed_name(api):
    """assignments-events read to its end: the token expires after a few seconds (exp is whole
    seconds, so 4 to 5) and the server closes the stream; an item assigned meanwhile is in it."""
    desk_a = as_user(api, DESK_A)
    desk_a.functions.set_auth(supabase_token("authenticated", DESK_A, expires_in=5))
    assigner = threading.Timer(1.0, lambda: invoke(client(api, SERVICE_KEY), "assignments-auto-assign",
                                                   ticket("EV-1")))
    assigner.start()
    try:
        text = desk_a.functions.invoke("assignments-events").decode()        # POST, as invoke() sends
    finally:
        assigner.join()
    marks = ("event: ready", '"work_item_id":"EV-1"', "event: closed")
    assert all(mark in text for mark in marks), text
    assert [text.index(mark) for mark in marks] == sorted(text.index(mark) for mark in marks), text
    assert "token expired" in text


def test_refusals_are_functions_http_errors(api):
    anon = client(api)                               # the anon key alone: the anon role
    for name, body in (("assignments-auto-assign", ticket("R-1")), ("assignments-queue", {}),
                       ("capacity-check", {"unit_id": UNIT}), ("assignments-my-assignments", None)):
        error = refused(anon, name, body)
        assert (error.status, error.message) == (403, "forbidden"), name
    service = client(api, SERVICE_KEY)
    held = invoke(service, "assignments-auto-assign", ticket("R-0"))
    plain = as_user(api, DESK_A)
    error = refused(plain, "staff-profile", {"id": DESK_B, "unit_id": UNIT, "full_name": "B"})
    assert (error.status, error.message) == (403, "forbidden")
    error = refused(plain, "assignments-manual-override", {"assignment_id": held["assignment_id"],
                                                          "assignee_id": IT_SUPERVISOR, "reason": "yours"})
    assert (error.status, error.message) == (403, "forbidden")
    forged = client(api, user_jwt=supabase_token("authenticated", DESK_A, expires_in=-60))
    assert refused(forged, "assignments-my-assignments").status == 401
    bad = refused(as_user(api, ADMIN), "staff-profile", {"id": DESK_B, "unit_id": UNIT, "full_name": "B",
                                                         "role": "boss"})
    assert (bad.status, bad.message) == (400, "invalid_input")
    # nothing of it was written: no DESK_B, no still DESK_A's
    assert refused(service, "staff-availability", {"staff_id": DESK_B, "status": "available"}).status == 404
    assert invoke(service, "assignments-queue", {})["total"] == 0
    assert [a["work_item_id"] for a in invoke(plain, "assignments-my-assignments")["assignments"]] == ["R-0"]
