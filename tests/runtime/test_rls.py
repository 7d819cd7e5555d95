"""Row level security on staff_profiles, assignments, escalation_events and assignment_queue,
as Supabase uses it: the API role (anon / authenticated) is set per request and the caller's
identity is the JWT subject in request.jwt.claims.

The organisation (rules/units.yaml): unit-operations holds unit-field-survey,
unit-data-processing and unit-methodology; unit-translation and unit-hr are elsewhere;
unit-gastat is the root. Staff see their own rows, supervisors and unit heads their unit's
subtree, admins everything, anon nothing; writes go through the API functions only.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import call, scalar, uid
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)


FS_A = uid(101)          # staff, Field Survey
DP_A = uid(102)          # staff, Data Processing
TR_A = uid(103)          # staff, Translation (outside Operations)
DP_SUP = uid(201)        # supervisor, Data Processing
OPS_HEAD = uid(301)      # unit head, Statistical Operations (parent of Field Survey and Data Processing)
ADMIN = uid(401)         # admin, the authority
NOBODY = uid(999)        # a valid token for someone with no staff profile
EVERYONE = {FS_A, DP_A, TR_A, DP_SUP, OPS_HEAD, ADMIN}
ITEMS: dict[str, str] = {}   # assignment id -> work item id, filled by the fixture


# ---------------------------------------------------------------------------------------- helpers

@contextmanager
def caller(conn, sub: str | None, role: str = "authenticated"):
    """One request: the API role and the JWT claims, for this transaction only (as PostgREST does)."""
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        claims = {"role": role} if sub is None else {"sub": sub, "role": role}
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        yield


def visible(conn, sub, role="authenticated") -> dict[str, set]:
    """What the caller sees in the four protected tables."""
    with caller(conn, sub, role):
        return {
            "staff_profiles": {r[0] for r in conn.execute("SELECT id::text FROM staff_profiles")},
            "assignments": {r[0] for r in conn.execute("SELECT work_item_id FROM assignments")},
            "assignment_queue": {r[0] for r in conn.execute("SELECT work_item_id FROM assignment_queue")},
            # Read without joining assignments (which RLS filters too): the event rows themselves.
            "escalation_events": {(ITEMS.get(str(r[0]), str(r[0])), r[1]) for r in conn.execute(
                "SELECT assignment_id, level FROM escalation_events")},
            "escalation_events_raw": {r[0] for r in conn.execute("SELECT count(*) FROM escalation_events")},
        }


@pytest.fixture
def conn(engine_url):
    """A trusted server-side connection (the owner, no JWT claims) that set up the organisation."""
    with psycopg.connect(engine_url, autocommit=True) as connection:
        connection.execute("SELECT set_config('rulesctl.now', %s, false)", [T0.isoformat()])

        def person(staff_id, unit_id, role="staff"):
            payload = {"id": staff_id, "unit_id": unit_id, "full_name": f"{role} {staff_id[-3:]}", "role": role}
            if role != "staff":
                payload["wip_limit"] = 0             # managers carry no work of their own here
            call(connection, "upsert_staff_profile", payload)

        person(FS_A, "unit-field-survey")
        person(DP_A, "unit-data-processing")
        person(TR_A, "unit-translation")
        person(DP_SUP, "unit-data-processing", "supervisor")
        person(OPS_HEAD, "unit-operations", "unit_head")
        person(ADMIN, "unit-gastat", "admin")

        def work(item, kind, unit=None):
            payload = {"work_item_id": item, "work_item_type": kind, "priority": "normal"}
            if unit:
                payload["target_unit_id"] = unit
            return call(connection, "auto_assign", payload)

        assigned = {
            "sv-fs": work("sv-fs", "survey_task", "unit-field-survey"),
            "sv-dp": work("sv-dp", "survey_task", "unit-data-processing"),
            "tr-1": work("tr-1", "translation_request"),
        }
        assert {k: v["assignee_id"] for k, v in assigned.items()} == {"sv-fs": FS_A, "sv-dp": DP_A, "tr-1": TR_A}
        assert work("sv-meth", "survey_task", "unit-methodology")["status"] == "queued"   # nobody works there
        assert work("hr-1", "translation_request", "unit-hr")["status"] == "queued"
        for item, times in (("sv-fs", 2), ("sv-dp", 2), ("tr-1", 1)):
            for _ in range(times):
                call(connection, "escalate_assignment", {"assignment_id": assigned[item]["assignment_id"],
                                                         "reason": "RLS test"})
        recipients = dict(((r[0], r[1]), r[2]) for r in connection.execute(
            "SELECT a.work_item_id, e.level, e.recipient_id::text FROM escalation_events e"
            " JOIN assignments a ON a.id = e.assignment_id"))
        # Field Survey has no supervisor: its level-2 escalation went up to Operations' head.
        assert recipients == {("sv-fs", 1): FS_A, ("sv-fs", 2): OPS_HEAD, ("sv-dp", 1): DP_A,
                              ("sv-dp", 2): DP_SUP, ("tr-1", 1): TR_A}
        connection.info_assigned = {k: v["assignment_id"] for k, v in assigned.items()}
        ITEMS.clear()
        ITEMS.update({v: k for k, v in connection.info_assigned.items()})
        yield connection


ALL_EVENTS = {("sv-fs", 1), ("sv-fs", 2), ("sv-dp", 1), ("sv-dp", 2), ("tr-1", 1)}


# ---------------------------------------------------------------------------------------- visibility

def test_staff_see_only_their_own_rows(conn):
    seen = visible(conn, FS_A)
    assert seen["staff_profiles"] == {FS_A}
    assert seen["assignments"] == {"sv-fs"}
    assert seen["assignment_queue"] == set()
    assert seen["escalation_events"] == {("sv-fs", 1), ("sv-fs", 2)}
    seen = visible(conn, TR_A)
    assert seen["staff_profiles"] == {TR_A}
    assert seen["assignments"] == {"tr-1"}
    assert seen["assignment_queue"] == set()
    assert seen["escalation_events"] == {("tr-1", 1)}


def test_supervisor_sees_their_units_subtree(conn):
    seen = visible(conn, DP_SUP)
    assert seen["staff_profiles"] == {DP_A, DP_SUP}
    assert seen["assignments"] == {"sv-dp"}
    assert seen["assignment_queue"] == set()            # the queued items are for other units
    assert seen["escalation_events"] == {("sv-dp", 1), ("sv-dp", 2)}
    assert seen["escalation_events_raw"] == {2}


def test_unit_head_sees_the_whole_subtree(conn):
    seen = visible(conn, OPS_HEAD)
    assert seen["staff_profiles"] == {FS_A, DP_A, DP_SUP, OPS_HEAD}
    assert seen["assignments"] == {"sv-fs", "sv-dp"}
    assert seen["assignment_queue"] == {"sv-meth"}     # Methodology is under Operations; HR is not
    assert seen["escalation_events"] == {("sv-fs", 1), ("sv-fs", 2), ("sv-dp", 1), ("sv-dp", 2)}


def test_admin_sees_everything(conn):
    seen = visible(conn, ADMIN)
    assert seen["staff_profiles"] == EVERYONE
    assert seen["assignments"] == {"sv-fs", "sv-dp", "tr-1"}
    assert seen["assignment_queue"] == {"sv-meth", "hr-1"}
    assert seen["escalation_events"] == ALL_EVENTS
    # The same as the trusted owner connection sees.
    assert {r[0] for r in conn.execute("SELECT id::text FROM staff_profiles")} == EVERYONE


def test_anon_and_strangers_see_nothing(conn):
    empty = {"staff_profiles": set(), "assignments": set(), "assignment_queue": set(),
             "escalation_events": set(), "escalation_events_raw": {0}}
    assert visible(conn, None, "anon") == empty
    assert visible(conn, FS_A, "anon") == empty          # anon with a subject is still anon
    assert visible(conn, NOBODY) == empty                # a token for someone with no profile
    assert visible(conn, None) == empty                  # authenticated without a subject


def test_visibility_follows_staff_data(conn):
    # Promoted to supervisor of Field Survey, FS_A sees the unit (and only it).
    call(conn, "upsert_staff_profile", {"id": FS_A, "unit_id": "unit-field-survey", "full_name": "FS A",
                                        "role": "supervisor"})
    seen = visible(conn, FS_A)
    assert seen["staff_profiles"] == {FS_A}
    assert seen["assignments"] == {"sv-fs"}
    # Moved to Methodology as supervisor: the queued Methodology item becomes visible; the old
    # unit's work stays visible only where FS_A is still the assignee.
    call(conn, "upsert_staff_profile", {"id": FS_A, "unit_id": "unit-methodology", "full_name": "FS A",
                                        "role": "supervisor", "wip_limit": 0})      # takes no work from the queue
    seen = visible(conn, FS_A)
    assert seen["assignment_queue"] == {"sv-meth"}
    assert seen["assignments"] == {"sv-fs"}


def test_recipients_keep_seeing_the_escalations_they_received(conn):
    # sv-fs moves from FS_A to DP_A: FS_A no longer sees the assignment, but still sees the
    # escalation addressed to them; DP_A now sees the assignment and its events.
    call(conn, "manual_override", {"assignment_id": conn.info_assigned["sv-fs"], "assignee_id": DP_A,
                                   "reason": "RLS test"})
    seen = visible(conn, FS_A)
    assert seen["assignments"] == set()
    assert seen["escalation_events"] == {("sv-fs", 1)}
    seen = visible(conn, DP_A)
    assert seen["assignments"] == {"sv-fs", "sv-dp"}
    assert seen["escalation_events"] == {("sv-fs", 1), ("sv-fs", 2), ("sv-dp", 1), ("sv-dp", 2)}
    # Data Processing's supervisor now sees sv-fs too (it belongs to their unit).
    assert visible(conn, DP_SUP)["assignments"] == {"sv-fs", "sv-dp"}


# ---------------------------------------------------------------------------------------- writes

DIRECT_WRITES = [
    "INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id)"
    " VALUES ('x', 'ticket', 'low', '{me}')",
    "UPDATE assignments SET status = 'completed' WHERE assignee_id = '{me}'",
    "DELETE FROM assignments",
    "UPDATE staff_profiles SET wip_limit = 99 WHERE id = '{me}'",
    "INSERT INTO staff_profiles (id, unit_id, full_name) VALUES ('{other}', 'unit-hr', 'x')",
    "INSERT INTO assignment_queue (work_item_id, work_item_type, priority) VALUES ('x', 'ticket', 'low')",
    "DELETE FROM assignment_queue",
    "INSERT INTO escalation_events (assignment_id, reason) SELECT id, 'manual' FROM assignments",
    "UPDATE escalation_events SET resolved_at = now()",
    "DELETE FROM escalation_events",
]


@pytest.mark.parametrize("sub", [FS_A, ADMIN])
def test_authenticated_callers_cannot_write_tables_directly(conn, sub):
    def snapshot():
        return [conn.execute(f"SELECT to_jsonb(t) FROM {t} t ORDER BY to_jsonb(t)::text").fetchall() for t in
                ("assignments", "staff_profiles", "assignment_queue", "escalation_events")]

    before = snapshot()
    for statement in DIRECT_WRITES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with caller(conn, sub):
                conn.execute(statement.format(me=sub, other=uid(555)))
    assert snapshot() == before


def test_anon_cannot_call_the_api(conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with caller(conn, None, "anon"):
            call(conn, "auto_assign", {"work_item_id": "anon-1", "work_item_type": "ticket", "priority": "low"})
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with caller(conn, None, "anon"):
            scalar(conn, "SELECT complete_assignment(%s)", conn.info_assigned["sv-fs"])
    assert scalar(conn, "SELECT count(*) FROM assignments WHERE status = 'completed'") == 0


def test_callers_read_queue_places_of_the_items_they_may_see(conn):
    """queue_position and queue_head run as the caller (row level security decides): they must
    work for an authenticated caller -- every function they call granted too -- and show
    only what that caller may see."""
    queue_ids = dict(conn.execute("SELECT work_item_id, id FROM assignment_queue").fetchall())
    assert set(queue_ids) == {"sv-meth", "hr-1"}
    expected = {OPS_HEAD: {"sv-meth": 1, "hr-1": None}, ADMIN: {"sv-meth": 1, "hr-1": 1},
                TR_A: {"sv-meth": None, "hr-1": None}}
    for sub, places in expected.items():
        with caller(conn, sub):
            got = {item: scalar(conn, "SELECT queue_position(%s)", queue_id) for item, queue_id in queue_ids.items()}
            head = [r[0] for r in conn.execute("SELECT work_item_id FROM queue_head(NULL, 50)")]
        assert got == places, sub
        assert sorted(head) == sorted(item for item, place in places.items() if place is not None), sub
    # A bad argument is the engine's clear error, not "permission denied" for a helper it calls.
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        with caller(conn, ADMIN):
            conn.execute("SELECT * FROM queue_head(NULL, 0)")


def test_callers_read_eligible_staff_with_a_required_proficiency(conn):
    """find_eligible_staff_for_assignment runs as the caller too; with a proficiency above the
    lowest it checks the skills table through staff_has_skills."""
    expert, proficient = uid(104), uid(105)
    for person, level in ((expert, "expert"), (proficient, "proficient")):
        call(conn, "upsert_staff_profile", {"id": person, "unit_id": "unit-translation", "full_name": level,
                                            "role": "staff", "skills": {"skill-legal-translation": level}})
    with caller(conn, ADMIN):
        rows = conn.execute("SELECT staff_id::text FROM find_eligible_staff_for_assignment("
                            "ARRAY['unit-translation'], ARRAY['skill-legal-translation'], 3, 1, 'least_loaded', 5)"
                            ).fetchall()
    assert rows == [(expert,)]


def test_api_functions_run_as_definer_with_a_fixed_search_path(conn):
    rows = conn.execute(
        "SELECT p.proname, p.prosecdef, coalesce(array_to_string(p.proconfig, ','), '') FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY(%s)",
        [["auto_assign", "complete_assignment", "escalate_assignment", "set_staff_availability",
          "upsert_staff_profile", "manual_override", "sla_check_and_escalate", "capture_capacity_snapshot",
          "cleanup_escalation_events", "engine_health"]]).fetchall()
    assert len(rows) == 10
    for name, definer, config in rows:
        assert definer, f"{name} is not SECURITY DEFINER"
        assert "search_path=public, pg_temp" in config or "search_path=public,pg_temp" in config, (name, config)


def test_staff_complete_their_own_work_but_not_someone_elses(conn):
    ids = conn.info_assigned
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with caller(conn, FS_A):
            scalar(conn, "SELECT complete_assignment(%s)", ids["sv-dp"])
    assert scalar(conn, "SELECT status::text FROM assignments WHERE id = %s", ids["sv-dp"]) == "assigned"

    with caller(conn, FS_A):
        result = scalar(conn, "SELECT complete_assignment(%s)", ids["sv-fs"])
    assert result["status"] == "completed"
    assert scalar(conn, "SELECT status::text FROM assignments WHERE id = %s", ids["sv-fs"]) == "completed"
    # Completing resolved the assignment's escalations.
    assert scalar(conn, "SELECT count(*) FROM escalation_events WHERE assignment_id = %s AND resolved_at IS NULL",
                  ids["sv-fs"]) == 0

    # A supervisor may complete work in their unit; a supervisor of another unit may not.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with caller(conn, DP_SUP):
            scalar(conn, "SELECT complete_assignment(%s)", ids["tr-1"])
    with caller(conn, DP_SUP):
        assert scalar(conn, "SELECT complete_assignment(%s)", ids["sv-dp"])["status"] == "completed"
    assert scalar(conn, "SELECT status::text FROM assignments WHERE id = %s", ids["tr-1"]) == "assigned"
