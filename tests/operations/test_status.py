"""`rulesctl status` against a real engine: figures checked against a hand-made fixture, the
JSON shape, drift, pg_cron jobs (and a database without pg_cron), --watch."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from engine_calls import at, call, scalar, uid

from engine.operations.status import read_status
from engine.operations.status_text import as_text

pytestmark = pytest.mark.db


def ticket(conn, work_item_id: str, **extra):
    return call(conn, "auto_assign", {"work_item_id": work_item_id, "work_item_type": "ticket",
                                      "priority": "normal", **extra})


@pytest.fixture
def fixture(conn):
    """unit-it-support: Ann (WIP 3) and Bob (WIP 2) hold t1..t4, t2 then completed late: load 3 of
    5. unit-hr: Cid on leave, two tickets queued for it. Deadlines set by hand: t1 passed an hour
    ago (open), t2 a minute before its completion, t3 30 hours ago (open), t4 in an hour with a
    warning level passed. Work arrived three hours ago (engine clock); status reads the real now."""
    start = datetime.now(UTC) - timedelta(hours=3)
    call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-it-support", "full_name": "Ann", "wip_limit": 3})
    call(conn, "upsert_staff_profile", {"id": uid(2), "unit_id": "unit-it-support", "full_name": "Bob", "wip_limit": 2})
    call(conn, "upsert_staff_profile", {"id": uid(3), "unit_id": "unit-hr", "full_name": "Cid", "wip_limit": 3,
                                        "availability_status": "on_leave"})
    at(conn, start)
    ids = {n: ticket(conn, f"t{n}")["assignment_id"] for n in (1, 2, 3, 4)}
    at(conn, start + timedelta(minutes=10))
    assert ticket(conn, "hr-1", target_unit_id="unit-hr")["status"] == "queued"
    at(conn, start + timedelta(minutes=20))
    assert ticket(conn, "hr-2", target_unit_id="unit-hr")["status"] == "queued"
    at(conn, start + timedelta(hours=1))
    conn.execute("SELECT complete_assignment(%s)", [ids[2]])
    conn.execute("RESET rulesctl.now")
    deadlines = {1: "now() - interval '1 hour'", 2: "completed_at - interval '1 minute'",
                 3: "now() - interval '30 hours'", 4: "now() + interval '1 hour'"}
    for n, deadline in deadlines.items():
        conn.execute(f"UPDATE assignments SET sla_deadline = {deadline} WHERE id = %s", [ids[n]])
    conn.execute("UPDATE assignments SET escalation_level = 1 WHERE id = %s", [ids[4]])
    conn.execute("UPDATE assignment_queue SET sla_deadline = now() - interval '5 minutes' WHERE work_item_id = 'hr-2'")
    conn.execute("INSERT INTO escalation_events (assignment_id, level, reason, escalated_at) VALUES "
                 "(%s, 1, 'sla_warning', now() - interval '1 hour'), (%s, 2, 'sla_breach', now() - interval '2 days')",
                 [ids[4], ids[3]])
    return {"start": start, "ids": ids}


def test_the_figures_are_those_of_the_fixture(fixture, engine_url):
    status = read_status(engine_url)
    units = {unit.unit_id: unit for unit in status.units}
    desk, hr = units["unit-it-support"], units["unit-hr"]
    assert (desk.staff, desk.available, desk.load, desk.capacity, desk.utilisation) == (2, 2, 3, 5, 60.0)
    assert (desk.queue_depth, desk.oldest_queued_at, desk.queued_overdue) == (0, None, 0)
    assert (hr.staff, hr.available, hr.load, hr.capacity, hr.utilisation) == (1, 0, 0, 0, None)
    assert (hr.queue_depth, hr.queued_overdue) == (2, 1)
    assert hr.oldest_queued_at == fixture["start"] + timedelta(minutes=10)
    assert status.sla == {"breaches_24h": 2, "at_risk": 1, "overdue": 2}
    assert status.escalations_24h == {"sla_warning": 1}
    assert status.jobs is None and status.cron_note.startswith("pg_cron not installed")
    assert (status.drift, status.drifted) == (False, [])
    assert status.last_apply is not None and (status.last_apply["id"], status.last_apply["outcome"]) == (1, "applied")
    text = as_text(status)
    assert "unit-it-support" in text and "3/5" in text and "60%" in text
    assert "SLA: 2 breach(es) in the last 24 h; 1 running item(s) at risk; 2 overdue now" in text
    assert "Jobs: pg_cron not installed in this database" in text
    assert "Drift: no (" in text and "Last apply: #1 applied" in text


def test_status_reads_in_a_read_only_transaction_and_changes_nothing(fixture, engine_url, conn):
    before = conn.execute("SELECT count(*), sum(version), max(updated_at) FROM assignments").fetchone()
    status = read_status(engine_url)
    assert status.read_only is True
    assert conn.execute("SELECT count(*), sum(version), max(updated_at) FROM assignments").fetchone() == before


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_json_shape_without_pg_cron(engine_url, tmp_path):
    done = run_cli("status", "--format", "json", "--database-url", engine_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"checked_at", "engine_now", "units", "sla", "escalations_24h", "escalations_24h_total",
                         "jobs", "cron_note", "drift", "drifted", "managed", "last_apply", "timings", "read_only",
                         "totals"}
    assert data["jobs"] is None and data["cron_note"].startswith("pg_cron not installed")
    assert set(data["units"][0]) == {"unit_id", "name", "retired", "staff", "available", "load", "capacity",
                                     "utilisation", "queue_depth", "oldest_queued_at", "queued_overdue"}
    assert [unit["unit_id"] for unit in data["units"]] == sorted(unit["unit_id"] for unit in data["units"])
    assert data["sla"] == {"breaches_24h": 0, "at_risk": 0, "overdue": 0}
    assert data["drift"] is False and data["managed"] > 400
    assert set(data["last_apply"]) >= {"id", "outcome", "at", "policy_hash", "git_commit", "applied_by"}
    assert set(data["timings"]) == {"figures", "jobs_and_ledger", "drift"}


def test_a_trigger_disabled_by_hand_is_drift(engine_url, conn):
    conn.execute("ALTER TABLE staff_skills DISABLE TRIGGER staff_skills_sync_trigger")
    status = read_status(engine_url)
    assert (status.drift, status.drifted) == (True, ["trigger:public.staff_skills_sync_trigger"])
    assert "Drift: YES, 1 object(s) changed outside rulesctl: trigger:public.staff_skills_sync_trigger" in as_text(
        status)


def test_a_database_without_the_engine_is_a_clear_error(database_url, tmp_path):
    done = run_cli("status", "--database-url", database_url, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: no engine in this database (engine_now() is missing): install it with "
                                   "`rulesctl apply`")


def test_pg_cron_jobs_with_their_last_run_and_failures(cron_database_url, shipped_objects):
    from engine.migrate.apply import apply
    policy, objects = shipped_objects
    apply(cron_database_url, objects, policy)
    marker = f"status-test-{uuid.uuid4()}"
    with psycopg.connect(cron_database_url, autocommit=True) as conn:
        job = scalar(conn, "SELECT jobid FROM cron.job WHERE jobname = 'capacity-snapshot'")
        conn.execute("""INSERT INTO cron.job_run_details (jobid, runid, status, return_message, start_time, end_time)
                        SELECT %s, nextval('cron.runid_seq'), s, m, now() - o, now() - o + interval '1.5 seconds'
                        FROM (VALUES ('succeeded', '1 row', interval '3 hours'), ('failed', %s, interval '2 hours'),
                                     ('succeeded', '1 row', interval '25 hours')) v(s, m, o)""", [job, marker])
        try:
            status = read_status(cron_database_url)
        finally:
            conn.execute("DELETE FROM cron.job_run_details WHERE jobid = %s AND start_time < now() - interval '1 hour'",
                         [job])
    assert status.jobs is not None and status.cron_note.startswith("pg_cron ")
    jobs = {job.name: job for job in status.jobs}
    assert {name for name, _ in policy_jobs(policy)} <= set(jobs)
    snapshot = jobs["capacity-snapshot"]
    assert (snapshot.schedule, snapshot.active, snapshot.last_status, snapshot.runs_24h, snapshot.failures_24h,
            snapshot.last_failure) == ("0 0 * * *", True, "failed", 2, 1, marker)
    assert snapshot.last_seconds == pytest.approx(1.5)
    assert f"last failure: {marker}" in as_text(status)


def policy_jobs(policy):
    return [(job.name, job.schedule) for job in policy.jobs]


def test_watch_refreshes_until_interrupted(engine_url, tmp_path):
    # SIGINT back to its default in the child: a suite started in the background by a shell runs
    # with SIGINT ignored, which the child would inherit -- and Python then installs no
    # KeyboardInterrupt handler, so the interrupt below would go unheard (CI timed out on it).
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "status", "--watch", "1", "--database-url",
                                engine_url], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupted after its second refresh (not after a fixed sleep: on a loaded machine the first
    # one alone can take seconds).
    seen = ""
    deadline = time.monotonic() + 60
    while seen.count("rulesctl status at") < 2 and time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stdout], [], [], 1)[0]:
            seen += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert (seen + out).count("rulesctl status at") >= 2
