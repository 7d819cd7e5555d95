"""Day-to-day operations of the runtime, against a real PostgreSQL: the no-capacity escalation
stored once with its recipient, leave that ends by itself (the leave-return job), reviewing
items the leave policy flagged, complete_assignment naming the queued item that took the
freed slot, and decision records that name people and units.

From rules/: translation requests go to unit-translation (Translation), whose parent is
unit-dissemination; normal and low work of someone going on leave is flagged for review,
urgent and high work is reassigned. Time moves with the engine clock (rulesctl.now).
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from api_support import event_stream, running_server
from engine_calls import at, call, invalid, scalar, uid

from engine.compiler.render import job_commands
from engine.migrate.apply import apply
from engine.project import build

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)

TR_A, TR_B = uid(2001), uid(2002)                 # staff, Translation
TR_SUP, TR_HEAD = uid(2003), uid(2004)            # Translation's supervisor and head
DISS_HEAD = uid(2005)                             # head of Dissemination (Translation's parent)
IT_SUP = uid(2006)                                # a supervisor of another branch (IT Support)


# ---------------------------------------------------------------------------------------- helpers

def staff(conn, staff_id, unit_id, name, role="staff", wip_limit=1):
    return call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": unit_id, "full_name": name, "role": role,
                                               "wip_limit": wip_limit})


def translation(conn, work_item_id, priority="normal"):
    return call(conn, "auto_assign", {"work_item_id": work_item_id, "work_item_type": "translation_request",
                                      "priority": priority})


def availability(conn, staff_id, status, **fields):
    return call(conn, "set_staff_availability", {"staff_id": staff_id, "status": status, **fields})


def complete(conn, assignment_id):
    return scalar(conn, "SELECT complete_assignment(%s)", assignment_id)


@contextmanager
def as_staff(conn, staff_id):
    """One request as an authenticated person (PostgREST's way), rolled back only on error."""
    with conn.transaction():
        conn.execute("SET LOCAL ROLE authenticated")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                     [json.dumps({"role": "authenticated", "sub": staff_id})])
        yield


def rows(conn, query, *params) -> list[dict]:
    return [r[0] for r in conn.execute(query, params).fetchall()]


def audit(conn, work_item_id) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        "SELECT action, actor_id::text, from_assignee::text, to_assignee::text, reason FROM assignment_audit"
        " WHERE work_item_id = %s ORDER BY id", [work_item_id])]


def active(conn, work_item_id) -> dict | None:
    row = conn.execute("SELECT to_jsonb(a) FROM assignments a WHERE work_item_id = %s"
                       " AND status IN ('assigned', 'in_progress', 'on_hold')", [work_item_id]).fetchone()
    return row[0] if row else None


def translation_team(conn):
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", "Amal Haddad")
    staff(conn, TR_B, "unit-translation", "Badr Saleh")
    staff(conn, TR_SUP, "unit-translation", "Sana Omar", "supervisor", 0)
    staff(conn, DISS_HEAD, "unit-dissemination", "Dana Khalil", "unit_head", 0)
    staff(conn, IT_SUP, "unit-it-support", "Issa Nour", "supervisor", 0)


# ------------------------------------------------------------------------- no capacity: escalate

@pytest.fixture
def escalating_url(database_url, tmp_path, repo_root):
    """The shipped policy with rule-translation saying `when_no_capacity: escalate`."""
    rules = tmp_path / "rules"
    shutil.copytree(repo_root / "rules", rules)
    path = rules / "assignment_rules.yaml"
    text = path.read_text()
    anchor = "    match:\n      types: [translation_request]\n    target:\n      unit: unit-translation\n"
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, anchor + "    when_no_capacity: escalate\n"))
    policy, objects = build(rules)
    assert apply(database_url, objects, policy).outcome == "applied"
    return database_url


@pytest.fixture
def escalating_conn(escalating_url):
    with psycopg.connect(escalating_url, autocommit=True) as connection:
        yield connection


