"""The bulk entry points against sequential calls: auto_assign_many and complete_assignments_many.

Two fresh identical databases (the shipped policy, the same staff, copied from one template):
one gets the batches, the other the same requests one call at a time (each its own
transaction, as a client makes them), at the same engine clock. Results and final tables must
agree, modulo generated ids and wall-clock timestamps; the runtime's invariants hold on both.

Batches are seeded random: mixed types and priorities, required skills, explicit target units,
duplicates inside a batch and of earlier work, units small enough to fill so that items queue
and completions drain the queue. Within one batch, new items differ in (target unit, priority):
items queued at one instant in one unit at one priority are ordered by their random ids, which
no two databases can share -- the engine's only tie that is not deterministic.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import at, call, uid
from psycopg import sql
from psycopg.types.json import Jsonb

from engine.database.invariants import all_violations

pytestmark = pytest.mark.db

T0 = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=3)))
TYPES = ("ticket", "translation_request", "data_request", "survey_task")
PRIORITIES = ("low", "normal", "high", "urgent")
# unit -> (people, WIP limits cycled over them, skills held by turns)
STAFF = {
    "unit-it-support": (3, [2, 3], ["skill-network", "skill-desktop-support", "skill-security"]),
    "unit-translation": (3, [1, 2], ["skill-arabic", "skill-english", "skill-legal-translation"]),
    "unit-data-requests": (2, [2], ["skill-sql", "skill-english"]),
    "unit-dissemination": (1, [1], ["skill-sql"]),
    "unit-field-survey": (2, [2], ["skill-census", "skill-gis"]),
    "unit-methodology": (1, [1], ["skill-sampling"]),
    "unit-hr": (1, [1], ["skill-arabic"]),
}
SKILLS = sorted({skill for _, _, skills in STAFF.values() for skill in skills})
STAFF_IDS: set[str] = set()


# ---------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def template(pg_cluster, shipped_objects) -> Iterator[str]:
    """A database with the shipped policy and the staff above, copied for every test."""
    from engine.migrate.apply import apply

    name = f"tmpl_many_{uuid.uuid4().hex[:8]}"
    _admin(pg_cluster, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        policy, objects = shipped_objects
        apply(pg_cluster.url_for(name), objects, policy)
        with psycopg.connect(pg_cluster.url_for(name), autocommit=True) as conn:
            number = 100
            for unit, (people, limits, skills) in STAFF.items():
                for n in range(people):
                    number += 1
                    STAFF_IDS.add(uid(number))
                    call(conn, "upsert_staff_profile", {
                        "id": uid(number), "unit_id": unit, "full_name": f"{unit} {n}",
                        "wip_limit": limits[n % len(limits)],
                        "skills": {skills[n % len(skills)]: "expert", skills[(n + 1) % len(skills)]: "basic"}})
        yield name
    finally:
        _admin(pg_cluster, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def twins(pg_cluster, template) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """(bulk, sequential): two autocommit connections to identical copies of the template."""
    names = [f"many_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        _admin(pg_cluster, sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                            sql.Identifier(template)))
    try:
        with psycopg.connect(pg_cluster.url_for(names[0]), autocommit=True) as bulk, \
                psycopg.connect(pg_cluster.url_for(names[1]), autocommit=True) as sequential:
            yield bulk, sequential
    finally:
        for name in names:
            _admin(pg_cluster, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(pg_cluster, statement) -> None:
    with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
        conn.execute(statement)


# ---------------------------------------------------------------------------------------- calls

def assign_many(conn, requests: list[dict]) -> list[dict]:
    return conn.execute("SELECT auto_assign_many(%s::jsonb[])", [[Jsonb(r) for r in requests]]).fetchone()[0]


def complete_many(conn, requests: list[dict]) -> list[dict]:
    return conn.execute("SELECT complete_assignments_many(%s::jsonb[])", [[Jsonb(r) for r in requests]]
                        ).fetchone()[0]


def complete(conn, assignment_id: str) -> dict:
    return conn.execute("SELECT complete_assignment(%s)", [assignment_id]).fetchone()[0]


def active_ids(conn, work_item_ids: list[str]) -> list[str]:
    """The active assignment of each work item (ids differ between the twins; work items do not)."""
    rows = dict(conn.execute("SELECT work_item_id, id::text FROM assignments WHERE work_item_id = ANY (%s)"
                             " AND status IN ('assigned', 'in_progress', 'on_hold')", [work_item_ids]).fetchall())
    return [rows[w] for w in work_item_ids]


@contextmanager
def claims(conn, role: str, jwt: dict):
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(jwt)])
        yield


# ---------------------------------------------------------------------------------------- comparing

# Set from the wall clock (now()), not the engine clock: they differ between any two runs.
WALL_CLOCK = {"updated_at", "created_at", "relayed_at", "changed_at", "recorded_at", "published_at"}
TABLES = ("assignments", "assignment_queue", "staff_profiles", "assignment_audit", "escalation_events",
          "engine_events")


def normal(value, clock_columns=frozenset()):
    """Generated ids (any uuid that is not a staff id) become "<id>"; wall-clock columns go."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if k not in clock_columns}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}"):    # an outbox payload: JSON in text
            try:
                return normal(json.loads(value))
            except ValueError:
                return value
        try:
            uuid.UUID(value)
        except ValueError:
            return value
        return value if value in STAFF_IDS else "<id>"
    return value


