"""The concurrency proof: 16 connections call auto_assign, complete_assignment,
set_staff_availability and upsert_staff_profile at once, thousands of times; afterwards every
invariant holds in the tables and no caller saw a deadlock, a serialization failure or any
error it did not cause itself. Plus a targeted lost wake-up race, repeated."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from engine_calls import call, scalar
from psycopg.types.json import Jsonb

from engine.database.invariants import all_violations

pytestmark = pytest.mark.db

REPO_ROOT = Path(__file__).resolve().parents[2]

CLIENTS = 16
OPERATIONS_PER_CLIENT = 250
UNITS = ("unit-it-support", "unit-translation", "unit-data-requests", "unit-field-survey", "unit-data-processing")
SKILLS = ("skill-arabic", "skill-english", "skill-french", "skill-sql", "skill-network")
TYPES = {"ticket": (), "translation_request": ("skill-arabic", "skill-english", "skill-french"),
         "data_request": ("skill-sql",), "survey_task": ()}
PRIORITIES = ("low", "normal", "high", "urgent")
# Errors a client causes itself in a race (completing what another client just completed or
# moved away): clear 22023 errors, not failures of the engine.
EXPECTED_CLIENT_ERRORS = ("is already completed", "is already reassigned")



def _staff_ids(count):
    return [uuid.UUID(int=0x5EED_0000 + i) for i in range(count)]


def _seed_staff(conn, rng):
    for index, staff_id in enumerate(_staff_ids(48)):
        skills = {skill: rng.choice(("basic", "proficient", "expert")) for skill in rng.sample(SKILLS, 3)}
        call(conn, "upsert_staff_profile", {
            "id": str(staff_id), "unit_id": UNITS[index % len(UNITS)], "full_name": f"Staff {index}",
            "skills": skills, "wip_limit": rng.choice((1, 2))})


def _client(url, seed, staff, requested, outcomes, errors, lock):
    rng = random.Random(seed)
    with psycopg.connect(url, autocommit=True) as conn:
        for step in range(OPERATIONS_PER_CLIENT):
            roll = rng.random()
            try:
                if roll < 0.45:
                    work_type = rng.choice(list(TYPES))
                    item = f"c{seed}-{step}" if rng.random() > 0.1 else f"shared-{rng.randrange(40)}"
                    skills = rng.sample(TYPES[work_type], k=min(len(TYPES[work_type]), rng.choice((0, 1))))
                    with lock:
                        requested.add(item)
                    result = call(conn, "auto_assign", {
                        "work_item_id": item, "work_item_type": work_type, "priority": rng.choice(PRIORITIES),
                        "required_skills": skills})
                    outcomes[result["status"]] += 1
                elif roll < 0.80:
                    row = conn.execute("SELECT id FROM assignments WHERE status = 'assigned' "
                                       "ORDER BY random() LIMIT 1").fetchone()
                    if row:
                        scalar(conn, "SELECT complete_assignment(%s)", row[0])
                        outcomes["completed"] += 1
                elif roll < 0.92:
                    status = rng.choice(("available", "available", "on_leave", "busy"))
                    call(conn, "set_staff_availability", {"staff_id": str(rng.choice(staff)), "status": status})
                    outcomes[f"availability {status}"] += 1
                else:
                    staff_id = rng.choice(staff)
                    # WIP limits only go up here: lowering one below a person's load is allowed
                    # and would make "nobody over WIP" unprovable from the final state.
                    current = conn.execute("SELECT wip_limit, unit_id, full_name FROM staff_profiles WHERE id = %s",
                                           (staff_id,)).fetchone()
                    call(conn, "upsert_staff_profile", {
                        "id": str(staff_id), "unit_id": current[1], "full_name": current[2],
                        "wip_limit": min(current[0] + rng.choice((0, 1)), 4)})
                    outcomes["upsert"] += 1
            except psycopg.Error as exc:
                message = str(exc).splitlines()[0]
                if exc.sqlstate == "22023" and message.endswith(EXPECTED_CLIENT_ERRORS):
                    outcomes["client race (expected 22023)"] += 1
                else:
                    errors.append((exc.sqlstate, message))


def test_sixteen_clients_keep_every_invariant(engine_url):
    rng = random.Random(20261128)
    with psycopg.connect(engine_url, autocommit=True) as conn:
        _seed_staff(conn, rng)
    staff = _staff_ids(48)
    requested: set[str] = set()
    outcomes: Counter = Counter()
    errors: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=_client, args=(engine_url, seed, staff, requested, outcomes, errors, lock))
               for seed in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(outcomes.values()) >= CLIENTS * OPERATIONS_PER_CLIENT * 0.9
    # the mix really exercised every path (the exact split varies with scheduling)
    assert outcomes["assigned"] > 200 and outcomes["queued"] > 50 and outcomes["completed"] > 300
    with psycopg.connect(engine_url) as conn:
        # Everyone back to work: whatever is still queued must now be picked up at once.
        for staff_id in staff:
            call(conn, "set_staff_availability", {"staff_id": str(staff_id), "status": "available"})
        conn.commit()
        violations = all_violations(conn, requested)
        assert {name: rows for name, rows in violations.items() if rows} == {}
        dequeued = conn.execute("SELECT count(*) FROM assignments WHERE decision ->> 'source' = 'queue'").fetchone()[0]
    assert dequeued > 100


def _unit_lock_keys() -> tuple[int, int]:
    """(first advisory key, stripes) of the unit lock, as templates/functions/runtime/_macros/unit_lock.j2 sets them."""
    text = (REPO_ROOT / "templates/functions/runtime/_macros/unit_lock.j2").read_text()
    return (int(re.search(r"set key_base = (\d+)", text).group(1)),
            int(re.search(r"set stripes = (\d+)", text).group(1)))


def _waiting_on_unit_lock(conn, pids, unit: str, timeout: float = 10.0) -> set[int]:
    """Those of `pids` whose backend is waiting for the unit's advisory lock, once all of them are
    (or whichever are after `timeout`)."""
    key_base, stripes = _unit_lock_keys()
    deadline = time.monotonic() + timeout
    while True:
        waiting = {pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = ANY (%s)"
            " AND objsubid = 2 AND classid::bigint BETWEEN %s AND %s"
            " AND objid::bigint = (hashtext(%s)::bigint & 4294967295)",
            (list(pids), key_base, key_base + stripes - 1, unit)).fetchall()}
        if waiting == set(pids) or time.monotonic() > deadline:
            return waiting
        time.sleep(0.02)


def test_lost_wake_up_race(engine_url):
    """One person, WIP 1, holding item A. A client completes A while another submits B (which
    must queue if it decides first). Whichever wins, B ends up assigned.

    The two truly overlap in every round, however loaded the machine: a third connection holds
    the unit's lock (every stripe, exclusively) while both start, and the round goes on only once
    pg_locks shows both waiting for it -- the arrival having found nobody free (about to queue),
    the completion about to look at the queue. Then the gate opens and they race for the lock.
    An engine that left the unit lock out of either side never waits there: the round fails."""
    person = str(uuid.UUID(int=0xAB))
    key_base, stripes = _unit_lock_keys()
    with psycopg.connect(engine_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": person, "unit_id": "unit-hr", "full_name": "Only one",
                                            "wip_limit": 1})
    rounds = 20
    with psycopg.connect(engine_url, autocommit=True) as completer, \
            psycopg.connect(engine_url, autocommit=True) as submitter, \
            psycopg.connect(engine_url, autocommit=True) as gate, \
            psycopg.connect(engine_url, autocommit=True) as observer:
        pids = {completer.info.backend_pid: "completion", submitter.info.backend_pid: "arrival"}
        for round_number in range(rounds):
            first = call(completer, "auto_assign", {"work_item_id": f"A{round_number}", "work_item_type": "ticket",
                                                    "priority": "normal", "target_unit_id": "unit-hr"})
            assert first["status"] == "assigned", first
            results, failures = {}, []

            # both run (in the threads below) and finish within this round: bind its values
            def complete(first=first, results=results, failures=failures):
                try:
                    results["complete"] = scalar(completer, "SELECT complete_assignment(%s)", first["assignment_id"])
                except Exception as exc:          # handed to the test thread
                    failures.append(exc)

            def submit(round_number=round_number, results=results, failures=failures):
                try:
                    results["submit"] = call(submitter, "auto_assign", {
                        "work_item_id": f"B{round_number}", "work_item_type": "ticket", "priority": "normal",
                        "target_unit_id": "unit-hr"})
                except Exception as exc:
                    failures.append(exc)

            threads = [threading.Thread(target=complete), threading.Thread(target=submit)]
            with gate.transaction():
                gate.execute("SELECT pg_advisory_xact_lock(%s + s, hashtext('unit-hr')) FROM generate_series(0, %s) s",
                             (key_base, stripes - 1))
                for thread in threads:
                    thread.start()
                waiting = _waiting_on_unit_lock(observer, pids, "unit-hr")
                # both at the unit lock at once: neither has finished, neither has decided alone
                assert {pids[pid] for pid in waiting} == {"completion", "arrival"}, (round_number, results)
                assert results == {}
            for thread in threads:
                thread.join(30)
            assert failures == [] and not any(thread.is_alive() for thread in threads)
            state = completer.execute("SELECT status FROM assignments WHERE work_item_id = %s AND status = 'assigned'",
                                      (f"B{round_number}",)).fetchone()
            assert state == ("assigned",), (round_number, results)
            assert completer.execute("SELECT count(*) FROM assignment_queue").fetchone() == (0,)
            # free the person for the next round
            b = completer.execute("SELECT id FROM assignments WHERE work_item_id = %s AND status = 'assigned'",
                                  (f"B{round_number}",)).fetchone()[0]
            scalar(completer, "SELECT complete_assignment(%s)", b)


def _hr_person_holding_one_item(engine_url, number, wip_limit):
    """The only person of unit-hr, holding one ticket: (their id, the auto_assign result)."""
    person = str(uuid.UUID(int=number))
    with psycopg.connect(engine_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": person, "unit_id": "unit-hr", "full_name": f"Person {number}",
                                            "wip_limit": wip_limit})
        first = call(conn, "auto_assign", {"work_item_id": f"held-{number}", "work_item_type": "ticket",
                                           "priority": "normal", "target_unit_id": "unit-hr"})
    assert first["status"] == "assigned"
    return person, first


def test_completion_of_a_full_person_waits_for_an_arrival_deciding_to_queue(engine_url):
    """The completion of someone without room takes the unit lock only when the queue shows
    nothing for them. An arrival that is queueing in that unit right now (its row not yet
    committed) holds the lock exclusively: the completion must not miss it -- it starts over
    with the lock first, waits for the arrival's commit and then hands it the freed slot."""
    person, first = _hr_person_holding_one_item(engine_url, 0xAC, wip_limit=1)
    with psycopg.connect(engine_url) as arrival, psycopg.connect(engine_url, autocommit=True) as completer:
        queued = call(arrival, "auto_assign", {"work_item_id": "arriving", "work_item_type": "ticket",
                                               "priority": "normal", "target_unit_id": "unit-hr"})
        assert queued["status"] == "queued"          # uncommitted: the unit lock is still held
        done = threading.Event()
        thread = threading.Thread(target=lambda: (scalar(completer, "SELECT complete_assignment(%s)",
                                                         first["assignment_id"]),
                                                  done.set()))
        thread.start()
        assert not done.wait(0.5)                    # waiting for the arrival, not finished without it
        arrival.commit()
        thread.join(10)
        assert done.is_set()
        row = completer.execute("SELECT assignee_id::text, decision ->> 'source' FROM assignments "
                                "WHERE work_item_id = 'arriving' AND status = 'assigned'").fetchone()
    assert row == (person, "queue")