def test_no_capacity_stores_one_event_for_the_nearest_available_head_and_shows_it(escalating_conn):
    """Translation's head is on leave and it has no supervisor: the event goes to the head of
    Dissemination. Asking again, or the fallback sweep, stores nothing more; engine_health
    counts it; the event stream's visibility check shows it to Dissemination's head and not to
    a colleague; once the item is assigned the event is resolved and points at the assignment."""
    conn = escalating_conn
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", "Amal Haddad")
    staff(conn, TR_B, "unit-translation", "Badr Saleh", wip_limit=0)
    staff(conn, TR_HEAD, "unit-translation", "Tariq Aziz", "unit_head", 0)
    staff(conn, DISS_HEAD, "unit-dissemination", "Dana Khalil", "unit_head", 0)
    availability(conn, TR_HEAD, "on_leave")
    first = translation(conn, "tr-1")
    assert first["status"] == "assigned" and "escalation_event_id" not in first
    conn.execute("DELETE FROM engine_events")
    conn.execute("LISTEN escalation_events")

    queued = translation(conn, "tr-2")
    assert queued["status"] == "queued" and queued["escalation_event_id"] is not None
    assert translation(conn, "tr-2")["existing"] is True
    conn.execute("SELECT process_stale_queue_items()")
    events = rows(conn, "SELECT to_jsonb(e) FROM escalation_events e")
    assert len(events) == 1
    event = events[0]
    assert (event["reason"], event["recipient_id"], event["recipient_role"], event["queue_id"], event["work_item_id"],
            event["unit_id"], event["assignment_id"], event["resolved_at"]) == \
        ("no_capacity", DISS_HEAD, "unit_head", queued["queue_id"], "tr-2", "unit-translation", None, None)
    assert event["id"] == queued["escalation_event_id"]
    assert event["details"]["recipient_name"] == "Dana Khalil" and event["details"]["unit_name"] == "Translation"

    conn.execute("SELECT relay_engine_events()")
    sent = [json.loads(n.payload) for n in conn.notifies(timeout=2, stop_after=1)]
    assert [(n["event_id"], n["reason"], n["recipient_id"], n["work_item_id"]) for n in sent] == \
        [(event["id"], "no_capacity", DISS_HEAD, "tr-2")]
    health = scalar(conn, "SELECT engine_health()")
    assert health["checks"]["no_capacity"] == {"escalations_last_24h": 1, "waiting": 1}

    # what the event stream asks, as each subscriber, before passing an escalation on
    visible = "SELECT EXISTS (SELECT 1 FROM escalation_events WHERE id = %s::uuid)"
    with as_staff(conn, DISS_HEAD):
        assert scalar(conn, visible, event["id"]) is True
    with as_staff(conn, TR_B):
        assert scalar(conn, visible, event["id"]) is False

    at(conn, T0 + timedelta(hours=1))
    done = complete(conn, first["assignment_id"])
    taken = active(conn, "tr-2")
    assert done["next"] == {"queue_id": queued["queue_id"], "work_item_id": "tr-2", "assignment_id": taken["id"],
                            "assignee_id": TR_A}
    event = rows(conn, "SELECT to_jsonb(e) FROM escalation_events e")[0]
    assert event["assignment_id"] == taken["id"] and event["resolved_at"] is not None
    assert scalar(conn, "SELECT engine_health()")["checks"]["no_capacity"] == {"escalations_last_24h": 1,
                                                                              "waiting": 0}
    at(conn, T0 + timedelta(hours=25))
    assert scalar(conn, "SELECT engine_health()")["checks"]["no_capacity"]["escalations_last_24h"] == 0