def tables(conn) -> dict[str, list]:
    out = {}
    for table in TABLES:
        rows = conn.execute(sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(table))).fetchall()
        out[table] = sorted((normal(r[0], WALL_CLOCK) for r in rows), key=lambda r: json.dumps(r, sort_keys=True))
    return out


def assert_same_state(bulk, sequential, requested: set[str]) -> None:
    left, right = tables(bulk), tables(sequential)
    for table in TABLES:
        assert left[table] == right[table], table
    for conn in (bulk, sequential):
        assert_invariants(conn, requested)


def assert_invariants(conn, requested: frozenset[str] | set[str] = frozenset()) -> None:
    """Nobody over WIP, counters equal to the real load, nothing lost, nobody idle while work waits."""
    assert {name: rows for name, rows in all_violations(conn, requested).items() if rows} == {}


# ---------------------------------------------------------------------------------------- workload

class Workload:
    """Seeded random arrivals and completions for both twins."""

    def __init__(self, seed: int, conn) -> None:
        self.rng = random.Random(seed)
        self.filed: list[str] = []
        self.serial = 0
        self.conn = conn

    def target(self, request: dict) -> str:
        """The unit an item is queued for: its explicit target, or its rule's."""
        if request.get("target_unit_id"):
            return request["target_unit_id"]
        return self.conn.execute(
            "SELECT target_unit_id FROM match_assignment_rule(%s::work_item_type, %s::priority_level, %s::text[])",
            [request["work_item_type"], request["priority"], sorted(set(request.get("required_skills", [])))]
        ).fetchone()[0]

    def batch(self, size: int) -> list[dict]:
        requests: list[dict] = []
        used: set[tuple[str, str]] = set()
        while len(requests) < size:
            if requests and self.rng.random() < 0.1:              # the same item twice in the batch
                requests.append(dict(self.rng.choice(requests)))
                continue
            if self.filed and self.rng.random() < 0.1:            # again: queued, active or done by now
                work_item_id = self.rng.choice(self.filed)
            else:
                self.serial += 1
                work_item_id = f"wi-{self.serial}"
            request = {"work_item_id": work_item_id, "work_item_type": self.rng.choice(TYPES),
                       "priority": self.rng.choice(PRIORITIES)}
            if self.rng.random() < 0.35:
                request["required_skills"] = self.rng.sample(SKILLS, self.rng.choice((1, 1, 2)))
            if self.rng.random() < 0.2:
                request["target_unit_id"] = self.rng.choice(sorted(STAFF))
            key = (self.target(request), request["priority"])
            if key in used:
                continue
            used.add(key)
            requests.append(request)
        self.filed += [r["work_item_id"] for r in requests]
        return requests

    def completions(self, conn, share: float) -> list[str]:
        active = [r[0] for r in conn.execute("SELECT work_item_id FROM assignments WHERE status = 'assigned'"
                                             " ORDER BY work_item_id").fetchall()]
        return self.rng.sample(active, int(len(active) * share))


