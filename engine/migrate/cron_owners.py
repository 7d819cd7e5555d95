"""Whose pg_cron jobs these are. Input: the plan's connection (inside its transaction), then the
plan's steps. Output: the steps on a job that another role holds, marked with a hazard whose
reason names that role and what to run; notes on jobs that run more than once or that another
role may still run.

pg_cron keys a job by name *and* role: `cron.schedule` by one role adds its own copy beside
another role's job of the same name (the job then runs twice), and `cron.unschedule(name)`
finds only the caller's. Row level security on cron.job shows a role that is not a superuser
only its own jobs, so such a role cannot see another's copy; the ledger (rulesctl.applies)
says which role last scheduled each job through rulesctl. A superuser sees every copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from engine.compiler.sqltext import literal, literal_list
from engine.database.connect import query_text
from engine.migrate.fetch import fetch_row
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.cron_job import CronJob
from engine.migrate.kinds.extension import CRON_USABLE
from engine.migrate.model import DRIFT_REASON, Action, Step


@dataclass(frozen=True)
class JobHolders:
    user: str                                  # the applying role
    superuser: bool                            # it sees every role's jobs
    seen: dict[str, list[str]]                 # job name -> the roles cron.job shows holding it
    scheduled_by: dict[str, tuple[str, int]]   # job name -> (role, apply id) that last scheduled it (ledger)

    def hidden_holder(self, name: str) -> tuple[str, int] | None:
        """For a role that is not a superuser: the other role the ledger says holds `name`."""
        last = self.scheduled_by.get(name)
        return last if last and not self.superuser and last[0] != self.user else None

    def others(self, name: str) -> list[str]:
        """For a superuser: the roles other than itself that cron.job shows holding `name`."""
        return [role for role in self.seen.get(name, []) if role != self.user] if self.superuser else []


def read_job_holders(conn: psycopg.Connection[Any]) -> JobHolders | None:
    """What cron.job and the ledger say about who holds the jobs; None where this role cannot
    use pg_cron here (then no job is planned at all). A superuser sees every copy in cron.job
    and skips the ledger (whose statements it would read in full: ~8 ms for 1,000 small applies)."""
    if not conn.execute(CRON_USABLE).fetchone():
        return None
    user, superuser, has_ledger = fetch_row(conn, """
        SELECT current_user::text, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
               to_regclass('rulesctl.applies') IS NOT NULL""")
    seen = {name: holders for name, holders in conn.execute(query_text("cron_job_holders.sql"))}
    scheduled_by = {name: (role, apply_id) for name, role, apply_id in
                    conn.execute(query_text("ledger_job_schedulers.sql"))} if has_ledger and not superuser else {}
    return JobHolders(user, bool(superuser), seen, scheduled_by)


def mark_held_jobs(steps: Iterable[Step], holders: JobHolders | None) -> tuple[list[Step], list[str]]:
    """The steps, those on a job another role holds marked `job-hidden` (this role cannot see the
    other copy) or `job-owner` (a superuser sees it); and notes on what no step touches."""
    steps = list(steps)
    if holders is None:
        return steps, []
    stepped = {step.key.name for step in steps if step.kind == CronJob.name}
    marked = [_marked(step, holders, sorted(stepped)) if step.kind == CronJob.name else step for step in steps]
    return marked, _notes(holders, stepped)


def _marked(step: Step, holders: JobHolders, stepped: list[str]) -> Step:
    name = step.key.name
    hidden = holders.hidden_holder(name)
    if hidden:
        role, apply_id = hidden
        jobs = [job for job in stepped if holders.hidden_holder(job) == hidden] or [name]
        # Not drift: the job rulesctl recorded is there, only hidden from this role.
        return replace(step, hazards=step.hazards + (Hazard.JOB_HIDDEN,), drift=False, reason=(
            f"{step.reason.removeprefix(DRIFT_REASON)}; the ledger says {role} scheduled job {name} last "
            f"(apply #{apply_id}), and pg_cron shows {holders.user} only its own jobs: "
            f"{_effect(step.action, role)}. Apply as {role}, or have a superuser run {_unschedule_sql(role, jobs)} "
            "and then allow this step (--allow-hazard job-hidden)"))
    others = holders.others(name)
    if others:
        jobs = [job for job in stepped if holders.others(job)] or [name]
        return replace(step, hazards=step.hazards + (Hazard.JOB_OWNER,), reason=(
            f"{step.reason}; pg_cron holds job {name} as {', '.join(others)}, not {holders.user}: "
            f"{_effect(step.action, others[0])}. Apply as {others[0]}, or take the jobs over first: "
            f"SELECT cron.alter_job(jobid, username := {literal(holders.user)}) FROM cron.job "
            f"WHERE username = {literal(others[0])} AND jobname IN ({literal_list(jobs)});"))
    return step


def _effect(action: Action, role: str) -> str:
    if action == Action.UNSCHEDULE:
        return f"unscheduling it as this role leaves {role}'s copy running"
    return f"{action} as this role would add a second copy beside {role}'s, and the job would run twice"


def _unschedule_sql(role: str, jobs: list[str]) -> str:
    return (f"SELECT cron.unschedule(jobid) FROM cron.job WHERE username = {literal(role)} "
            f"AND jobname IN ({literal_list(jobs)});")


def _notes(holders: JobHolders, stepped: set[str]) -> list[str]:
    """Jobs held more than once (a superuser sees them), and jobs the ledger says another role
    scheduled that this role neither sees nor plans (taken out of the policy, say)."""
    notes = []
    for name, roles in sorted(holders.seen.items()):
        if len(roles) > 1:
            keep = holders.user if holders.user in roles else roles[0]
            notes.append(f"job {name} is scheduled {len(roles)} times in pg_cron (by {', '.join(roles)}): it runs "
                         f"{len(roles)} times; keep {keep}'s: SELECT cron.unschedule(jobid) FROM cron.job WHERE "
                         f"jobname = {literal(name)} AND username <> {literal(keep)};")
    for name, (role, apply_id) in sorted(holders.scheduled_by.items()):
        if holders.hidden_holder(name) and name not in stepped and name not in holders.seen:
            notes.append(f"job {name}: the ledger says {role} scheduled it (apply #{apply_id}); {holders.user} cannot "
                         f"see or unschedule {role}'s jobs: if it should not run, a superuser runs "
                         f"{_unschedule_sql(role, [name])}")
    return notes