def test_the_event_stream_shows_the_no_capacity_escalation_to_the_head_above(escalating_url, escalating_conn):
    """Over HTTP, as a client of `rulesctl serve` sees it: Dissemination's head, subscribed to
    /assignments/events, receives the escalation of an item queued in Translation."""
    conn = escalating_conn
    at(conn, T0)
    staff(conn, TR_A, "unit-translation", "Amal Haddad", wip_limit=0)
    staff(conn, DISS_HEAD, "unit-dissemination", "Dana Khalil", "unit_head", 0)
    with running_server(escalating_url) as server, event_stream(server, "authenticated", DISS_HEAD) as stream:
        queued = server.as_("service_role").post("/functions/v1/assignments-auto-assign", json={
            "work_item_id": "tr-http", "work_item_type": "translation_request", "priority": "normal"})
        assert queued.status_code == 202, queued.text
        seen = stream.until(lambda event, data: event == "escalation_events")
    event, data = seen[-1]
    assert (data["event_id"], data["reason"], data["recipient_id"], data["unit_id"]) == \
        (queued.json()["escalation_event_id"], "no_capacity", DISS_HEAD, "unit-translation")


# ------------------------------------------------------------------------------- leave with until

def run_leave_return_job(conn, policy) -> None:
    """The leave-return job's command as pg_cron runs it (rules/jobs.yaml), in this database."""
    job = next(j for j in policy.jobs if j.name == "leave-return")
    command, _ = job_commands(job, "public")
    conn.execute(command)


def test_leave_with_until_ends_by_itself_and_the_queue_drains_to_them(conn, shipped_objects):
    policy, _ = shipped_objects
    translation_team(conn)
    availability(conn, TR_A, "on_leave", until=(T0 + timedelta(days=2)).isoformat(), reason="annual leave")
    assert translation(conn, "tr-1")["assignee_id"] == TR_B
    queued = translation(conn, "tr-2")
    assert queued["status"] == "queued"

    at(conn, T0 + timedelta(days=1))
    run_leave_return_job(conn, policy)
    assert scalar(conn, "SELECT availability_status::text FROM staff_profiles WHERE id = %s", TR_A) == "on_leave"
    assert active(conn, "tr-2") is None

    at(conn, T0 + timedelta(days=2, minutes=1))
    version = scalar(conn, "SELECT version FROM staff_profiles WHERE id = %s", TR_A)
    run_leave_return_job(conn, policy)
    status, until, new_version, load = conn.execute(
        "SELECT availability_status::text, available_until, version, current_assignment_count FROM staff_profiles"
        " WHERE id = %s", [TR_A]).fetchone()
    assert (status, until, load) == ("available", None, 1) and new_version > version
    taken = active(conn, "tr-2")
    assert taken["assignee_id"] == TR_A and taken["decision"]["source"] == "queue"
    assert scalar(conn, "SELECT count(*) FROM assignment_queue") == 0
    assert scalar(conn, "SELECT return_staff_from_leave(10)") == 0          # nobody else is due


def test_until_must_be_in_the_future_and_only_for_an_absence(conn):
    translation_team(conn)
    with invalid("until"):
        availability(conn, TR_A, "on_leave", until=(T0 - timedelta(minutes=1)).isoformat())
    with invalid("until"):
        availability(conn, TR_A, "available", until=(T0 + timedelta(days=1)).isoformat())
    assert scalar(conn, "SELECT availability_status::text FROM staff_profiles WHERE id = %s", TR_A) == "available"


# ------------------------------------------------------------------------------ reviewing flags

def flagged_team(conn) -> dict[str, str]:
    """TR_A holds three normal translation requests, then goes on leave: all are flagged.
    Then TR_B has room for one."""
    translation_team(conn)
    staff(conn, TR_A, "unit-translation", "Amal Haddad", wip_limit=3)
    staff(conn, TR_B, "unit-translation", "Badr Saleh", wip_limit=0)
    ids = {item: translation(conn, item)["assignment_id"] for item in ("tr-k", "tr-r", "tr-p")}
    assert {active(conn, item)["assignee_id"] for item in ids} == {TR_A}
    assert availability(conn, TR_A, "on_leave", reason="sick")["flagged_for_review"] == 3
    staff(conn, TR_B, "unit-translation", "Badr Saleh", wip_limit=1)
    return ids