# ---------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_equal_sequential_calls(twins, seed):
    bulk, sequential = twins
    work = Workload(seed, bulk)
    queued: set[str] = set()
    for step in range(12):
        for conn in twins:
            at(conn, T0 + timedelta(minutes=7 * step))
        requests = work.batch(work.rng.randint(1, 14))
        batch = assign_many(bulk, requests)
        one_by_one = [call(sequential, "auto_assign", r) for r in requests]
        assert normal(batch) == normal(one_by_one), f"step {step}: {requests}"
        queued |= {r["work_item_id"] for r, result in zip(requests, batch, strict=True) if result["status"] == "queued"}
        if step % 2:
            done = work.completions(bulk, 0.5)
            batch = complete_many(bulk, [{"assignment_id": a} for a in active_ids(bulk, done)])
            one_by_one = [complete(sequential, a) for a in active_ids(sequential, done)]
            assert normal(batch) == normal(one_by_one), f"step {step}: completing {done}"
    statuses = {r["status"] for r in normal(tables(bulk)["assignments"])}
    assert statuses == {"assigned", "completed"}
    assert tables(bulk)["assignment_queue"], "some items should be waiting: the units are small"
    drained = bulk.execute("SELECT count(*) FROM assignments WHERE work_item_id = ANY (%s)", [sorted(queued)])
    assert drained.fetchone()[0] > 0, "completions should have handed queued items to the people they freed"
    assert_same_state(bulk, sequential, set(work.filed))


