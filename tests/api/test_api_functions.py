"""Supabase compatibility over plain HTTP: every endpoint answers under its guide's curl path and
its deployed function name alike (one implementation), GET functions also take the POST that
`functions.invoke()` sends, the `apikey` header is the caller when no Authorization comes with it,
CORS answers only the configured origins, and the staff-profile endpoint (upsert_staff_profile).
The Supabase client itself is in test_supabase_client.py.
"""

from __future__ import annotations

import psycopg
import pytest
from api_support import (  # noqa: F401 -- module fixtures these tests use
    add_staff,
    assert_error,
    bearer,
    installed,
    reset_runtime_data,
    running_server,
    server,
    token,
)
from engine_calls import uid

from engine.api.functions import FUNCTION_NAME, function_name

pytestmark = pytest.mark.db

V1 = "/functions/v1"
DESK_A = uid(3201)                     # IT Support
IT_SUPERVISOR = uid(3209)
ADMIN = uid(3299)
NEWCOMER = uid(3210)
UNIT = "unit-it-support"


@pytest.fixture
def api(installed, server):
    reset_runtime_data(installed)
    add_staff(installed, DESK_A, UNIT, wip_limit=1)
    add_staff(installed, IT_SUPERVISOR, UNIT, role="supervisor", wip_limit=0)
    add_staff(installed, ADMIN, "unit-gastat", role="admin", wip_limit=0)
    return server


def operations(server) -> list[tuple[str, str, dict]]:
    document = server.client.get("/openapi.json").json()
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


# ------------------------------------------------------------------ curl path = deployed name

def test_every_documented_endpoint_declares_and_answers_its_function_name(api):
    """Over the OpenAPI document, so an endpoint added later is held to it too: the deployed
    path exists (no 404) and refuses a bad token exactly as the curl path does."""
    seen = {}
    for method, path, operation in operations(api):
        name = operation[FUNCTION_NAME]
        assert name == function_name(path.removeprefix(V1)), (path, name)
        seen[name] = path
        headers = {"Authorization": "Bearer not.a.jwt"}
        by_path = api.client.request(method, path, headers=headers)
        by_name = api.client.request(method, f"{V1}/{name}", headers=headers)
        assert (by_name.status_code, by_name.json()) == (by_path.status_code, by_path.json()) == (
            401, {"error": "unauthorized", "message": by_path.json()["message"]}), path
    assert {"assignments-auto-assign", "assignments-manual-override", "assignments-queue",
            "assignments-my-assignments", "assignments-escalate", "assignments-complete", "capacity-check",
            "staff-availability", "staff-profile", "health-assignment-engine", "assignments-events"} <= set(seen)
    # one operation per endpoint in the document: the function names are not listed again
    assert not any(path.removeprefix(f"{V1}/") in seen for _, path, _ in operations(api))


def test_the_same_call_by_either_path_does_the_same(api):
    service = api.as_("service_role")
    first = service.post(f"{V1}/assignments/auto-assign", json=ticket("P-1"))
    again = service.post(f"{V1}/assignments-auto-assign", json=ticket("P-1"))
    assert first.status_code == again.status_code == 200
    assert again.json() == {**first.json(), "existing": True}           # the same assignment, not a second
    queued = service.post(f"{V1}/assignments-auto-assign", json=ticket("P-2"))
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    by_path = service.get(f"{V1}/capacity/check", params={"unit_id": UNIT})
    by_name = service.get(f"{V1}/capacity-check", params={"unit_id": UNIT})
    assert by_path.json() == by_name.json() and by_name.json()["queue_depth"] == 1
    # the same error, field and all
    for path in (f"{V1}/assignments/escalate", f"{V1}/assignments-escalate"):
        assert_error(service.post(path, json={"assignment_id": first.json()["assignment_id"]}), 400, "reason")


