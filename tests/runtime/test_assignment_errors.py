"""Bad input to the assignment runtime: a clear error naming the field (SQLSTATE 22023 with the
field in the error's COLUMN and at the start of the message) or a permission error (42501),
and nothing written - the engine's tables hold exactly the rows they held before."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import call, uid

pytestmark = pytest.mark.db

T0 = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=3)))
TABLES = ("assignments", "assignment_queue", "staff_profiles", "staff_skills", "assignment_audit",
          "escalation_events")


SUPERVISOR, DESK_A, DESK_B, DESK_C, TR_A = uid(19), uid(11), uid(12), uid(13), uid(21)
STRANGER = uid(999)                       # a well-formed uuid nobody has
UNKNOWN_ASSIGNMENT = "00000000-0000-4000-8000-00000000dead"


@pytest.fixture
def world(conn):
    """A small desk with work on it, a queued item and a completed one: something to damage."""
    conn.execute("SELECT set_config('rulesctl.now', %s, false)", [T0.isoformat()])
    call(conn, "upsert_staff_profile", {"id": SUPERVISOR, "unit_id": "unit-it-support", "full_name": "Supervisor",
                                        "role": "supervisor", "wip_limit": 0})
    call(conn, "upsert_staff_profile", {"id": DESK_A, "unit_id": "unit-it-support", "full_name": "Desk A",
                                        "skills": {"skill-network": "expert"}, "wip_limit": 3})
    call(conn, "upsert_staff_profile", {"id": DESK_B, "unit_id": "unit-it-support", "full_name": "Desk B",
                                        "skills": ["skill-desktop-support"], "wip_limit": 1})
    call(conn, "upsert_staff_profile", {"id": TR_A, "unit_id": "unit-translation", "full_name": "Translator",
                                        "availability_status": "on_leave"})
    done = call(conn, "auto_assign", {"work_item_id": "tk-done", "work_item_type": "ticket", "priority": "normal"})
    conn.execute("SELECT complete_assignment(%s)", [done["assignment_id"]])
    active = call(conn, "auto_assign", {"work_item_id": "tk-1", "work_item_type": "ticket", "priority": "urgent"})
    assert active["assignee_id"] == DESK_A
    filler = call(conn, "auto_assign", {"work_item_id": "tk-2", "work_item_type": "ticket", "priority": "normal"})
    assert filler["assignee_id"] == DESK_B                    # DESK_B is now at their limit
    queued = call(conn, "auto_assign", {"work_item_id": "tr-1", "work_item_type": "translation_request",
                                        "priority": "normal"})
    assert queued["status"] == "queued"
    # Audit rows and an escalation event, so a stray write to those tables would show.
    call(conn, "manual_override", {"work_item_id": "tk-1", "assignee_id": DESK_B, "reason": "cover",
                                   "allow_exceed_wip": True})
    call(conn, "manual_override", {"work_item_id": "tk-1", "assignee_id": DESK_A, "reason": "back again"})
    call(conn, "upsert_staff_profile", {"id": DESK_C, "unit_id": "unit-it-support", "full_name": "Desk C"})
    low = call(conn, "auto_assign", {"work_item_id": "tk-3", "work_item_type": "ticket", "priority": "low"})
    assert low["assignee_id"] == DESK_C
    flagged = call(conn, "set_staff_availability", {"staff_id": DESK_C, "status": "on_leave", "reason": "course"})
    assert flagged["flagged_for_review"] == 1
    return {"done": done["assignment_id"], "active": active["assignment_id"]}


def snapshot(conn) -> dict:
    """Row count and a digest of every row of the engine's tables."""
    return {table: conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                                f" FROM {table} t").fetchone() for table in TABLES}


def rejected(conn, run, sqlstate: str, column: str | None, jwt: dict | None = None):
    """Run a call that must fail; check the error and that nothing was written. Returns the error."""
    before = snapshot(conn)
    assert all(count > 0 for count, _ in before.values()), before           # the world is not empty
    with pytest.raises(psycopg.Error) as caught:
        if jwt is None:
            run(conn)
        else:
            with conn.transaction():
                conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(jwt)])
                run(conn)
    error = caught.value
    assert error.sqlstate == sqlstate, f"{error.sqlstate}: {error}"
    if column is not None:
        assert error.diag.column_name == column
        assert error.diag.message_primary.startswith(f"{column}: ")
    assert snapshot(conn) == before
    return error


