"""Arrival order in the queue: items queued at one instant (one transaction's clock, one
auto_assign_many batch, arrivals a simulation replays at one virtual time) are served, listed
and numbered in the order they were filed -- the queue's `seq` -- never by their random ids.
And the leave policy moves equal work in a fixed order (assigned_at, work_item_id).

Each case files enough items that their random ids would come out in filing order only by
chance (1 in 8! for eight items)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from cluster_support import REPO_ROOT
from engine_calls import at, call, scalar
from psycopg.types.json import Jsonb

from engine.cli import cli

pytestmark = pytest.mark.db

T0 = datetime(2027, 1, 4, 10, 0, tzinfo=ZoneInfo("Asia/Riyadh"))     # a Monday, in office hours
DESK = str(uuid.UUID(int=0xD1))
COLLEAGUE = str(uuid.UUID(int=0xD2))
FILED = [f"tk-{name}" for name in ("kilo", "alpha", "zulu", "echo", "mike", "bravo", "yankee", "delta")]


def staff(conn, staff_id: str, wip_limit: int) -> None:
    call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": "unit-it-support", "full_name": staff_id[-4:],
                                        "wip_limit": wip_limit})


def ticket(work_item_id: str, priority: str = "normal") -> dict:
    return {"work_item_id": work_item_id, "work_item_type": "ticket", "priority": priority}


def full_desk(conn) -> str:
    """One person at unit-it-support, busy with one ticket: what arrives next is queued."""
    at(conn, T0 - timedelta(minutes=5))
    staff(conn, DESK, 1)
    busy = call(conn, "auto_assign", ticket("tk-busy"))
    assert busy["status"] == "assigned"
    return busy["assignment_id"]


def queued_order(conn) -> dict[str, list[str]]:
    """The queue as every reader sees it: by seq, by the view's positions, by queue_head's
    positions and by queue_position."""
    return {
        "seq": [r[0] for r in conn.execute("SELECT work_item_id FROM assignment_queue ORDER BY seq")],
        "view": [r[0] for r in conn.execute("SELECT work_item_id FROM assignment_queue_ordered ORDER BY position")],
        "head": [r[0] for r in conn.execute(
            "SELECT work_item_id FROM queue_head('unit-it-support', 50) ORDER BY position")],
        "queue_position": [r[0] for r in conn.execute(
            "SELECT work_item_id FROM assignment_queue ORDER BY queue_position(id)")],
    }


def drain(conn, assignment_id: str, count: int) -> list[str]:
    """Complete the desk's current work `count` times: what each freed slot took from the queue."""
    taken = []
    for _ in range(count):
        conn.execute("SELECT complete_assignment(%s)", [assignment_id])
        work_item_id, assignment_id = conn.execute(
            "SELECT work_item_id, id FROM assignments WHERE assignee_id = %s AND status = 'assigned'",
            [DESK]).fetchone()
        taken.append(work_item_id)
    return taken


def test_a_batch_filed_at_one_instant_is_queued_and_served_in_filing_order(conn):
    busy = full_desk(conn)
    at(conn, T0)
    results = conn.execute("SELECT auto_assign_many(%s::jsonb[])", [[Jsonb(ticket(w)) for w in FILED]]).fetchone()[0]
    assert [r["status"] for r in results] == ["queued"] * len(FILED)
    assert [r["position"] for r in results] == list(range(1, len(FILED) + 1))
    assert scalar(conn, "SELECT count(DISTINCT created_at) FROM assignment_queue") == 1     # one instant
    assert queued_order(conn) == dict.fromkeys(("seq", "view", "head", "queue_position"), FILED)
    assert drain(conn, busy, len(FILED)) == FILED