def review(conn, payload):
    return call(conn, "review_assignment", payload)


def test_review_keep_clears_the_flag_with_a_note_and_is_audited(conn):
    ids = flagged_team(conn)
    with as_staff(conn, TR_SUP):
        kept = review(conn, {"assignment_id": ids["tr-k"], "action": "keep", "note": "back on Thursday"})
    assert (kept["outcome"], kept["assignee_id"], kept["assignment_id"]) == ("kept", TR_A, ids["tr-k"])
    row = active(conn, "tr-k")
    assert (row["needs_review"], row["review_reason"], row["assignee_id"]) == (False, None, TR_A)
    assert audit(conn, "tr-k")[-1] == ("review_keep", TR_SUP, TR_A, TR_A, "back on Thursday")
    assert scalar(conn, "SELECT resolved_at IS NOT NULL FROM escalation_events WHERE assignment_id = %s"
                        " AND reason = 'staff_unavailable'", ids["tr-k"]) is True
    with invalid("assignment_id"):             # reviewed once: no longer flagged
        review(conn, {"assignment_id": ids["tr-k"], "action": "keep", "note": "again"})


def test_review_reassign_to_a_named_person_or_to_the_best_eligible(conn):
    ids = flagged_team(conn)
    with as_staff(conn, DISS_HEAD):            # the head of the unit above
        moved = review(conn, {"assignment_id": ids["tr-r"], "action": "reassign", "note": "urgent for the client",
                              "assignee_id": TR_B})
    assert (moved["outcome"], moved["assignee_id"], moved["previous_assignee_id"]) == ("reassigned", TR_B, TR_A)
    row = active(conn, "tr-r")
    assert (row["assignee_id"], row["needs_review"]) == (TR_B, False)
    assert [a[0] for a in audit(conn, "tr-r")] == ["leave_flag", "manual_override", "review_reassign"]
    assert audit(conn, "tr-r")[-1] == ("review_reassign", DISS_HEAD, TR_A, TR_B, "urgent for the client")

    # without a name: the best other eligible person, or the queue (TR_B is full now)
    picked = review(conn, {"assignment_id": ids["tr-p"], "action": "reassign", "note": "cannot wait"})
    assert picked["outcome"] == "queued" and picked["queue_id"] is not None
    assert scalar(conn, "SELECT work_item_id FROM assignment_queue WHERE id = %s", picked["queue_id"]) == "tr-p"
    assert audit(conn, "tr-p")[-1][0] == "review_reassign"


def test_review_over_http_under_its_function_name(engine_url, conn):
    ids = flagged_team(conn)
    with running_server(engine_url) as server:
        kept = server.as_("authenticated", TR_SUP).post("/functions/v1/assignments-review", json={
            "assignment_id": ids["tr-k"], "action": "keep", "note": "fine as it is"})
        assert kept.status_code == 200, kept.text
        assert (kept.json()["outcome"], kept.json()["assignee_id"]) == ("kept", TR_A)
        refused = server.as_("authenticated", TR_B).post("/functions/v1/assignments/review", json={
            "assignment_id": ids["tr-r"], "action": "keep", "note": "mine now"})
        assert refused.status_code == 403, refused.text
        bad = server.as_("authenticated", TR_SUP).post("/functions/v1/assignments/review", json={
            "assignment_id": ids["tr-r"], "action": "maybe", "note": "x"})
        assert (bad.status_code, bad.json()["field"]) == (400, "action")
    assert active(conn, "tr-k")["needs_review"] is False and active(conn, "tr-r")["needs_review"] is True