def api(function, payload):
    return lambda conn: call(conn, function, payload)


def assign_req(**fields):
    return api("auto_assign", {"work_item_id": "tk-new", "work_item_type": "ticket", "priority": "normal"} | fields)


def availability(**fields):
    return api("set_staff_availability", {"staff_id": DESK_A, "status": "busy"} | fields)


def override(**fields):
    payload = {"work_item_id": "tk-1", "assignee_id": DESK_B, "reason": "rebalance", "allow_exceed_wip": True}
    return api("manual_override", {k: v for k, v in (payload | fields).items() if v is not None})


def profile(**fields):
    # DESK_A exists: a half-applied update would show in the snapshot.
    return api("upsert_staff_profile", {"id": DESK_A, "unit_id": "unit-it-support", "full_name": "Desk A renamed",
                                        "wip_limit": 5} | fields)


def drop(function, payload, field):
    return api(function, {k: v for k, v in payload.items() if k != field})


CASES = [
    # auto_assign
    ("assign: unknown work item type", assign_req(work_item_type="parcel"), "work_item_type"),
    ("assign: unknown priority", assign_req(priority="critical"), "priority"),
    ("assign: unknown skill", assign_req(required_skills=["skill-network", "skill-klingon"]), "required_skills"),
    ("assign: required_skills not an array", assign_req(required_skills="skill-network"), "required_skills"),
    ("assign: required_skills not strings", assign_req(required_skills=[1, 2]), "required_skills"),
    ("assign: unknown target unit", assign_req(target_unit_id="unit-nowhere"), "target_unit_id"),
    ("assign: missing work_item_id",
     drop("auto_assign", {"work_item_id": "x", "work_item_type": "ticket", "priority": "normal"}, "work_item_id"),
     "work_item_id"),
    ("assign: empty work_item_id", assign_req(work_item_id="  "), "work_item_id"),
    ("assign: numeric work_item_id", assign_req(work_item_id=42), "work_item_id"),
    ("assign: missing priority",
     drop("auto_assign", {"work_item_id": "x", "work_item_type": "ticket", "priority": "normal"}, "priority"),
     "priority"),
    ("assign: request is an array", api("auto_assign", ["tk-new", "ticket", "normal"]), "request"),
    ("assign: request is a string", api("auto_assign", "tk-new"), "request"),
    ("assign: request is SQL NULL", lambda conn: conn.execute("SELECT auto_assign(NULL)"), "request"),
    # set_staff_availability
    ("availability: unknown staff id", availability(staff_id=STRANGER), "staff_id"),
    ("availability: bad uuid", availability(staff_id="not-a-uuid"), "staff_id"),
    ("availability: missing staff id",
     drop("set_staff_availability", {"staff_id": DESK_A, "status": "busy"}, "staff_id"), "staff_id"),
    ("availability: unknown status", availability(status="vacation"), "status"),
    ("availability: unknown status on_leave typo", availability(status="on-leave"), "status"),
    ("availability: bad until", availability(status="on_leave", until="next tuesday"), "until"),
    ("availability: request not an object", api("set_staff_availability", [DESK_A, "busy"]), "request"),
    # complete_assignment
    ("complete: already completed", lambda c: c.execute("SELECT complete_assignment(%s)", [c.done]), "assignment_id"),
    ("complete: unknown assignment",
     lambda c: c.execute("SELECT complete_assignment(%s)", [UNKNOWN_ASSIGNMENT]), "assignment_id"),
    ("complete: NULL", lambda c: c.execute("SELECT complete_assignment(NULL)"), "assignment_id"),
    # manual_override (trusted caller: the field checks themselves)
    ("override: without reason", drop("manual_override", {"work_item_id": "tk-1", "assignee_id": DESK_B,
                                                          "reason": "x"}, "reason"), "reason"),
    ("override: empty reason", override(reason=""), "reason"),
    ("override: unknown staff", override(assignee_id=STRANGER), "assignee_id"),
    ("override: bad assignee uuid", override(assignee_id="desk-b"), "assignee_id"),
    ("override: allow_exceed_wip not a boolean", override(allow_exceed_wip="yes"), "allow_exceed_wip"),
    ("override: unknown assignment", override(work_item_id=None, assignment_id=UNKNOWN_ASSIGNMENT), "assignment_id"),
    ("override: neither assignment nor work item", override(work_item_id=None), "assignment_id"),
    ("override: unknown work item", override(work_item_id="tk-nope"), "work_item_id"),
    ("override: completed assignment", lambda c: call(c, "manual_override", {
        "assignment_id": c.done, "assignee_id": DESK_B, "reason": "x", "allow_exceed_wip": True}), "assignment_id"),
    ("override: to the current assignee", override(assignee_id=DESK_A), "assignee_id"),
    ("override: to someone on leave", override(assignee_id=TR_A), "assignee_id"),
    ("override: to someone without room", override(allow_exceed_wip=False), "assignee_id"),
    # upsert_staff_profile
    ("upsert: unknown unit", profile(unit_id="unit-nowhere"), "unit_id"),
    ("upsert: unknown skill", profile(skills=["skill-network", "skill-klingon"]), "skills"),
    ("upsert: unknown skill in object", profile(skills={"skill-klingon": "expert"}), "skills"),
    ("upsert: unknown proficiency level", profile(skills={"skill-network": "guru"}), "skills"),
    ("upsert: skills neither list nor object", profile(skills="skill-network"), "skills"),
    ("upsert: negative wip_limit", profile(wip_limit=-1), "wip_limit"),
    ("upsert: fractional wip_limit", profile(wip_limit=2.5), "wip_limit"),
    ("upsert: wip_limit as text", profile(wip_limit="3"), "wip_limit"),
    ("upsert: unknown role", profile(role="overlord"), "role"),
    ("upsert: unknown availability status", profile(availability_status="asleep"), "availability_status"),
    ("upsert: bad id", profile(id="desk-a"), "id"),
    ("upsert: missing full_name", drop("upsert_staff_profile", {"id": DESK_A, "unit_id": "unit-it-support",
                                                                 "full_name": "x"}, "full_name"), "full_name"),
    # capacity_check
    ("capacity_check: unknown unit", lambda c: c.execute("SELECT capacity_check('unit-nowhere')"), "unit_id"),
    ("capacity_check: NULL", lambda c: c.execute("SELECT capacity_check(NULL)"), "unit_id"),
]