def test_consecutive_calls_at_one_engine_time_are_served_in_filing_order(conn):
    """Separate transactions, one `rulesctl.now`: created_at ties, seq does not. An item filed
    between them at a higher priority still goes first, and the rest keep their order."""
    busy = full_desk(conn)
    at(conn, T0)
    filed = FILED[:4] + ["tk-urgent"] + FILED[4:]
    positions = [call(conn, "auto_assign", ticket(w, "low" if w != "tk-urgent" else "normal"))["position"]
                 for w in filed]
    assert positions == [1, 2, 3, 4, 1, 6, 7, 8, 9]       # each learns its place before it is filed
    served = ["tk-urgent"] + FILED
    assert queued_order(conn)["view"] == served
    assert queued_order(conn)["head"] == served
    assert queued_order(conn)["queue_position"] == served
    assert drain(conn, busy, len(served)) == served


def test_the_fallback_sweep_serves_ties_in_filing_order(conn):
    """process_stale_queue_items: a person with room, and items put in the queue at one
    instant behind the engine's back (a wake-up that never came)."""
    at(conn, T0)
    staff(conn, DESK, 3)
    with conn.transaction():
        for work_item_id in FILED:
            conn.execute("INSERT INTO assignment_queue (work_item_id, work_item_type, priority, target_unit_id,"
                         " created_at, arrived_at) VALUES (%s, 'ticket', 'normal', 'unit-it-support', %s, %s)",
                         [work_item_id, T0, T0])
    assert scalar(conn, "SELECT process_stale_queue_items(3)") == 3
    taken = conn.execute("SELECT work_item_id FROM assignments ORDER BY assigned_at, work_item_id").fetchall()
    assert sorted(w for (w,) in taken) == sorted(FILED[:3])
    assert queued_order(conn)["view"] == FILED[3:]


def test_leave_moves_equal_work_in_work_item_order(conn):
    """Five high tickets of one person, assigned at one instant with one deadline: going on
    leave, the colleague with room for one gets the first by work_item_id, the others are
    queued again in that order."""
    at(conn, T0)
    staff(conn, DESK, 10)
    for work_item_id in FILED[:5]:
        assert call(conn, "auto_assign", ticket(work_item_id, "high"))["assignee_id"] == DESK
    assert scalar(conn, "SELECT count(DISTINCT (assigned_at, sla_deadline)) FROM assignments") == 1
    staff(conn, COLLEAGUE, 2)                                       # room for one high ticket (weight 2)
    at(conn, T0 + timedelta(minutes=10))
    result = call(conn, "set_staff_availability", {"staff_id": DESK, "status": "on_leave", "reason": "sick"})
    assert (result["reassigned"], result["queued"]) == (1, 4)
    in_order = sorted(FILED[:5])
    assert scalar(conn, "SELECT work_item_id FROM assignments WHERE assignee_id = %s AND status = 'assigned'",
                  COLLEAGUE) == in_order[0]
    assert queued_order(conn)["seq"] == in_order[1:]


def test_a_replay_of_arrivals_at_one_instant_gives_the_same_figures_twice(pg_cluster, tmp_path):
    """rulesctl simulate, same inputs and seed: 120 tickets arriving at one instant for two
    desks, of varied handling times, so the order the queue serves them decides every wait.
    With the random id as the tie-break, two runs gave different waits (p50 48 vs 23.5 min)."""
    workload, staff = tmp_path / "ties.csv", tmp_path / "staff.csv"
    workload.write_text("arrived_at,work_item_id,work_item_type,priority,handling_minutes\n" + "".join(
        f"2027-01-04T09:00:00+03:00,T-{n:03d},ticket,normal,{5 + (n * 37) % 116}\n" for n in range(120)))
    staff.write_text("id,unit,role,wip_limit\ndesk-1,unit-it-support,staff,1\ndesk-2,unit-it-support,staff,1\n"
                     "head,unit-it-support,supervisor,0\n")
    runs = []
    for _ in range(2):
        result = CliRunner().invoke(cli, ["simulate", "--rules", str(REPO_ROOT / "rules"), "--workload", str(workload),
                                          "--staff", str(staff), "--format", "json",
                                          "--database-url", pg_cluster.url])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        summary.pop("timings")
        runs.append(summary)
    assert runs[0]["policies"]["proposed"]["wait_minutes"]["max"] > 60       # the order mattered
    assert runs[0] == runs[1]