def test_review_is_refused_for_a_colleague_and_elsewhere_and_bad_input_names_the_field(conn):
    ids = flagged_team(conn)
    before = rows(conn, "SELECT to_jsonb(a) FROM assignments a ORDER BY id") + \
        rows(conn, "SELECT to_jsonb(a) FROM assignment_audit a ORDER BY id")
    for who in (TR_B, IT_SUP, TR_A):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with as_staff(conn, who):
                review(conn, {"assignment_id": ids["tr-k"], "action": "keep", "note": "fine"})
    for payload, field in (
            ({"assignment_id": ids["tr-k"], "action": "drop", "note": "x"}, "action"),
            ({"assignment_id": ids["tr-k"], "action": "keep"}, "note"),
            ({"assignment_id": ids["tr-k"], "action": "keep", "note": "x", "assignee_id": TR_B}, "assignee_id"),
            ({"assignment_id": "nope", "action": "keep", "note": "x"}, "assignment_id"),
            ({"assignment_id": uid(9999), "action": "keep", "note": "x"}, "assignment_id"),
            ({"assignment_id": ids["tr-k"], "action": "reassign", "note": "x", "assignee_id": uid(9999)},
             "assignee_id")):
        with invalid(field):
            review(conn, payload)
    after = rows(conn, "SELECT to_jsonb(a) FROM assignments a ORDER BY id") + \
        rows(conn, "SELECT to_jsonb(a) FROM assignment_audit a ORDER BY id")
    assert after == before


def test_unnamed_reassign_needs_the_whole_target_in_the_callers_scope(conn):
    """A survey task targets all of Statistical Operations: Field Survey's supervisor may hand
    it to someone of Field Survey by name, but not let the pick move it anywhere in the subtree."""
    at(conn, T0)
    worker, colleague, supervisor = uid(2101), uid(2102), uid(2103)
    staff(conn, worker, "unit-field-survey", "Fahd Ali")
    staff(conn, colleague, "unit-field-survey", "Huda Ali", wip_limit=0)
    staff(conn, supervisor, "unit-field-survey", "Maha Said", "supervisor", 0)
    task = call(conn, "auto_assign", {"work_item_id": "sv-1", "work_item_type": "survey_task", "priority": "normal"})
    assert task["assignee_id"] == worker
    availability(conn, worker, "on_leave", reason="training")
    staff(conn, colleague, "unit-field-survey", "Huda Ali", wip_limit=1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="name the assignee"):
        with as_staff(conn, supervisor):
            review(conn, {"assignment_id": task["assignment_id"], "action": "reassign", "note": "cover"})
    with as_staff(conn, supervisor):
        moved = review(conn, {"assignment_id": task["assignment_id"], "action": "reassign", "note": "cover",
                              "assignee_id": colleague})
    assert moved["assignee_id"] == colleague


# ------------------------------------------------------------- complete: next; decisions: names

def test_complete_says_null_when_nothing_waits(conn):
    translation_team(conn)
    first = translation(conn, "tr-1")
    done = complete(conn, first["assignment_id"])
    assert done["status"] == "completed" and done["next"] is None and done["dequeued"] == []


def test_decision_records_name_people_and_units(conn):
    translation_team(conn)
    first = translation(conn, "tr-1")
    translation(conn, "tr-2")
    translation(conn, "tr-3")                   # both full: queued
    decision = active(conn, "tr-1")["decision"]
    assert decision["target"]["unit_name"] == "Translation"
    chosen = decision["chosen_staff"]
    assert (chosen["staff_id"], chosen["full_name"], chosen["unit_name"]) == (TR_A, "Amal Haddad", "Translation")
    assert {(c["full_name"], c["unit_name"]) for c in decision["candidates"]["ranking"]} == \
        {("Amal Haddad", "Translation"), ("Badr Saleh", "Translation")}
    queued = scalar(conn, "SELECT decision FROM assignment_queue WHERE work_item_id = 'tr-3'")
    assert queued["target"]["unit_name"] == "Translation" and queued["chosen_staff"] is None
    complete(conn, first["assignment_id"])
    dequeued = active(conn, "tr-3")["decision"]
    assert dequeued["source"] == "queue"
    assert (dequeued["chosen_staff"]["full_name"], dequeued["chosen_staff"]["unit_name"]) == \
        ("Amal Haddad", "Translation")
    assert dequeued["when_queued"]["target"]["unit_name"] == "Translation"
