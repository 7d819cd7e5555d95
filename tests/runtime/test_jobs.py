"""The scheduled jobs of rules/jobs.yaml, run by pg_cron, and engine_health.

pg_cron lives in one database of the cluster (cron_database_url, Debian's pg_cron 1.4): the
shipped policy is installed there and the jobs really run. Everywhere else (engine_url and
fresh databases) pg_cron is absent: the install says which jobs were not scheduled and how to
run them, and engine_health reports degraded. The only sleeping here is waiting for pg_cron.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from engine_calls import call, scalar
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

JOBS = {
    # name: (schedule on pg_cron < 1.5, command, schedule in words in generated/)
    "sla-monitoring": ("* * * * *",
                       "CALL public.run_every_seconds('SELECT public.sla_check_and_escalate(1000)', 30, 1000)",
                       "every 30 seconds"),
    "capacity-snapshot": ("0 0 * * *", "SELECT public.capture_capacity_snapshot()", "at 00:00 (UTC)"),
    "queue-fallback-processor": ("* * * * *", "SELECT public.process_stale_queue_items()", "every minute (UTC)"),
    "escalation-cleanup": ("0 2 * * *", "SELECT public.cleanup_escalation_events()", "at 02:00 (UTC)"),
    "event-relay": ("* * * * *",
                    "CALL public.run_every_seconds('SELECT public.relay_engine_events(500)', 1, 500)",
                    "every second"),
    "leave-return": ("* * * * *", "CALL public.run_batches('SELECT public.return_staff_from_leave(100)', 100, 55)",
                     "every minute (UTC)"),
}
FUNCTIONS = {"sla-monitoring": "sla_check_and_escalate", "capacity-snapshot": "capture_capacity_snapshot",
             "queue-fallback-processor": "process_stale_queue_items",
             "escalation-cleanup": "cleanup_escalation_events", "event-relay": "relay_engine_events",
             "leave-return": "return_staff_from_leave"}
NO_CRON_REASON = "pg_cron is not installed in this database: the scheduled jobs do not run"
REALTIME = ["assignment_queue", "assignments", "escalation_events"]
RIYADH = timezone(timedelta(hours=3))

_cron_install: dict = {}


def install(url, policy, objects, rules_dir: Path = Path("rules")):
    """`rulesctl apply` from Python."""
    from engine.migrate.apply import apply

    return apply(url, objects, policy, rules_dir=rules_dir)


def install_on_cron_database(url, shipped_objects):
    """Install the shipped policy where pg_cron lives (once per session; a repeat is a no-op)."""
    policy, objects = shipped_objects
    result = install(url, policy, objects)
    _cron_install.setdefault("first", result)
    return _cron_install["first"]


def cron_version(conn) -> tuple[int, ...]:
    text = scalar(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")
    return tuple(int(p) for p in re.match(r"[0-9]+(?:\.[0-9]+)*", text).group(0).split("."))


# ---------------------------------------------------------------------------------------- pg_cron present

def test_the_jobs_are_scheduled_by_name(cron_database_url, shipped_objects):
    result = install_on_cron_database(cron_database_url, shipped_objects)
    with psycopg.connect(cron_database_url, autocommit=True) as conn:
        assert scalar(conn, "SELECT current_setting('cron.database_name')") == scalar(conn, "SELECT current_database()")
        version = cron_version(conn)
        jobs = {r[0]: r[1:] for r in conn.execute(
            "SELECT jobname, schedule, command, active, database FROM cron.job WHERE jobname = ANY(%s)",
            [list(JOBS)]).fetchall()}
        assert set(jobs) == set(JOBS)
        assert scalar(conn, "SELECT count(*) FROM cron.job WHERE jobname = ANY(%s)", list(JOBS)) == len(JOBS)
        for name, (schedule, command, _) in JOBS.items():
            got_schedule, got_command, active, database = jobs[name]
            if name == "sla-monitoring" and version >= (1, 5):
                assert (got_schedule, got_command) == (
                    "30 seconds", "CALL public.run_batches('SELECT public.sla_check_and_escalate(1000)', 1000, 30)")
            else:
                assert (got_schedule, got_command) == (schedule, command), name
            assert active is True
            assert database == scalar(conn, "SELECT current_database()")
        assert version < (1, 5), "Debian's pg_cron is 1.4; this test expects the fallback"
        # The fallback is a procedure that commits each run.
        assert scalar(conn, "SELECT prokind FROM pg_proc WHERE proname = 'run_every_seconds'"
                            " AND pronamespace = 'public'::regnamespace") == "p"

    # The install said so, plainly.
    assert result.outcome == "applied"
    fallback = [n for n in result.notes if "sla-monitoring" in n]
    assert len(fallback) == 1, result.notes
    assert "every minute" in fallback[0] and "30 s" in fallback[0] and "sla_check_and_escalate" in fallback[0]
    assert "cannot schedule in seconds" in fallback[0]
    assert not any("not scheduled" in n for n in result.notes), result.notes

    # Installing again changes nothing and leaves one job per name.
    policy, objects = shipped_objects
    assert install(cron_database_url, policy, objects).outcome == "no_change"
    with psycopg.connect(cron_database_url) as conn:
        assert scalar(conn, "SELECT count(*) FROM cron.job WHERE jobname = ANY(%s)", list(JOBS)) == len(JOBS)


def test_pg_cron_runs_the_jobs_and_health_is_healthy(cron_database_url, shipped_objects):
    install_on_cron_database(cron_database_url, shipped_objects)
    with psycopg.connect(cron_database_url, autocommit=True) as conn:
        started = scalar(conn, "SELECT now()")
        # An urgent ticket that arrived three hours ago (this session's clock only): every level of
        # its chain is due, and its response deadline (15 min) long past; the sla-monitoring job, on
        # the real clock, must find it: four levels and one response breach.
        desk = str(uuid.uuid4())
        call(conn, "upsert_staff_profile", {"id": desk, "unit_id": "unit-it-support", "full_name": "Cron Desk",
                                            "wip_limit": 50})
        conn.execute("SELECT set_config('rulesctl.now', %s, false)",
                     [(started - timedelta(hours=3)).isoformat()])
        ticket = call(conn, "auto_assign", {"work_item_id": f"cron-{uuid.uuid4()}", "work_item_type": "ticket",
                                            "priority": "urgent"})
        assert ticket["status"] == "assigned"
        conn.execute("RESET rulesctl.now")
        assert scalar(conn, "SELECT count(*) FROM escalation_events WHERE assignment_id = %s",
                      ticket["assignment_id"]) == 0

        def runs(job):
            return conn.execute(
                "SELECT d.status, d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
                " WHERE j.jobname = %s AND d.start_time >= %s ORDER BY d.start_time", [job, started]).fetchall()

        deadline = time.monotonic() + 130
        fallback_ok = escalated = monitor_ok = relayed = False
        while time.monotonic() < deadline and not (fallback_ok and escalated and monitor_ok and relayed):
            fallback_ok = any(status == "succeeded" for status, _ in runs("queue-fallback-processor"))
            escalated = scalar(conn, "SELECT count(*) FROM escalation_events WHERE assignment_id = %s",
                               ticket["assignment_id"]) == 5
            monitor_ok = any(status == "succeeded" for status, _ in runs("sla-monitoring"))
            # the event-relay job (every second, inside one per-minute run) empties the outbox
            relayed = escalated and scalar(conn, "SELECT count(*) FROM engine_events") == 0
            time.sleep(1)                              # waiting for pg_cron, the one sleep allowed
        assert fallback_ok, f"queue-fallback-processor did not succeed in time: {runs('queue-fallback-processor')}"
        assert escalated, "the sla-monitoring job did not escalate the overdue ticket"
        assert monitor_ok, f"sla-monitoring (the 30 s fallback) did not finish a run: {runs('sla-monitoring')}"
        assert relayed, "the event-relay job did not send the escalations' notifications"
        assert not [r for job in JOBS for r in runs(job) if r[0] == "failed"]
        levels = conn.execute("SELECT level, reason::text, recipient_id::text FROM escalation_events"
                              " WHERE assignment_id = %s ORDER BY level", [ticket["assignment_id"]]).fetchall()
        assert [(lv, reason) for lv, reason, _ in levels] == [(1, "sla_warning"), (2, "sla_warning"),
                                                              (3, "sla_breach"), (4, "sla_breach"),
                                                              (None, "response_breach")]
        assert levels[0][2] == levels[4][2] == desk          # the response breach goes where level 1 does

        health = scalar(conn, "SELECT engine_health()")
        assert health["status"] == "healthy", health["reasons"]
        assert health["reasons"] == []
        checks = health["checks"]
        assert [j["name"] for j in checks["pg_cron_jobs"]] == list(JOBS)
        for job in checks["pg_cron_jobs"]:
            assert job["scheduled"] is True and job["active"] is True, job
        by_name = {j["name"]: j for j in checks["pg_cron_jobs"]}
        assert by_name["queue-fallback-processor"]["last_run"]["status"] in ("succeeded", "running")
        assert by_name["queue-fallback-processor"]["schedule"] == "* * * * *"
        assert by_name["escalation-cleanup"]["schedule"] == "0 2 * * *"
        assert checks["database"]["ok"] is True
        assert sorted(checks["realtime"]["tables"]) == REALTIME
        assert checks["escalations_last_24h"] >= 4


def test_health_degrades_when_a_job_is_unscheduled(cron_database_url, shipped_objects):
    install_on_cron_database(cron_database_url, shipped_objects)
    with psycopg.connect(cron_database_url, autocommit=True) as conn:
        job = conn.execute("SELECT jobid, schedule, command FROM cron.job WHERE jobname = 'escalation-cleanup'"
                           ).fetchone()
        try:
            with conn.transaction():
                conn.execute("SELECT cron.unschedule('escalation-cleanup')")
                health = scalar(conn, "SELECT engine_health()")
                raise _Rollback
        except _Rollback:
            pass
        assert health["status"] == "degraded"
        assert "job escalation-cleanup is not scheduled" in health["reasons"]
        assert {j["name"]: j["scheduled"] for j in health["checks"]["pg_cron_jobs"]}["escalation-cleanup"] is False
        # Rolled back: the job is still there.
        assert conn.execute("SELECT jobid, schedule, command FROM cron.job WHERE jobname = 'escalation-cleanup'"
                            ).fetchone() == job


class _Rollback(Exception):
    pass


# ---------------------------------------------------------------------------------------- pg_cron absent

def test_without_pg_cron_the_install_names_the_unscheduled_jobs(database_url, shipped_objects):
    policy, objects = shipped_objects
    result = install(database_url, policy, objects)
    assert result.outcome == "applied"                      # the install does not fail
    with psycopg.connect(database_url) as conn:
        name = scalar(conn, "SELECT current_database()")
        assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 0
        assert scalar(conn, "SELECT to_regnamespace('cron')") is None
    where = [n for n in result.notes if "pg_cron lives in database" in n]
    assert len(where) == 1 and f"not {name}" in where[0], result.notes
    for job, function in FUNCTIONS.items():
        said = [n for n in result.notes if f"job {job} not scheduled" in n]
        assert len(said) == 1, (job, result.notes)
        assert f"SELECT public.{function}(" in said[0]         # how to run it instead


def test_without_pg_cron_health_is_degraded_with_the_reason(engine_url):
    with psycopg.connect(engine_url) as conn:
        health = scalar(conn, "SELECT engine_health()")
    assert health["status"] == "degraded"
    assert health["reasons"] == [NO_CRON_REASON]
    assert health["checks"]["pg_cron_jobs"] == []


def test_health_fields(engine_url, shipped_objects):
    policy, _ = shipped_objects
    t0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)
    with psycopg.connect(engine_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [t0.isoformat()])
        health = scalar(conn, "SELECT engine_health()")
        assert set(health) >= {"status", "reasons", "version", "checks"}
        assert health["version"]["policy_hash"] == policy.policy_hash
        assert health["version"]["applied_at"] is not None
        checks = health["checks"]
        assert set(checks) >= {"database", "pg_cron_jobs", "realtime", "queue", "escalations_last_24h"}
        assert checks["database"]["ok"] is True
        assert checks["database"]["server_version"].startswith("15")
        assert checks["realtime"]["publication"] == "supabase_realtime"
        assert sorted(checks["realtime"]["tables"]) == REALTIME
        assert checks["queue"] == {"depth": 0, "oldest_queued_at": None}
        assert checks["escalations_last_24h"] == 0

        # Two queued items (nobody works in Human Resources) and an escalated ticket.
        for minutes, item in ((5, "hr-1"), (20, "hr-2")):
            when = t0 + timedelta(minutes=minutes)
            conn.execute("SELECT set_config('rulesctl.now', %s, false)", [when.isoformat()])
            queued = call(conn, "auto_assign", {"work_item_id": item, "work_item_type": "translation_request",
                                                "priority": "normal", "target_unit_id": "unit-hr"})
            assert queued["status"] == "queued"
        call(conn, "upsert_staff_profile", {"id": str(uuid.UUID(int=1)), "unit_id": "unit-it-support",
                                            "full_name": "Desk"})
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [t0.isoformat()])
        call(conn, "auto_assign", {"work_item_id": "tk-1", "work_item_type": "ticket", "priority": "urgent"})
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [(t0 + timedelta(hours=3)).isoformat()])
        assert scalar(conn, "SELECT sla_check_and_escalate()") == 5      # four levels and the response breach

        health = scalar(conn, "SELECT engine_health()")
        assert health["checks"]["queue"]["depth"] == 2
        assert datetime.fromisoformat(health["checks"]["queue"]["oldest_queued_at"]) == t0 + timedelta(minutes=5)
        assert health["checks"]["escalations_last_24h"] == 5
        conn.execute("SELECT set_config('rulesctl.now', %s, false)", [(t0 + timedelta(hours=28)).isoformat()])
        assert scalar(conn, "SELECT engine_health()")["checks"]["escalations_last_24h"] == 0


# ---------------------------------------------------------------------------------------- in words

def test_generated_sql_describes_each_schedule_in_words(repo_root):
    text = (repo_root / "generated" / "jobs" / "pg_cron.sql").read_text()
    for name, (_, _, words) in JOBS.items():
        # no origin: SQL holds no path
        assert re.search(rf"^-- {re.escape(name)}: {re.escape(words)}$", text, re.M), name
    # The fallback and the missing-pg_cron path are spelled out in the SQL a reviewer reads.
    assert "pg_cron before 1.5 cannot schedule in seconds" in text
    assert "'30 seconds'" in text
    assert "run it yourself" in text


def test_schedules_in_words_tell_hourly_from_every_minute():
    from engine.compiler.render import schedule_in_words

    assert schedule_in_words("0 * * * *") == "every hour (UTC)"
    assert schedule_in_words("* * * * *") == "every minute (UTC)"
    assert schedule_in_words("0 2 * * *") == "at 02:00 (UTC)"
    assert schedule_in_words("30 seconds") == "every 30 seconds"
