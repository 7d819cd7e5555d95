"""The HTTP API (`rulesctl serve`) against a real server on loopback and a real PostgreSQL with
the shipped policy: every endpoint's success and error paths, tokens, and row level security
seen through HTTP. Expectations come from the policy (rules/*.yaml): a normal ticket goes to
unit-it-support by rule-tickets (weight 1), an urgent one by rule-critical-tickets (weight 2).

The escalation and health endpoints are in tests/test_api_escalation.py, server-sent events
in tests/test_api_events.py, the load run in tests/test_api_serve.py.
"""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from api_support import (  # noqa: F401 -- module fixtures these tests use
    SECRET,
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

pytestmark = pytest.mark.db

V1 = "/functions/v1"
AUTO_ASSIGN = f"{V1}/assignments/auto-assign"
OVERRIDE = f"{V1}/assignments/manual-override"
QUEUE = f"{V1}/assignments/queue"
MINE = f"{V1}/assignments/my-assignments"
COMPLETE = f"{V1}/assignments/complete"
CAPACITY = f"{V1}/capacity/check"
AVAILABILITY = f"{V1}/staff/availability"

DESK_A, DESK_B = uid(1), uid(2)        # IT Support staff, WIP limit 2 each
IT_SUPERVISOR = uid(9)                 # supervises unit-it-support (holds no work: WIP 0)
TRANSLATOR = uid(21)                   # unit-translation staff, no relation to IT Support
ADMIN = uid(99)
STRANGER = uid(4242)                   # a valid uuid that is nobody


@pytest.fixture
def api(installed, server):
    reset_runtime_data(installed)
    add_staff(installed, DESK_A, "unit-it-support", wip_limit=2)
    add_staff(installed, DESK_B, "unit-it-support", wip_limit=2)
    add_staff(installed, IT_SUPERVISOR, "unit-it-support", role="supervisor", wip_limit=0)
    add_staff(installed, TRANSLATOR, "unit-translation", wip_limit=0)
    add_staff(installed, ADMIN, "unit-gastat", role="admin", wip_limit=0)
    return server


def ticket(item: str, priority: str = "normal", **fields) -> dict:
    return {"work_item_id": item, "work_item_type": "ticket", "priority": priority, **fields}


def fill_the_desk(api) -> dict[str, dict]:
    """Four normal tickets fill DESK_A and DESK_B (WIP 2 each); two more are queued."""
    service = api.as_("service_role")
    results = {}
    for n in range(6):
        response = service.post(AUTO_ASSIGN, json=ticket(f"T-{n}", "urgent" if n == 5 else "normal"))
        assert response.status_code in (200, 202), response.text
        results[f"T-{n}"] = response.json()
    return results


# ------------------------------------------------------------------------------ auto-assign

def test_auto_assign_assigns_with_200_queues_with_202_and_is_idempotent(api):
    results = fill_the_desk(api)
    assigned = [r for r in results.values() if r["status"] == "assigned"]
    assert len(assigned) == 4
    assert {r["assignee_id"] for r in assigned} == {DESK_A, DESK_B}
    assert all(r["rule_id"] == "rule-tickets" and r["existing"] is False for r in assigned)
    assert results["T-4"]["status"] == "queued" and results["T-4"]["position"] == 1
    # the urgent ticket (aged priority urgent > normal) goes ahead of the older normal one
    assert results["T-5"]["status"] == "queued" and results["T-5"]["position"] == 1

    staff = api.as_("authenticated", DESK_A)        # a person may create work too (grant: authenticated)
    again = staff.post(AUTO_ASSIGN, json=ticket("T-0"))
    assert again.status_code == 200 and again.json()["existing"] is True
    assert again.json()["assignment_id"] == results["T-0"]["assignment_id"]
    queued_again = staff.post(AUTO_ASSIGN, json=ticket("T-4"))
    assert queued_again.status_code == 202 and queued_again.json()["existing"] is True


def test_auto_assign_bad_input_is_a_400_naming_the_field(api):
    client = api.as_("service_role")
    cases = {
        "priority": ticket("X-1", "whenever"),
        "work_item_type": {"work_item_id": "X-2", "work_item_type": "fax", "priority": "low"},
        "work_item_id": {"work_item_type": "ticket", "priority": "low"},
        "required_skills": ticket("X-3", required_skills="skill-sql"),
    }
    for field, body in cases.items():
        assert_error(client.post(AUTO_ASSIGN, json=body), 400, field, "invalid_input")
    assert_error(client.post(AUTO_ASSIGN, json=ticket("X-4", 5)), 400, "priority")          # wrong JSON type
    assert_error(client.post(AUTO_ASSIGN, json=ticket("X-5", required_skills=["skill-nope"])), 400, "required_skills")
    # an explicit target unit that does not exist is an unknown unit: 404
    assert_error(client.post(AUTO_ASSIGN, json=ticket("X-6", target_unit_id="unit-nope")), 404, "target_unit_id",
                 "not_found")


GARBAGE_BODIES = (
    b"", b"   ", b"{nope", b"[1, 2", b"\xff\xfe\x00", b"NaN", b'{"priority": Infinity}',
    b"[]", b'"a string"', b"42", b"null", b'{"work_item_id": ["a"], "work_item_type": {}, "priority": true}',
    b'{"work_item_id": "nul\\u0000byte", "work_item_type": "ticket", "priority": "low"}',
    b"[" * 100_000, b'{"work_item_id": "x", "work_item_type": "ticket", "priority": "low", "n": 1e999}',
)


def test_a_body_over_1_mib_is_413(api):
    body = b'{"work_item_id": "' + b"x" * (1 << 20) + b'"}'
    assert_error(api.as_("service_role").post(AUTO_ASSIGN, content=body), 413, error="too_large")


def test_garbage_bodies_are_400s_never_500s(api):
    client = api.as_("service_role")
    for body in GARBAGE_BODIES:
        for path in (AUTO_ASSIGN, OVERRIDE, COMPLETE, AVAILABILITY):
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (path, body[:80], response.text)
            assert_error(response, 400, error="invalid_input")


# -------------------------------------------------------------------------------- tokens

def test_tokens_missing_malformed_expired_or_forged_are_401(api):
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {token()}"},
        "empty bearer": {"Authorization": "Bearer"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "expired": bearer("authenticated", DESK_A, expires_in=-60),
        "forged": bearer("authenticated", DESK_A, secret="someone-elses-secret-of-32-bytes-or-more"),
        "unknown role": bearer("postgres"),
        "sub not a uuid": bearer("authenticated", "alice"),
        "no exp": {"Authorization": "Bearer " + _jwt({"role": "authenticated", "sub": DESK_A})},
        "no role": {"Authorization": "Bearer " + _jwt({"sub": DESK_A, "exp": 4102444800})},
        "alg none": {"Authorization": "Bearer " + _jwt({"role": "service_role", "exp": 4102444800}, alg="none")},
    }
    for name, headers in cases.items():
        for method, path in (("POST", AUTO_ASSIGN), ("GET", MINE), ("GET", QUEUE)):
            response = api.client.request(method, path, headers=headers, json=ticket("A-1"))
            body = assert_error(response, 401, error="unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
            assert body["message"], name


def _jwt(claims: dict, alg: str = "HS256") -> str:
    import jwt
    return jwt.encode(claims, SECRET if alg != "none" else None, algorithm=alg)


def test_anon_may_execute_nothing(api):
    anon = api.as_("anon")
    assert_error(anon.post(AUTO_ASSIGN, json=ticket("A-1")), 403, error="forbidden")
    assert_error(anon.get(QUEUE), 403)
    assert_error(anon.get(MINE), 403)
    assert_error(anon.get(CAPACITY, params={"unit_id": "unit-it-support"}), 403)
    assert_error(anon.post(AVAILABILITY, json={"staff_id": DESK_A, "status": "on_leave"}), 403)
    # and nothing was written
    assert api.as_("service_role").get(CAPACITY, params={"unit_id": "unit-it-support"}).json()["assigned"] == 0


# -------------------------------------------------------------------------- manual override

def test_manual_override_by_a_supervisor_and_refused_to_plain_staff(api):
    results = fill_the_desk(api)
    item = next(r for r in results.values() if r["status"] == "assigned" and r["assignee_id"] == DESK_A)
    request = {"assignment_id": item["assignment_id"], "assignee_id": DESK_B, "reason": "knows the system",
               "allow_exceed_wip": True}

    assert_error(api.as_("authenticated", DESK_A).post(OVERRIDE, json=request), 403, error="forbidden")

    supervisor = api.as_("authenticated", IT_SUPERVISOR)
    response = supervisor.post(OVERRIDE, json=request)
    assert response.status_code == 200, response.text
    assert response.json()["assignee_id"] == DESK_B and response.json()["previous_assignee_id"] == DESK_A

    # a queued item can be handed out by work item id
    # (moving the item freed a slot of DESK_A's, which took T-4 from the queue at once)
    queued = supervisor.post(OVERRIDE, json={"work_item_id": "T-5", "assignee_id": DESK_B, "reason": "urgent",
                                             "allow_exceed_wip": True})
    assert queued.status_code == 200, queued.text
    assert queued.json()["previous_assignee_id"] is None and queued.json()["status"] == "assigned"


def test_manual_override_errors(api):
    results = fill_the_desk(api)
    item = next(r for r in results.values() if r["status"] == "assigned")
    supervisor = api.as_("authenticated", IT_SUPERVISOR)
    base = {"assignment_id": item["assignment_id"], "assignee_id": DESK_B, "reason": "why not"}
    assert_error(supervisor.post(OVERRIDE, json={**base, "assignment_id": STRANGER}), 404, "assignment_id", "not_found")
    assert_error(supervisor.post(OVERRIDE, json={**base, "assignee_id": STRANGER}), 404, "assignee_id", "not_found")
    assert_error(supervisor.post(OVERRIDE, json={**base, "assignment_id": "not-a-uuid"}), 400, "assignment_id")
    assert_error(supervisor.post(OVERRIDE, json={k: v for k, v in base.items() if k != "reason"}), 400, "reason")
    assert_error(supervisor.post(OVERRIDE, json={**base, "allow_exceed_wip": "yes"}), 400, "allow_exceed_wip")


# -------------------------------------------------------------------------------- the queue

def test_queue_is_what_row_level_security_shows_the_caller(api):
    fill_the_desk(api)
    supervisor = api.as_("authenticated", IT_SUPERVISOR).get(QUEUE)
    assert supervisor.status_code == 200, supervisor.text
    page = supervisor.json()
    assert page["total"] == 2 and (page["limit"], page["offset"]) == (50, 0)
    assert [i["work_item_id"] for i in page["items"]] == ["T-5", "T-4"]     # urgent first, then by age
    assert [i["position"] for i in page["items"]] == [1, 2]

    admin = api.as_("authenticated", ADMIN).get(QUEUE).json()
    assert admin["total"] == 2
    for plain in (DESK_A, TRANSLATOR):
        assert api.as_("authenticated", plain).get(QUEUE).json() == {"total": 0, "limit": 50, "offset": 0, "items": []}


def test_queue_filters_and_pagination(api):
    fill_the_desk(api)
    supervisor = api.as_("authenticated", IT_SUPERVISOR)
    assert [i["work_item_id"] for i in supervisor.get(QUEUE, params={"priority": "normal"}).json()["items"]] == ["T-4"]
    assert supervisor.get(QUEUE, params={"unit_id": "unit-it-support"}).json()["total"] == 2
    assert supervisor.get(QUEUE, params={"unit_id": "unit-translation"}).json()["total"] == 0
    assert supervisor.get(QUEUE, params={"priority": "whenever"}).json()["total"] == 0   # a filter matching nothing
    second = supervisor.get(QUEUE, params={"limit": 1, "offset": 1}).json()
    assert second["total"] == 2 and [i["work_item_id"] for i in second["items"]] == ["T-4"]
    assert second["items"][0]["position"] == 2
    for params, field in (({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": 501}, "limit"),
                          ({"offset": -1}, "offset"), ({"offset": "x"}, "offset")):
        assert_error(supervisor.get(QUEUE, params=params), 400, field, "invalid_input")


def test_queue_pages_without_a_priority_filter_are_the_views_rows(api, installed):
    """Without a priority filter the endpoint reads queue_head (each priority's first items)
    instead of the view, which numbers every queued row: same items, order, positions, total."""
    with psycopg.connect(installed, autocommit=True) as conn:
        for n in range(30):
            unit = ("unit-it-support", "unit-translation")[n % 2]
            priority = ("low", "normal", "high", "urgent")[n % 4]
            hours = 2 + 4 * (n % 5)                        # mid-way between aging steps (4 h)
            conn.execute("INSERT INTO assignment_queue (work_item_id, work_item_type, priority, target_unit_id, "
                         "created_at, arrived_at) VALUES (%s, 'ticket', %s, %s, now() - make_interval(hours => %s) "
                         "- make_interval(secs => %s), now())", (f"Q-{n}", priority, unit, hours, n))

        def view_page(unit_id, limit, offset, visible_units):
            rows = conn.execute(
                """SELECT to_jsonb(q) FROM assignment_queue_ordered q
                   WHERE (%(unit)s::text IS NULL OR q.target_unit_id = %(unit)s)
                     AND q.target_unit_id = ANY (%(visible)s)
                   ORDER BY q.effective_rank DESC, q.created_at, q.seq LIMIT %(limit)s OFFSET %(offset)s""",
                {"unit": unit_id, "visible": visible_units, "limit": limit, "offset": offset}).fetchall()
            total = conn.execute("SELECT count(*) FROM assignment_queue WHERE (%(unit)s::text IS NULL OR "
                                 "target_unit_id = %(unit)s) AND target_unit_id = ANY (%(visible)s)",
                                 {"unit": unit_id, "visible": visible_units}).fetchone()[0]
            return {"total": total, "limit": limit, "offset": offset, "items": [r[0] for r in rows]}

        both = ["unit-it-support", "unit-translation"]
        for caller, visible in ((ADMIN, both), (IT_SUPERVISOR, ["unit-it-support"])):
            client = api.as_("authenticated", caller)
            for unit_id, limit, offset in ((None, 50, 0), (None, 7, 5), ("unit-translation", 3, 2),
                                           ("unit-it-support", 500, 0), (None, 4, 40)):
                params = {"limit": limit, "offset": offset, **({"unit_id": unit_id} if unit_id else {})}
                response = client.get(QUEUE, params=params)
                assert response.status_code == 200, response.text
                assert response.json() == view_page(unit_id, limit, offset, visible), (caller, params)
        whole = api.as_("authenticated", ADMIN).get(QUEUE).json()["items"]
        assert len(whole) == 30 and sorted(i["position"] for i in whole) == sorted(list(range(1, 16)) * 2)


# --------------------------------------------------------------------------- my assignments

def test_my_assignments_shows_each_person_only_their_own(api):
    results = fill_the_desk(api)
    for person in (DESK_A, DESK_B):
        mine = api.as_("authenticated", person).get(MINE)
        assert mine.status_code == 200, mine.text
        expected = {r["assignment_id"] for r in results.values() if r.get("assignee_id") == person}
        assert mine.json()["staff_id"] == person
        assert {a["assignment_id"] for a in mine.json()["assignments"]} == expected and len(expected) == 2
        assert all(a["sla_status"] == "on_track" for a in mine.json()["assignments"])
    assert api.as_("authenticated", IT_SUPERVISOR).get(MINE).json()["assignments"] == []
    # a token without a subject has no "my" assignments
    assert_error(api.as_("service_role").get(MINE), 403, error="forbidden")


# -------------------------------------------------------------------------------- complete

def test_complete_frees_capacity_for_the_queue(api):
    results = fill_the_desk(api)
    item = next(r for r in results.values() if r["status"] == "assigned" and r["assignee_id"] == DESK_A)
    body = {"assignment_id": item["assignment_id"]}

    assert_error(api.as_("authenticated", DESK_B).post(COMPLETE, json=body), 403, error="forbidden")
    done = api.as_("authenticated", DESK_A).post(COMPLETE, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    # the freed slot took the best queued item (the urgent ticket needs 2 slots: the normal one fits)
    mine = api.as_("authenticated", DESK_A).get(MINE).json()["assignments"]
    assert "T-4" in {a["work_item_id"] for a in mine}

    again = assert_error(api.as_("authenticated", DESK_A).post(COMPLETE, json=body), 400, "assignment_id")
    assert "already completed" in again["message"]
    assert_error(api.as_("authenticated", DESK_A).post(COMPLETE, json={"assignment_id": STRANGER}), 404,
                 "assignment_id", "not_found")
    assert_error(api.as_("authenticated", DESK_A).post(COMPLETE, json={"assignment_id": "nope"}), 400, "assignment_id")
    assert_error(api.as_("authenticated", DESK_A).post(COMPLETE, json={}), 400, "assignment_id")


# -------------------------------------------------------------------------------- capacity

def test_capacity_check(api):
    fill_the_desk(api)
    response = api.as_("authenticated", DESK_A).get(CAPACITY, params={"unit_id": "unit-it-support"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["unit_id"], body["capacity"], body["assigned"], body["free_slots"], body["queue_depth"]) == \
        ("unit-it-support", 4, 4, 0, 2)
    assert_error(api.as_("authenticated", DESK_A).get(CAPACITY, params={"unit_id": "unit-nope"}), 404, "unit_id",
                 "not_found")
    assert_error(api.as_("authenticated", DESK_A).get(CAPACITY), 400, "unit_id", "invalid_input")


# ---------------------------------------------------------------------------- availability

def test_staff_availability(api):
    fill_the_desk(api)
    me = api.as_("authenticated", DESK_A)
    response = me.post(AVAILABILITY, json={"staff_id": DESK_A, "status": "on_leave", "reason": "holiday",
                                           "until": "2030-01-01T00:00:00Z"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "on_leave" and response.json()["previous_status"] == "available"
    # normal tickets are flagged for review, not moved (rules/leave.yaml)
    assert response.json()["flagged_for_review"] == 2

    assert_error(me.post(AVAILABILITY, json={"staff_id": DESK_B, "status": "on_leave"}), 403, error="forbidden")
    back = api.as_("authenticated", IT_SUPERVISOR).post(AVAILABILITY, json={"staff_id": DESK_A, "status": "available"})
    assert back.status_code == 200 and back.json()["previous_status"] == "on_leave"

    assert_error(me.post(AVAILABILITY, json={"staff_id": STRANGER, "status": "available"}), 404, "staff_id",
                 "not_found")
    assert_error(me.post(AVAILABILITY, json={"staff_id": DESK_A, "status": "asleep"}), 400, "status")
    assert_error(me.post(AVAILABILITY, json={"staff_id": DESK_A, "status": "available", "until": "soon"}), 400, "until")
    assert_error(me.post(AVAILABILITY, json={"status": "available"}), 400, "staff_id")


# ------------------------------------------------------------------------- the document, logs

def test_openapi_lists_every_endpoint(api):
    document = api.client.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    expected = {
        ("post", AUTO_ASSIGN), ("post", OVERRIDE), ("get", QUEUE), ("get", MINE),
        ("post", f"{V1}/assignments/escalate"), ("post", COMPLETE), ("get", CAPACITY), ("post", AVAILABILITY),
        ("get", f"{V1}/health/assignment-engine"), ("get", f"{V1}/assignments/events"),
        ("post", f"{V1}/staff/profile"), ("post", f"{V1}/assignments/respond"), ("post", f"{V1}/assignments/review"),
    }
    assert {(method, path) for path, item in paths.items() for method in item} == expected
    for path, item in paths.items():
        for method, operation in item.items():
            assert "401" in operation["responses"], (method, path)
            optional = [{}] if path == f"{V1}/health/assignment-engine" else []       # a probe needs no token
            assert operation.get("security") == [{"HTTPBearer": []}, {"APIKeyHeader": []}, *optional], (method, path)
            if method == "post":
                assert operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(paths[AUTO_ASSIGN]["post"]["responses"]) >= {"200", "202", "400", "401", "403"}
    assert set(paths[f"{V1}/health/assignment-engine"]["get"]["responses"]) >= {"200", "503"}


def test_unknown_paths_and_methods_answer_in_json(api):
    assert_error(api.client.get(f"{V1}/nothing-here"), 404, error="not_found")
    assert_error(api.as_("service_role").get(AUTO_ASSIGN), 405, error="method_not_allowed")


def test_one_log_line_per_request(api, caplog):
    with caplog.at_level(logging.INFO, logger="rulesctl.api"):
        api.as_("service_role").post(AUTO_ASSIGN, json=ticket("L-1"))
        api.client.get(MINE)
        # the line is written when the response is done, so it may trail the client's read a little
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                r.getMessage().startswith(f"GET {MINE} 401 ") for r in caplog.records):
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "rulesctl.api"]
    assert any(line.startswith(f"POST {AUTO_ASSIGN} 200 ") and line.endswith("ms") for line in lines), lines
    assert any(line.startswith(f"GET {MINE} 401 ") for line in lines), lines


def test_the_app_refuses_to_start_without_a_secret():
    from engine.api import create_app
    with pytest.raises(ValueError, match="JWT secret"):
        create_app("postgresql://nobody@127.0.0.1:1/none", "")