class _Conn:
    """The connection plus the world's ids, so a case can reach them as c.done / c.active."""

    def __init__(self, conn, world):
        self._conn, self.done, self.active = conn, world["done"], world["active"]

    def execute(self, *args, **kwargs):
        return self._conn.execute(*args, **kwargs)


@pytest.mark.parametrize("label, run, column", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_field_and_writes_nothing(conn, world, label, run, column):
    error = rejected(conn, lambda c: run(_Conn(c, world)), "22023", column)
    assert isinstance(error, psycopg.errors.InvalidParameterValue)


def test_override_by_plain_staff_member_is_refused(conn, world):
    request = {"work_item_id": "tk-1", "assignee_id": DESK_B, "reason": "I would rather B did it",
               "allow_exceed_wip": True}
    error = rejected(conn, api("manual_override", request), "42501", None, jwt={"sub": DESK_B, "role": "authenticated"})
    assert isinstance(error, psycopg.errors.InsufficientPrivilege)
    assert "supervisor" in error.diag.message_primary


def test_override_by_unknown_caller_or_anon_is_refused(conn, world):
    request = {"work_item_id": "tk-1", "assignee_id": DESK_B, "reason": "x", "allow_exceed_wip": True}
    rejected(conn, api("manual_override", request), "42501", None, jwt={"sub": STRANGER, "role": "authenticated"})
    rejected(conn, api("manual_override", request), "42501", None, jwt={"role": "anon"})


def test_supervisor_claims_pass_the_permission_check(conn, world):
    """The refusals above are about the caller: the same request by a supervisor goes through."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     [json.dumps({"sub": SUPERVISOR, "role": "authenticated"})])
        result = call(conn, "manual_override", {"work_item_id": "tk-1", "assignee_id": DESK_B, "reason": "x",
                                                "allow_exceed_wip": True})
    assert result["assignee_id"] == DESK_B


def test_my_assignments_without_claims_is_refused(conn, world):
    error = rejected(conn, lambda c: c.execute("SELECT my_assignments()"), "42501", None)
    assert isinstance(error, psycopg.errors.InsufficientPrivilege)
    # Claims without a subject are no identity either.
    rejected(conn, lambda c: c.execute("SELECT my_assignments()"), "42501", None, jwt={"role": "anon"})