def test_a_get_function_answers_the_post_that_functions_invoke_sends(api):
    supervisor = api.as_("authenticated", IT_SUPERVISOR)
    service = api.as_("service_role")
    service.post(f"{V1}/assignments-auto-assign", json=ticket("G-1"))
    service.post(f"{V1}/assignments-auto-assign", json=ticket("G-2", "urgent"))        # queued: DESK_A is full
    by_get = supervisor.get(f"{V1}/assignments-queue", params={"unit_id": UNIT, "limit": 5})
    by_post = supervisor.post(f"{V1}/assignments-queue", json={"unit_id": UNIT, "limit": 5})
    assert by_get.status_code == by_post.status_code == 200
    assert by_post.json() == by_get.json() and [i["work_item_id"] for i in by_post.json()["items"]] == ["G-2"]
    # no body, a query string, or both (different keys); null means "not given"
    assert supervisor.post(f"{V1}/assignments-queue").json()["total"] == 1
    assert supervisor.post(f"{V1}/capacity-check?unit_id={UNIT}").json()["queue_depth"] == 1
    assert supervisor.post(f"{V1}/assignments-queue?limit=5", json={"unit_id": UNIT, "priority": None}
                           ).json() == by_get.json()
    # validated exactly as the GET is
    assert_error(supervisor.post(f"{V1}/assignments-queue", json={"limit": 0}), 400, "limit")
    assert_error(supervisor.post(f"{V1}/assignments-queue", json={"limit": "many"}), 400, "limit")
    assert_error(supervisor.post(f"{V1}/capacity-check", json={}), 400, "unit_id")
    assert_error(supervisor.post(f"{V1}/capacity-check", json={"unit_id": "unit-nope"}), 404, error="not_found")
    assert_error(supervisor.post(f"{V1}/capacity-check?unit_id={UNIT}", json={"unit_id": "unit-hr"}), 400, "unit_id")
    assert_error(supervisor.post(f"{V1}/capacity-check", json={"unit_id": [UNIT]}), 400, "unit_id")
    assert_error(supervisor.post(f"{V1}/capacity-check", json=[UNIT]), 400, "request")
    assert_error(supervisor.post(f"{V1}/capacity-check", content=b"{nope"), 400, "request")
    # and run as the caller: the anon key is refused there as on the GET
    assert_error(api.as_("anon").post(f"{V1}/capacity-check", json={"unit_id": UNIT}), 403, error="forbidden")
    # the guide's curl paths stay GET only
    assert_error(supervisor.post(f"{V1}/capacity/check", json={"unit_id": UNIT}), 405, error="method_not_allowed")


# ---------------------------------------------------------------------------------- apikey

def test_the_apikey_header_is_the_caller_only_without_authorization(api, installed):
    mine = f"{V1}/assignments-my-assignments"
    api.as_("service_role").post(f"{V1}/assignments-auto-assign", json=ticket("K-1"))
    service_key, anon_key = token("service_role"), token("anon")
    # only the service key: the service role
    response = api.client.post(f"{V1}/staff-profile", headers={"apikey": service_key},
                               json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "New"})
    assert response.status_code == 200 and response.json()["created"] is True, response.text
    # only the anon key: anon, who may do nothing here
    assert_error(api.client.post(f"{V1}/assignments-queue", headers={"apikey": anon_key}), 403, error="forbidden")
    # a user's token with the anon key (what supabase-py sends when signed in): the user
    as_desk = api.client.get(mine, headers={"apikey": anon_key, **bearer("authenticated", DESK_A)})
    assert [a["work_item_id"] for a in as_desk.json()["assignments"]] == ["K-1"]
    # ... and the service key does not lift a user's call
    refused = api.client.post(f"{V1}/staff-profile", headers={"apikey": service_key, **bearer("authenticated", DESK_A)},
                              json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "Renamed"})
    assert_error(refused, 403, error="forbidden")
    # a bad key alone is a 401 that says it was the apikey
    expired = api.client.get(mine, headers={"apikey": token("anon", expires_in=-60)})
    body = assert_error(expired, 401, error="unauthorized")
    assert body["message"] == "apikey: token expired"
    assert "apikey" in assert_error(api.client.get(mine), 401)["message"]
    with psycopg.connect(installed) as conn:
        assert conn.execute("SELECT full_name FROM staff_profiles WHERE id = %s", [NEWCOMER]).fetchone() == ("New",)


# --------------------------------------------------------------------------------- profile