def test_completion_waiting_for_a_held_row_does_not_hold_up_arrivals_that_queue(engine_url):
    """A completion whose assignment row another transaction holds (an SLA sweep batch holds a
    thousand for a while) waits for it before taking the unit lock: an arrival that must queue
    in that unit meanwhile goes through at once instead of waiting behind the completion."""
    _, first = _hr_person_holding_one_item(engine_url, 0xAD, wip_limit=3)   # still has room: lock first
    with psycopg.connect(engine_url) as sweep, psycopg.connect(engine_url, autocommit=True) as completer, \
            psycopg.connect(engine_url, autocommit=True) as arrival:
        sweep.execute("SELECT 1 FROM assignments WHERE id = %s FOR NO KEY UPDATE", [first["assignment_id"]])
        done = threading.Event()
        thread = threading.Thread(target=lambda: (scalar(completer, "SELECT complete_assignment(%s)",
                                                         first["assignment_id"]),
                                                  done.set()))
        thread.start()
        try:
            assert not done.wait(0.5)                    # waiting for the held row
            arrival.execute("SET lock_timeout = '3s'")
            queued = call(arrival, "auto_assign", {   # nobody in the unit holds the skill: it queues
                "work_item_id": "needs-sql", "work_item_type": "ticket", "priority": "normal",
                "target_unit_id": "unit-hr", "required_skills": ["skill-sql"]})
            assert queued["status"] == "queued"
            assert not done.is_set()
        finally:
            sweep.rollback()                             # let the completion through, whatever happened
            thread.join(10)
        assert done.is_set()
        status = completer.execute("SELECT status::text FROM assignments WHERE id = %s",
                                   [first["assignment_id"]]).fetchone()
    assert status == ("completed",)