def plans_of(conn, statement: str, *params) -> list[str]:
    """The plans of every statement `statement` runs, functions' inner statements included
    (auto_explain, sent back as notices), with actual row counts."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_level = notice",
                    "log_analyze = on", "log_timing = off"):
        conn.execute(f"SET auto_explain.{setting}")
    with conn.transaction(force_rollback=True):
        conn.execute(statement, params)
    conn.execute("SET auto_explain.log_min_duration = -1")
    return [n for n in notices if "Query Text:" in n]


def scans_of_queue(plan: str) -> list[tuple[str, int]]:
    """(how, rows per loop) of each read of assignment_queue in a plan."""
    return [(m.group(1), int(m.group(2))) for m in re.finditer(
        r"(Seq Scan|Index Scan using \w+|Index Only Scan using \w+|Bitmap Heap Scan) on assignment_queue \w*"
        r"[^\n]*?actual rows=(\d+)", plan)]


def test_the_head_probes_stay_index_probes_of_the_new_order(conn):
    """5,000 queued items of one instant, 4 priorities, half needing a skill: queue_head and a
    freed slot read a few rows off the seq-ordered indexes per probe -- never the whole queue."""
    at(conn, T0)
    staff(conn, DESK, 1)
    conn.execute("INSERT INTO assignment_queue (work_item_id, work_item_type, priority, target_unit_id,"
                 " required_skills, created_at, arrived_at)"
                 " SELECT 'q-' || g, 'ticket', (enum_range(NULL::priority_level))[1 + g %% 4], 'unit-it-support',"
                 " CASE WHEN g %% 2 = 0 THEN ARRAY['skill-sql'] ELSE '{}' END, %s, %s"
                 " FROM generate_series(1, 5000) g", [T0, T0])
    conn.execute("ANALYZE assignment_queue")
    (head,) = [p for p in plans_of(conn, "SELECT * FROM queue_head('unit-it-support', 50)") if "row_number()" in p]
    assert scans_of_queue(head) == [("Index Scan using idx_assignment_queue_target_priority", 50)]
    (everyone,) = [p for p in plans_of(conn, "SELECT * FROM queue_head(NULL, 50)") if "row_number()" in p]
    assert scans_of_queue(everyone) == [("Index Scan using idx_assignment_queue_priority_head", 50)]

    (probe,) = [p for p in plans_of(conn, "SELECT process_queue_on_capacity_change(%s)", DESK)
                if "Query Text: SELECT h.id" in p]
    assert {how for how, _ in scans_of_queue(probe)} == {"Index Scan using idx_assignment_queue_skill_head",
                                                         "Index Scan using idx_assignment_queue_subtree_head"}
    assert max(rows for _, rows in scans_of_queue(probe)) <= 1


def test_a_freed_slot_with_nothing_queued_for_it_reads_no_queue_rows(conn):
    """5,000 items queued for another unit: a completion in IT Support asks whether anything waits
    for this person's units with an index probe that finds nothing at once -- with LIMIT 1 alone
    the planner chose a scan of the whole queue, every row of it read on every completion."""
    at(conn, T0)
    staff(conn, DESK, 1)
    conn.execute("INSERT INTO assignment_queue (work_item_id, work_item_type, priority, target_unit_id,"
                 " required_skills, created_at, arrived_at)"
                 " SELECT 'q-' || g, 'ticket', (enum_range(NULL::priority_level))[1 + g %% 4], 'unit-translation',"
                 " '{}', %s, %s FROM generate_series(1, 5000) g", [T0, T0])
    conn.execute("ANALYZE assignment_queue")
    plans = plans_of(conn, "SELECT process_queue_on_capacity_change(%s)", DESK)
    reads = [scan for p in plans for scan in scans_of_queue(p)]
    assert reads and all(how.endswith("Scan using idx_assignment_queue_target_priority") and rows == 0
                         for how, rows in reads), plans
    assert not any("Query Text: SELECT h.id" in p for p in plans)       # no head probes: nothing to take
