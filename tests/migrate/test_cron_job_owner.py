"""pg_cron jobs another role holds: never scheduled a second time, in either direction.

pg_cron keys a job by name and role, and row level security on cron.job shows a role that is
not a superuser only its own jobs. On a private cluster set up like Supabase (as in
test_non_superuser.py), jobs scheduled by the superuser are invisible to the owner: its plan
must not schedule them again (they would run twice) but say whose they are and what to run;
and a superuser's plan must not add its own copy beside the owner's jobs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from engine_calls import scalar
from test_non_superuser import as_user, supabase_like_cluster

from engine.errors import HazardsBlocked
from engine.migrate.apply import DEFAULT_TEMPLATES, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import build

pytestmark = pytest.mark.db

REPO_RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def cluster():
    with supabase_like_cluster("rulesctl-cron-owner-") as local:
        yield local


def jobs_by_holder(cluster) -> list[tuple[str, str]]:
    """Every copy of every job, as the superuser sees cron.job."""
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        return admin.execute("SELECT jobname, username FROM cron.job ORDER BY jobname, username").fetchall()


def unschedule_everything(cluster) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("SELECT cron.unschedule(jobid) FROM cron.job")


def test_jobs_the_superuser_scheduled_are_named_not_copied_by_the_owner(cluster, shipped_objects):
    policy, objects = shipped_objects
    names = sorted(job.name for job in policy.jobs)
    owner = as_user(cluster.url, "owner")
    unschedule_everything(cluster)
    # The owner may not use pg_cron yet: it installs the engine, and a superuser's apply schedules the jobs.
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("REVOKE USAGE ON SCHEMA cron FROM owner")
    assert apply(owner, objects, policy).outcome == "applied"
    assert apply(cluster.url, objects, policy).outcome == "applied"
    assert jobs_by_holder(cluster) == [(name, "postgres") for name in names]
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("GRANT USAGE ON SCHEMA cron TO owner")

    plan = build_plan(owner, policy, objects, DEFAULT_TEMPLATES)
    with psycopg.connect(owner) as conn:
        assert scalar(conn, "SELECT count(*) FROM cron.job") == 0          # row level security hides them
        last_apply = scalar(conn, "SELECT max(id) FROM rulesctl.applies WHERE applied_by = 'postgres'")
    fix = ("SELECT cron.unschedule(jobid) FROM cron.job WHERE username = 'postgres' AND jobname IN ("
           + ", ".join(f"'{name}'" for name in names) + ");")
    assert sorted((step.action, step.key.name) for step in plan.steps) == [("schedule", name) for name in names]
    for step in plan.steps:
        assert step.hazards == (Hazard.JOB_HIDDEN,)
        assert not step.drift and step.reason.startswith(f"schedule job {step.key.name}: ")   # hidden, not moved
        assert (f"; the ledger says postgres scheduled job {step.key.name} last (apply #{last_apply}), and pg_cron "
                f"shows owner only its own jobs: schedule as this role would add a second copy beside postgres's, "
                f"and the job would run twice. Apply as postgres, or have a superuser run {fix} and then allow "
                f"this step (--allow-hazard job-hidden)") in step.reason
    assert plan.blocked_by(set()) == plan.steps
    with pytest.raises(HazardsBlocked, match="job-hidden"):
        apply(owner, objects, policy)
    assert jobs_by_holder(cluster) == [(name, "postgres") for name in names]     # nothing copied

    # What the step says to do: a superuser removes postgres's jobs, the owner allows the step.
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute(fix)
    assert apply(owner, objects, policy, allowed={Hazard.JOB_HIDDEN}).outcome == "applied"
    assert jobs_by_holder(cluster) == [(name, "owner") for name in names]
    again = build_plan(owner, policy, objects, DEFAULT_TEMPLATES)
    assert again.steps == [] and not any("ledger" in note for note in again.notes)     # the ledger says owner now


def test_a_superuser_does_not_copy_the_owners_jobs(cluster, shipped_objects, tmp_path):
    policy, objects = shipped_objects
    names = sorted(job.name for job in policy.jobs)
    owner = as_user(cluster.url, "owner")
    unschedule_everything(cluster)
    assert apply(owner, objects, policy).outcome == "applied"
    assert jobs_by_holder(cluster) == [(name, "owner") for name in names]
    assert build_plan(cluster.url, policy, objects, DEFAULT_TEMPLATES).steps == []    # it sees them: nothing to do

    rules = tmp_path / "rules"
    shutil.copytree(REPO_RULES, rules)
    jobs_yaml = rules / "jobs.yaml"
    jobs_yaml.write_text(jobs_yaml.read_text().replace('schedule: "0 2 * * *"', 'schedule: "0 3 * * *"'))
    later, later_objects = build(rules)
    plan = build_plan(cluster.url, later, later_objects, DEFAULT_TEMPLATES)
    [step] = plan.steps
    assert (step.action, step.key.name, step.hazards) == ("reschedule", "escalation-cleanup", (Hazard.JOB_OWNER,))
    take_over = ("SELECT cron.alter_job(jobid, username := 'postgres') FROM cron.job WHERE username = 'owner' "
                 "AND jobname IN ('escalation-cleanup');")
    assert step.reason.endswith(
        "; pg_cron holds job escalation-cleanup as owner, not postgres: reschedule as this role would add a second "
        f"copy beside owner's, and the job would run twice. Apply as owner, or take the jobs over first: {take_over}")
    with pytest.raises(HazardsBlocked, match="hazards that can never be allowed: job-owner"):
        apply(cluster.url, later_objects, later, allowed=set(Hazard))
    assert jobs_by_holder(cluster) == [(name, "owner") for name in names]         # nothing copied

    # A copy made by hand is named with what removes it.
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("SELECT cron.schedule('leave-return', '0 4 * * *', 'SELECT 1')")
        noted = build_plan(cluster.url, policy, objects, DEFAULT_TEMPLATES).notes
        assert ("job leave-return is scheduled 2 times in pg_cron (by owner, postgres): it runs 2 times; keep "
                "postgres's: SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'leave-return' AND "
                "username <> 'postgres';") in noted
        admin.execute("SELECT cron.unschedule('leave-return')")

        # Taken over, as the step says, the superuser's reschedule is its own, and the owner sees it gone.
        admin.execute(take_over)
    assert apply(cluster.url, later_objects, later).outcome == "applied"
    assert ("escalation-cleanup", "postgres") in jobs_by_holder(cluster)
    assert [step.hazards for step in build_plan(cluster.url, later, later_objects, DEFAULT_TEMPLATES).steps] == []
    [owners] = build_plan(owner, later, later_objects, DEFAULT_TEMPLATES).steps
    assert (owners.action, owners.key.name, owners.hazards) == ("schedule", "escalation-cleanup", (Hazard.JOB_HIDDEN,))

    # Taken out of the policy, the job postgres holds is one the owner can neither see nor unschedule: a note.
    block = jobs_yaml.read_text().split("  - name: escalation-cleanup\n", 1)
    jobs_yaml.write_text(block[0] + block[1].split("\n\n", 1)[1])
    without, without_objects = build(rules)
    assert "escalation-cleanup" not in {job.name for job in without.jobs}
    removed = build_plan(owner, without, without_objects, DEFAULT_TEMPLATES)
    assert not any(step.kind == "cron_job" for step in removed.steps)
    with psycopg.connect(owner) as conn:
        last_apply = scalar(conn, "SELECT max(id) FROM rulesctl.applies WHERE applied_by = 'postgres'")
    assert (f"job escalation-cleanup: the ledger says postgres scheduled it (apply #{last_apply}); owner cannot see "
            "or unschedule postgres's jobs: if it should not run, a superuser runs SELECT cron.unschedule(jobid) "
            "FROM cron.job WHERE username = 'postgres' AND jobname IN ('escalation-cleanup');") in removed.notes