def concurrently(url: str, when: datetime, jobs: list[tuple[str, list[dict]]]) -> tuple[dict, list[str]]:
    """Each (function, requests) on its own connection, all let go at once; results by job index."""
    start, errors, results = threading.Barrier(len(jobs)), [], {}

    def run(n, function, requests):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                at(conn, when)
                start.wait()
                results[n] = conn.execute(f"SELECT {function}(%s::jsonb[])",
                                          [[Jsonb(r) for r in requests]]).fetchone()[0]
        except psycopg.Error as exc:
            errors.append(f"{function}: {exc.sqlstate} {exc}")

    threads = [threading.Thread(target=run, args=(n, *job)) for n, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def test_concurrent_batches_in_opposite_orders_and_completions_do_not_deadlock(twins, pg_cluster):
    """The batch takes every lock it will need first, in the engine's order: two batches filing
    the same items in opposite orders, beside a batch of completions in the same units, each
    wait for the other rather than deadlock (PostgreSQL would abort one with 40P01)."""
    bulk, _ = twins
    url = pg_cluster.url_for(bulk.info.dbname)
    at(bulk, T0)
    running = assign_many(bulk, [{"work_item_id": f"run-{n}", "work_item_type": TYPES[n % 4], "priority": "low"}
                                 for n in range(12)])
    to_complete = [{"assignment_id": r["assignment_id"]} for r in running if r["status"] == "assigned"]
    assert to_complete
    for round_ in range(4):
        items = [{"work_item_id": f"r{round_}-{n}", "work_item_type": TYPES[n % 4], "priority": PRIORITIES[n % 4]}
                 for n in range(16)]
        jobs = [("auto_assign_many", items), ("auto_assign_many", items[::-1]),
                ("complete_assignments_many", to_complete if round_ == 0 else [])]
        results, errors = concurrently(url, T0 + timedelta(minutes=round_), jobs)
        assert errors == []
        first, second = results[0], results[1][::-1]          # one of them filed each item, the other found it
        assert [a["existing"] != b["existing"] for a, b in zip(first, second, strict=True)] == [True] * len(items)
    assert_invariants(bulk, {f"r{round_}-{n}" for round_ in range(4) for n in range(16)})


def test_a_duplicate_inside_the_batch_returns_the_first_ones_result(twins):
    bulk, _ = twins
    at(bulk, T0)
    item = {"work_item_id": "dup-1", "work_item_type": "ticket", "priority": "normal"}
    first, again = assign_many(bulk, [item, item])
    assert first["existing"] is False and again["existing"] is True
    assert again["assignment_id"] == first["assignment_id"]
    assert bulk.execute("SELECT count(*) FROM assignments WHERE work_item_id = 'dup-1'").fetchone()[0] == 1


def test_an_empty_batch_returns_an_empty_list(twins):
    bulk, _ = twins
    assert assign_many(bulk, []) == [] and complete_many(bulk, []) == []


@pytest.mark.parametrize("bad, field, words", [
    ({"work_item_id": "x", "work_item_type": "ticket", "priority": "whenever"}, "requests[2].priority",
     "unknown priority"),
    ({"work_item_type": "ticket", "priority": "low"}, "requests[2].work_item_id", "is required"),
    ({"work_item_id": "x", "work_item_type": "ticket", "priority": "low", "required_skills": ["skill-nope"]},
     "requests[2].required_skills", "unknown skill"),
    ("not an object", "requests[2]", "expected a JSON object"),
])
def test_a_bad_request_refuses_the_whole_batch_naming_its_index_and_field(twins, bad, field, words):
    bulk, _ = twins
    before = tables(bulk)
    good = [{"work_item_id": f"ok-{n}", "work_item_type": "ticket", "priority": "low"} for n in range(2)]
    with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
        assign_many(bulk, [*good, bad, *good])
    assert error.value.diag.column_name == field
    assert error.value.diag.message_primary.startswith(f"{field}: ") and words in error.value.diag.message_primary
    assert tables(bulk) == before


def test_a_bad_completion_refuses_the_whole_batch(twins):
    bulk, _ = twins
    at(bulk, T0)
    made = assign_many(bulk, [{"work_item_id": f"c-{n}", "work_item_type": "ticket", "priority": "low"}
                              for n in range(3)])
    ids = [{"assignment_id": r["assignment_id"]} for r in made if r["status"] == "assigned"]
    before = tables(bulk)
    for bad, field in (({"assignment_id": "nope"}, "requests[1].assignment_id"),
                       ({}, "requests[1].assignment_id"),
                       (ids[0], "requests[1].assignment_id")):          # the same one twice: already completed
        with pytest.raises(psycopg.errors.InvalidParameterValue) as error:
            complete_many(bulk, [ids[0], bad, *ids[1:]])
        assert error.value.diag.column_name == field
        assert tables(bulk) == before


def test_too_many_requests_are_refused(twins):
    bulk, _ = twins
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 1000"):
        assign_many(bulk, [{}] * 1001)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="requests: is required"):
        bulk.execute("SELECT auto_assign_many(NULL)")


def test_refused_callers_write_nothing(twins):
    bulk, _ = twins
    at(bulk, T0)
    made = assign_many(bulk, [{"work_item_id": "mine", "work_item_type": "ticket", "priority": "low"}])
    before = tables(bulk)
    stranger = {"role": "authenticated", "sub": uid(9999)}
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="auto_assign_many"):
        with claims(bulk, "authenticated", stranger):
            assign_many(bulk, [{"work_item_id": "theirs", "work_item_type": "ticket", "priority": "low"}])
    # a colleague may file work but not complete someone else's: the refusal names the request
    colleague = {"role": "authenticated", "sub": uid(102) if made[0]["assignee_id"] == uid(101) else uid(101)}
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"^requests\[0\]: complete_assignment"):
        with claims(bulk, "authenticated", colleague):
            complete_many(bulk, [{"assignment_id": made[0]["assignment_id"]}])
    assert tables(bulk) == before