def test_staff_profile_by_admins_and_the_service_role(api, installed):
    admin = api.as_("authenticated", ADMIN)
    api.as_("service_role").post(f"{V1}/assignments/auto-assign", json=ticket("Q-1"))
    api.as_("service_role").post(f"{V1}/assignments/auto-assign", json=ticket("Q-2"))       # queued
    created = admin.post(f"{V1}/staff/profile", json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "New Person",
                                                      "skills": {"skill-sql": "expert"}, "wip_limit": 2})
    assert created.status_code == 200, created.text
    assert created.json() == {**created.json(), "staff_id": NEWCOMER, "created": True, "assigned_from_queue": 1}
    updated = admin.post(f"{V1}/staff-profile", json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "New Person",
                                                      "wip_limit": 3})
    assert updated.json()["created"] is False and updated.json()["version"] > created.json()["version"]
    # bad input names the field; nothing is written
    assert_error(admin.post(f"{V1}/staff-profile", json={"id": NEWCOMER, "unit_id": "unit-nope", "full_name": "x"}),
                 404, "unit_id", "not_found")
    assert_error(admin.post(f"{V1}/staff-profile", json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "x",
                                                         "role": "boss"}), 400, "role")
    assert_error(admin.post(f"{V1}/staff-profile", json={"unit_id": UNIT, "full_name": "x"}), 400, "id")
    assert_error(admin.post(f"{V1}/staff-profile", json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "x",
                                                         "skills": ["skill-nope"]}), 400, "skills")
    for caller in (api.as_("authenticated", DESK_A), api.as_("authenticated", IT_SUPERVISOR), api.as_("anon")):
        assert_error(caller.post(f"{V1}/staff-profile", json={"id": NEWCOMER, "unit_id": UNIT, "full_name": "x"}),
                     403, error="forbidden")
    with psycopg.connect(installed) as conn:
        assert conn.execute("SELECT full_name, wip_limit FROM staff_profiles WHERE id = %s",
                            [NEWCOMER]).fetchone() == ("New Person", 3)


# ------------------------------------------------------------------------------------ CORS

ORIGIN = "https://app.example.org"
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, apikey, content-type, x-client-info"}


def test_cors_answers_the_configured_origins_only(installed):
    with running_server(installed, cors_origins=[ORIGIN, "http://localhost:3000"]) as server:
        allowed = server.client.options(f"{V1}/assignments-auto-assign", headers={"Origin": ORIGIN, **PREFLIGHT})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert {"authorization", "apikey", "content-type", "x-client-info"} <= {
            h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
        assert "POST" in allowed.headers["access-control-allow-methods"]
        # the actual request carries the header too (an error included: the browser must read it)
        actual = server.client.get(f"{V1}/health-assignment-engine", headers={"Origin": ORIGIN})
        assert actual.headers["access-control-allow-origin"] == ORIGIN
        denied = server.client.options(f"{V1}/assignments-auto-assign",
                                       headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
        other = server.client.get(f"{V1}/health-assignment-engine", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_without_cors_origins_no_origin_is_allowed(api):
    preflight = api.client.options(f"{V1}/assignments-auto-assign", headers={"Origin": ORIGIN, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers
    assert_error(preflight, 405, error="method_not_allowed")
    assert "access-control-allow-origin" not in api.client.get(f"{V1}/health-assignment-engine",
                                                               headers={"Origin": ORIGIN}).headers


def test_a_cors_origin_that_is_not_an_origin_is_refused_before_serving():
    from click.testing import CliRunner

    from engine.api import create_app
    from engine.cli import cli

    for bad in ("https://app.example.org/", "app.example.org", "https://app.example.org/path", "*"):
        with pytest.raises(ValueError, match="is not scheme://host"):
            create_app("postgresql://unused@127.0.0.1:1/unused", "secret", cors_origins=[bad])
        run = CliRunner().invoke(cli, ["serve", "--jwt-secret", "secret", "--cors-origin", ORIGIN,
                                       "--cors-origin", bad])
        assert run.exit_code == 2 and "--cors-origin" in run.output and "is not scheme://host" in run.output, run.output
        assert "Traceback" not in run.output
    assert "--cors-origin ORIGIN" in CliRunner().invoke(cli, ["serve", "--help"]).output


def ticket(item: str, priority: str = "normal") -> dict:
    return {"work_item_id": item, "work_item_type": "ticket", "priority": priority}
