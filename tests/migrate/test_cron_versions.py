"""Which form an 'N seconds' job gets from pg_cron, by version: an interval schedule
('30 seconds') on pg_cron 1.5 and later, a per-minute job looping within the minute
(run_every_seconds) on 1.4, and the plan saying which it chose and why.

Debian's pg_cron here is 1.4, so the 1.5+ path is tested by what the plan wants for a given
version (DesiredContext, build_plan(pg_cron_version=...)), by the rendered SQL, and by running
that SQL in a rolled-back transaction where pg_extension says 1.5: pg_cron 1.4 itself then
refuses the interval, which shows the 1.5 branch handed it over."""

from __future__ import annotations

import psycopg
import pytest

from engine.compiler.objects import ObjectKey
from engine.migrate.apply import DEFAULT_TEMPLATES
from engine.migrate.desired import parse_version
from engine.migrate.kinds.base import DesiredContext
from engine.migrate.kinds.cron_job import CronJob, effective_job
from engine.migrate.plan import build_plan

SWEEP_CALL = "SELECT public.sla_check_and_escalate(1000)"
INTERVAL = {"schedule": "30 seconds", "command": f"CALL public.run_batches('{SWEEP_CALL}', 1000, 30)",
            "active": True}
LOOP = {"schedule": "* * * * *", "command": f"CALL public.run_every_seconds('{SWEEP_CALL}', 30, 1000)",
        "active": True}


def job(policy, name: str):
    return next(j for j in policy.jobs if j.name == name)


@pytest.mark.parametrize(("text", "version"), [("1.4-1", (1, 4)), ("1.5", (1, 5)), ("1.6.4", (1, 6, 4)),
                                                ("0", (0,))])
def test_versions_read_as_pg_extension_writes_them(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize(("version", "expected"), [((1, 4), LOOP), ((1, 4, 2), LOOP), ((1, 5), INTERVAL),
                                                   ((1, 6, 4), INTERVAL), ((2, 0), INTERVAL)])
def test_a_seconds_job_is_an_interval_from_1_5_and_a_loop_before(shipped_objects, version, expected):
    policy, _ = shipped_objects
    assert effective_job(job(policy, "sla-monitoring"), "public", version) == expected


def test_cron_expression_jobs_are_the_same_on_every_version(shipped_objects):
    policy, _ = shipped_objects
    old = {o.name: o.definition for o in CronJob().desired(DesiredContext(policy, "public", (1, 4)))}
    new = {o.name: o.definition for o in CronJob().desired(DesiredContext(policy, "public", (1, 6)))}
    seconds = {j.name for j in policy.jobs if j.schedule.endswith(("second", "seconds"))}
    assert seconds == {"sla-monitoring", "event-relay"}
    assert {name for name in old if old[name] != new[name]} == seconds
    assert all(new[name]["schedule"] == job(policy, name).schedule for name in new)
    assert all(old[name]["schedule"] == "* * * * *" for name in seconds)
    assert CronJob().desired(DesiredContext(policy, "public", None)) == []      # no pg_cron: nothing scheduled


def test_the_rendered_job_chooses_by_the_installed_version(shipped_objects):
    _, objects = shipped_objects
    sql = next(o.sql for o in objects if o.key == ObjectKey("cron_job:sla-monitoring"))
    interval, _, loop = sql.partition("ELSE")
    assert "IF v_version >= ARRAY[1, 5] THEN" in interval
    assert ("PERFORM cron.schedule('sla-monitoring', '30 seconds', "
            "'CALL public.run_batches(''SELECT public.sla_check_and_escalate(1000)'', 1000, 30)');") in interval
    assert ("PERFORM cron.schedule('sla-monitoring', '* * * * *', "
            "'CALL public.run_every_seconds(''SELECT public.sla_check_and_escalate(1000)'', 30, 1000)');") in loop


@pytest.mark.db
def test_the_plan_says_which_form_it_chose_and_why(cron_database_url, shipped_objects):
    """Planning only (rolled back): the session's pg_cron database as it is (1.4), and as if its
    pg_cron were 1.6."""
    policy, objects = shipped_objects
    as_is = build_plan(cron_database_url, policy, objects, DEFAULT_TEMPLATES)
    upgraded = build_plan(cron_database_url, policy, objects, DEFAULT_TEMPLATES, pg_cron_version=(1, 6))
    sweep = [n for n in as_is.notes if n.startswith("job sla-monitoring")]
    assert sweep == ["job sla-monitoring: '30 seconds' needs pg_cron 1.5+; this pg_cron (1.4) runs it every minute, "
                     f"repeating within the minute ({LOOP['command']})"]
    sweep = [n for n in upgraded.notes if n.startswith("job sla-monitoring")]
    assert sweep == ["job sla-monitoring: scheduled as the interval '30 seconds' (pg_cron 1.6 takes interval "
                     "schedules; 1.4 would get a per-minute loop)"]
    step = next(s for s in upgraded.steps if s.key == ObjectKey("cron_job:sla-monitoring"))
    assert "'30 seconds' (every 30 seconds)" in step.reason
    assert not any(n.startswith("job capacity-snapshot") for n in as_is.notes + upgraded.notes)


@pytest.mark.db
def test_the_rendered_job_hands_pg_cron_1_5_the_interval(cron_database_url, shipped_objects):
    _, objects = shipped_objects
    sql = next(o.sql for o in objects if o.key == ObjectKey("cron_job:sla-monitoring"))
    with psycopg.connect(cron_database_url) as conn:
        with conn.transaction(force_rollback=True):          # the version pg_cron really has: the loop
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")       # (the first apply there makes it)
            conn.execute(sql)
            row = conn.execute("SELECT schedule, command FROM cron.job WHERE jobname = 'sla-monitoring'").fetchone()
            assert row == (LOOP["schedule"], LOOP["command"])
        with conn.transaction(force_rollback=True):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            conn.execute("UPDATE pg_extension SET extversion = '1.5' WHERE extname = 'pg_cron'")
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid schedule: 30 seconds") as refused:
                conn.execute(sql)
        assert INTERVAL["command"].replace("'", "''") in (refused.value.diag.context or "")
