"""Who may do what: every SQL API function against every kind of caller, over SQL and HTTP.

One organisation (rules/units.yaml): Translation sits under Dissemination; IT Support and
Operations are elsewhere. The work under test belongs to TR_A in Translation. Each action is
tried by each caller kind; a refusal must be SQLSTATE 42501 (HTTP 403) and write nothing, an
allowed call must succeed. The table below is the security model's contract: a caller kind
not listed for an action is refused.

The permission predicates themselves (caller_*) are checked as a class: for every caller kind
and hostile arguments they return true or false, never NULL (a NULL reads as "not refused" in
`IF NOT ...`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from api_support import bearer, installed_database, running_server
from engine_calls import uid
from psycopg.types.json import Jsonb

from engine.compiler import catalog

pytestmark = pytest.mark.db

TR_A = uid(1001)          # staff, Translation: the assignee
TR_B = uid(1002)          # staff, Translation: a colleague
TR_SUP = uid(1003)        # supervisor, Translation
DISS_HEAD = uid(1004)     # unit head, Dissemination (Translation's parent)
IT_SUP = uid(1005)        # supervisor, IT Support (another branch)
IT_A = uid(1006)          # staff, IT Support
OPS_HEAD = uid(1007)      # unit head, Operations (another branch)
ADMIN = uid(1008)         # admin, the root unit
NOBODY = uid(9999)        # a well-formed subject with no staff profile

# caller kind -> (database role, JWT claims)
CALLERS = {
    "no_sub": ("authenticated", {"role": "authenticated"}),
    "empty_claims": ("authenticated", {}),
    "unknown_sub": ("authenticated", {"role": "authenticated", "sub": NOBODY}),
    "colleague": ("authenticated", {"role": "authenticated", "sub": TR_B}),
    "supervisor_elsewhere": ("authenticated", {"role": "authenticated", "sub": IT_SUP}),
    "unit_head_elsewhere": ("authenticated", {"role": "authenticated", "sub": OPS_HEAD}),
    "anon": ("anon", {"role": "anon"}),
    "anon_with_sub": ("anon", {"role": "anon", "sub": TR_A}),
    # claims it wrote itself cannot make an authenticated session a trusted one
    "forged_service_role": ("authenticated", {"role": "service_role", "sub": NOBODY}),
    "self": ("authenticated", {"role": "authenticated", "sub": TR_A}),
    "supervisor": ("authenticated", {"role": "authenticated", "sub": TR_SUP}),
    "unit_head_above": ("authenticated", {"role": "authenticated", "sub": DISS_HEAD}),
    "admin": ("authenticated", {"role": "authenticated", "sub": ADMIN}),
    "service_role": ("service_role", {"role": "service_role"}),
}
STAFF = {"self", "colleague", "supervisor", "unit_head_above", "supervisor_elsewhere", "unit_head_elsewhere", "admin"}
OVER_TR_A = {"self", "supervisor", "unit_head_above", "admin", "service_role"}
OVER_TRANSLATION = {"supervisor", "unit_head_above", "admin", "service_role"}

# action -> (SQL, parameters from the organisation's ids, caller kinds allowed)
ACTIONS = {
    "complete_assignment": ("SELECT complete_assignment(%s)", lambda o: [o["tr-1"]], OVER_TR_A),
    "escalate_assignment": ("SELECT escalate_assignment(%s)",
                            lambda o: [Jsonb({"assignment_id": o["tr-1"], "reason": "stuck"})], OVER_TR_A),
    "respond_assignment": ("SELECT respond_assignment(%s)",
                           lambda o: [Jsonb({"assignment_id": o["tr-1"], "note": "on it"})], OVER_TR_A),
    "set_staff_availability": ("SELECT set_staff_availability(%s)",
                               lambda o: [Jsonb({"staff_id": TR_A, "status": "on_leave"})], OVER_TR_A),
    "manual_override": ("SELECT manual_override(%s)",
                        lambda o: [Jsonb({"assignment_id": o["tr-1"], "assignee_id": TR_B, "reason": "cover",
                                          "allow_exceed_wip": True})], OVER_TRANSLATION),
    "manual_override_queued": ("SELECT manual_override(%s)",
                               lambda o: [Jsonb({"work_item_id": "tr-3", "assignee_id": TR_B, "reason": "cover",
                                                 "allow_exceed_wip": True})], OVER_TRANSLATION),
    # into a unit the Translation supervisor does not lead: only admins and services
    "manual_override_across_units": ("SELECT manual_override(%s)",
                                     lambda o: [Jsonb({"assignment_id": o["tr-1"], "assignee_id": IT_A,
                                                       "reason": "cover", "allow_exceed_wip": True})],
                                     {"admin", "service_role"}),
    "capacity_check": ("SELECT capacity_check(%s)", lambda o: ["unit-translation"],
                       OVER_TRANSLATION | {"self", "colleague"}),
    "upsert_staff_profile": ("SELECT upsert_staff_profile(%s)",
                             lambda o: [Jsonb({"id": TR_A, "unit_id": "unit-translation", "full_name": "A",
                                               "role": "admin"})], {"admin", "service_role"}),
    "auto_assign": ("SELECT auto_assign(%s)",
                    lambda o: [Jsonb({"work_item_id": "new-1", "work_item_type": "translation_request",
                                      "priority": "low"})], STAFF | {"service_role"}),
    "my_assignments": ("SELECT my_assignments()", lambda o: [], STAFF),
    "auto_assign_many": ("SELECT auto_assign_many(%s::jsonb[])",
                         lambda o: [[Jsonb({"work_item_id": f"new-{n}", "work_item_type": "translation_request",
                                            "priority": "low"}) for n in (1, 2)]], STAFF | {"service_role"}),
    # TR_A's two: whoever may complete one of them may complete both
    "complete_assignments_many": ("SELECT complete_assignments_many(%s::jsonb[])",
                                  lambda o: [[Jsonb({"assignment_id": o[item]}) for item in ("tr-1", "tr-2")]],
                                  OVER_TR_A),
    "review_assignment": ("SELECT review_assignment(%s)",
                          lambda o: [Jsonb({"assignment_id": o["tr-2"], "action": "keep", "note": "fine"})],
                          OVER_TRANSLATION),
    "review_assignment_reassign": ("SELECT review_assignment(%s)",
                                   lambda o: [Jsonb({"assignment_id": o["tr-2"], "action": "reassign", "note": "move",
                                                     "assignee_id": TR_B, "allow_exceed_wip": True})],
                                   OVER_TRANSLATION),
}


@contextmanager
def as_caller(conn, kind: str):
    """One request as PostgREST runs it, rolled back after so every cell starts from the same state."""
    role, claims = CALLERS[kind]
    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL ROLE {role}")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        yield


def trusted(conn, function: str, payload):
    return conn.execute(f"SELECT {function}(%s)", [Jsonb(payload)]).fetchone()[0]


@pytest.fixture(scope="module")
def organisation(pg_cluster, shipped_objects):
    """A database with the organisation and its work, and the ids the actions need."""
    with installed_database(pg_cluster, shipped_objects) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for person, unit, role, wip in (
                    (TR_A, "unit-translation", "staff", 2), (TR_B, "unit-translation", "staff", 0),
                    (TR_SUP, "unit-translation", "supervisor", 0), (DISS_HEAD, "unit-dissemination", "unit_head", 0),
                    (IT_SUP, "unit-it-support", "supervisor", 0), (IT_A, "unit-it-support", "staff", 0),
                    (OPS_HEAD, "unit-operations", "unit_head", 0), (ADMIN, "unit-gastat", "admin", 0)):
                trusted(conn, "upsert_staff_profile", {"id": person, "unit_id": unit, "full_name": role,
                                                       "role": role, "wip_limit": wip})
            ids = {}
            for item in ("tr-1", "tr-2", "tr-3"):
                result = trusted(conn, "auto_assign", {"work_item_id": item, "work_item_type": "translation_request",
                                                       "priority": "normal", "target_unit_id": "unit-translation"})
                ids[item] = result.get("assignment_id")
            assert ids["tr-1"] and ids["tr-2"] and ids["tr-3"] is None       # TR_A is full: tr-3 waits
            # tr-2 as the leave policy leaves an item it flags (without TR_A's leave, which the
            # other actions would feel): for review_assignment
            conn.execute("UPDATE assignments SET needs_review = true, review_reason = 'assignee on leave: test'"
                         " WHERE id = %s", [ids["tr-2"]])
        yield url, ids


@pytest.fixture
def conn(organisation):
    url, _ = organisation
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


RUNTIME_TABLES = ("assignments", "assignment_queue", "staff_profiles", "staff_skills", "escalation_events",
                  "assignment_audit", "engine_events")


def snapshot(conn, tables=RUNTIME_TABLES) -> list:
    """Every runtime row, to show a refused call wrote nothing."""
    return [conn.execute(f"SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]') FROM {t} t"
                         ).fetchone()[0]
            for t in tables]


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_caller_kind_is_refused_or_allowed_as_the_model_says(conn, organisation, action):
    statement, params, allowed = ACTIONS[action]
    ids = organisation[1]
    before = snapshot(conn)
    outcomes = {}
    for kind in CALLERS:
        try:
            with as_caller(conn, kind):
                conn.execute(statement, params(ids)).fetchone()
            outcomes[kind] = "allowed"
        except psycopg.errors.InsufficientPrivilege:
            outcomes[kind] = "refused"
        except psycopg.Error as exc:
            outcomes[kind] = f"error {exc.sqlstate}: {exc.diag.message_primary}"
    expected = {kind: "allowed" if kind in allowed else "refused" for kind in CALLERS}
    assert outcomes == expected
    assert snapshot(conn) == before


@pytest.mark.parametrize(("function", "payload", "refusal"), [
    ("respond_assignment", {"note": "on it"},
     "respond_assignment: only the assignee, their supervisors or a trusted service may respond to it"),
    ("escalate_assignment", {"reason": "stuck"},
     "escalate_assignment: only the assignee, their supervisors or a trusted service may escalate it"),
])
def test_acting_on_one_assignment_refuses_and_rejects_in_the_functions_own_words(conn, organisation, function,
                                                                                 payload, refusal):
    """respond and escalate find and check the assignment through one internal function
    (api_assignment); each still refuses in its own name and words and rejects an unknown id as
    bad input naming assignment_id, writing nothing."""
    ids = organisation[1]
    before = snapshot(conn)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        with as_caller(conn, "colleague"):
            conn.execute(f"SELECT {function}(%s)", [Jsonb({"assignment_id": ids["tr-1"], **payload})])
    assert refused.value.diag.message_primary == refusal
    unknown = uid(4242)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as rejected:
        with as_caller(conn, "service_role"):
            conn.execute(f"SELECT {function}(%s)", [Jsonb({"assignment_id": unknown, **payload})])
    assert rejected.value.diag.message_primary == f"assignment_id: unknown assignment {unknown}"
    assert rejected.value.diag.column_name == "assignment_id"
    assert snapshot(conn) == before


def test_my_assignments_lists_only_the_callers_own_work(conn, organisation):
    ids = organisation[1]
    for kind, own in (("self", {ids["tr-1"], ids["tr-2"]}), ("colleague", set()), ("supervisor", set())):
        with as_caller(conn, kind):
            result = conn.execute("SELECT my_assignments()").fetchone()[0]
        assert {a["assignment_id"] for a in result["assignments"]} == own, kind


def test_a_supervisor_overrides_within_their_subtree_only(conn, organisation):
    """The unit head of Dissemination moves Translation's work inside Translation, but not to
    IT Support; the item stays where it was after the refusal."""
    ids = organisation[1]
    with as_caller(conn, "unit_head_above"):
        moved = conn.execute("SELECT manual_override(%s)", [Jsonb({
            "assignment_id": ids["tr-2"], "assignee_id": TR_B, "reason": "cover", "allow_exceed_wip": True})]
        ).fetchone()[0]
        assert moved["assignee_id"] == TR_B
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="units they supervise"):
        with as_caller(conn, "supervisor"):
            conn.execute("SELECT manual_override(%s)", [Jsonb({
                "assignment_id": ids["tr-2"], "assignee_id": IT_A, "reason": "x", "allow_exceed_wip": True})])
    assert conn.execute("SELECT assignee_id::text FROM assignments WHERE id = %s", [ids["tr-2"]]).fetchone()[0] == TR_A


# ------------------------------------------------------------------------------------ predicates

def predicates(conn) -> list[tuple[str, str]]:
    """Every permission predicate installed: caller_* functions returning boolean."""
    return conn.execute(
        "SELECT p.proname, oidvectortypes(p.proargtypes) FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'caller\\_%%'"
        " AND p.prorettype = 'boolean'::regtype ORDER BY 1").fetchall()


HOSTILE_ARGUMENTS = {"uuid": [None, NOBODY, TR_A, IT_A], "text": [None, "", "unit-nope", "unit-translation",
                                                                   "unit-it-support"], "": [None]}


def test_every_permission_predicate_is_true_or_false_never_null(conn):
    found = predicates(conn)
    assert {name for name, _ in found} >= {"caller_is_trusted", "caller_may_act_for", "caller_may_supervise",
                                           "caller_supervises_unit", "caller_may_read_unit", "caller_is_known",
                                           "caller_is_admin"}
    nulls = []
    with conn.transaction(force_rollback=True):
        # The predicates run inside SECURITY DEFINER API functions: call them the same way.
        conn.execute("CREATE FUNCTION public.permission_probe(p_call text, p_argument text) RETURNS boolean"
                     " LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $probe$"
                     " DECLARE v boolean; BEGIN EXECUTE p_call INTO v USING p_argument; RETURN v; END $probe$")
        conn.execute("GRANT EXECUTE ON FUNCTION public.permission_probe(text, text)"
                     " TO anon, authenticated, service_role")
        for name, args in found:
            call = f"SELECT public.{name}()" if args == "" else f"SELECT public.{name}($1::{args})"
            for argument in HOSTILE_ARGUMENTS[args]:
                for kind, (role, claims) in CALLERS.items():
                    conn.execute("SAVEPOINT probe")
                    conn.execute(f"SET LOCAL ROLE {role}")
                    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
                    value = conn.execute("SELECT public.permission_probe(%s, %s)", [call, argument]).fetchone()[0]
                    conn.execute("ROLLBACK TO SAVEPOINT probe")
                    if value is None:
                        nulls.append((name, argument, kind))
    assert nulls == []


def test_internal_functions_are_not_callable_by_the_api_roles(conn):
    """Everything but the API is revoked from PUBLIC: anon may execute nothing, authenticated
    only catalog.API_FUNCTIONS."""
    rows = conn.execute(
        "SELECT p.proname, has_function_privilege('anon', p.oid, 'EXECUTE'),"
        " has_function_privilege('authenticated', p.oid, 'EXECUTE') FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace").fetchall()
    assert len(rows) > 60
    assert [name for name, anon, _ in rows if anon] == []
    assert sorted(name for name, _, auth in rows if auth) == sorted(catalog.API_FUNCTIONS)
    for statement in ("SELECT sla_check_and_escalate(10)", "SELECT lock_units(ARRAY['unit-hr'], true)",
                      f"SELECT process_queue_on_capacity_change({TR_A!r}::uuid)",
                      "SELECT caller_is_trusted()", f"SELECT api_assignment({TR_A!r}::uuid, 'f', 'act')"):
        for kind in ("anon", "self"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with as_caller(conn, kind):
                    conn.execute(statement)


def test_runtime_tables_the_api_roles_read_have_row_level_security():
    """Policy tables (seeded from rules/) are readable by every signed-in caller; every other
    table the API roles may read holds people's or units' data and must filter by row."""
    unguarded = [t.name for t in catalog.TABLES if t.readable and not t.seeded and t.name not in catalog.RLS_TABLES]
    assert unguarded == []


def test_staff_see_only_the_skills_of_people_they_may_see(conn):
    trusted(conn, "upsert_staff_profile", {"id": IT_A, "unit_id": "unit-it-support", "full_name": "IT",
                                           "skills": ["skill-sql"], "wip_limit": 0})
    trusted(conn, "upsert_staff_profile", {"id": TR_A, "unit_id": "unit-translation", "full_name": "staff",
                                           "skills": ["skill-arabic"], "wip_limit": 2})
    seen = {}
    for kind in ("self", "colleague", "supervisor", "supervisor_elsewhere", "no_sub", "anon", "admin"):
        with as_caller(conn, kind):
            seen[kind] = {r[0] for r in conn.execute("SELECT staff_id::text FROM staff_skills")}
    assert seen == {"self": {TR_A}, "colleague": set(), "supervisor": {TR_A}, "supervisor_elsewhere": {IT_A},
                    "no_sub": set(), "anon": set(), "admin": {TR_A, IT_A}}


def test_capacity_snapshots_are_seen_by_those_who_supervise_the_unit(conn):
    conn.execute("SELECT capture_capacity_snapshot()")
    seen = {}
    for kind in ("self", "supervisor", "unit_head_above", "supervisor_elsewhere", "no_sub", "admin"):
        with as_caller(conn, kind):
            seen[kind] = {r[0] for r in conn.execute("SELECT unit_id FROM capacity_snapshots")}
    assert seen["self"] == seen["no_sub"] == set()
    assert seen["supervisor"] == {"unit-translation"}
    assert seen["unit_head_above"] == {"unit-dissemination", "unit-translation", "unit-data-requests"}
    assert seen["supervisor_elsewhere"] == {"unit-it-support"}
    assert len(seen["admin"]) == 11


def test_audit_rows_follow_the_assignments_a_caller_may_see(conn, organisation):
    """assignment_audit is granted to anon and authenticated: its row level security shows a
    row only to those who may see the assignment."""
    ids = organisation[1]
    with conn.transaction(force_rollback=True):
        trusted(conn, "manual_override", {"assignment_id": ids["tr-1"], "assignee_id": TR_B, "reason": "audit",
                                          "allow_exceed_wip": True})
        seen = {}
        for kind in ("self", "colleague", "supervisor", "supervisor_elsewhere", "no_sub", "anon", "admin"):
            conn.execute("SAVEPOINT s")
            conn.execute(f"SET LOCAL ROLE {CALLERS[kind][0]}")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(CALLERS[kind][1])])
            seen[kind] = conn.execute("SELECT count(*) FROM assignment_audit").fetchone()[0]
            conn.execute("ROLLBACK TO SAVEPOINT s")
    # the colleague now holds the item: they see its history; TR_A no longer does
    assert seen == {"self": 0, "colleague": 1, "supervisor": 1, "supervisor_elsewhere": 0, "no_sub": 0, "anon": 0,
                    "admin": 1}


# ------------------------------------------------------------------------------------------ HTTP

V1 = "/functions/v1"
HTTP_ACTIONS = {
    "complete_assignment": ("post", f"{V1}/assignments/complete", lambda o: {"assignment_id": o["tr-1"]}),
    "escalate_assignment": ("post", f"{V1}/assignments/escalate",
                            lambda o: {"assignment_id": o["tr-1"], "reason": "stuck"}),
    "respond_assignment": ("post", f"{V1}/assignments/respond", lambda o: {"assignment_id": o["tr-1"]}),
    "set_staff_availability": ("post", f"{V1}/staff/availability",
                               lambda o: {"staff_id": TR_A, "status": "on_leave"}),
    "manual_override": ("post", f"{V1}/assignments/manual-override",
                        lambda o: {"assignment_id": o["tr-1"], "assignee_id": TR_B, "reason": "cover",
                                   "allow_exceed_wip": True}),
    "capacity_check": ("get", f"{V1}/capacity/check", lambda o: {"unit_id": "unit-translation"}),
    "auto_assign": ("post", f"{V1}/assignments/auto-assign",
                    lambda o: {"work_item_id": "new-http", "work_item_type": "translation_request",
                               "priority": "low"}),
    "my_assignments": ("get", f"{V1}/assignments/my-assignments", lambda o: None),
    "upsert_staff_profile": ("post", f"{V1}/staff-profile",
                             lambda o: {"id": TR_A, "unit_id": "unit-translation", "full_name": "A", "role": "admin"}),
    "review_assignment": ("post", f"{V1}/assignments/review",
                          lambda o: {"assignment_id": o["tr-2"], "action": "keep", "note": "fine"}),
}
HTTP_CALLERS = {"no_sub": ("authenticated", None), "unknown_sub": ("authenticated", NOBODY),
                "colleague": ("authenticated", TR_B), "supervisor_elsewhere": ("authenticated", IT_SUP),
                "unit_head_elsewhere": ("authenticated", OPS_HEAD), "anon": ("anon", None)}


def test_over_http_the_refused_callers_get_403_and_nothing_changes(conn, organisation):
    url, ids = organisation
    watched = [t for t in RUNTIME_TABLES if t != "engine_events"]     # the server's relay drains that one
    before = snapshot(conn, watched)
    outcomes, expected = {}, {}
    with running_server(url) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        for action, (method, path, body) in HTTP_ACTIONS.items():
            for kind, (role, sub) in HTTP_CALLERS.items():
                if kind in ACTIONS[action][2]:
                    continue                 # allowed calls write; the SQL table covers them
                payload = body(ids)
                headers = bearer(role, sub)
                if method == "get":
                    response = client.get(path, params=payload, headers=headers)
                else:
                    response = client.post(path, json=payload, headers=headers)
                outcomes[action, kind] = response.status_code
                expected[action, kind] = 403
    assert outcomes == expected
    assert snapshot(conn, watched) == before
