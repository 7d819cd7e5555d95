"""pg_cron jobs (key `cron_job:<job name>`): scheduled, rescheduled when their schedule,
command or state moved, unscheduled when gone. Only where pg_cron can run this database's jobs."""

from __future__ import annotations

from typing import Any

import psycopg

from engine.compiler.objects import SqlObject
from engine.compiler.render import job_commands, schedule_in_words
from engine.database.connect import query_text
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Action, Change, Context, DesiredContext, Kind, LiveObject, Step, origin_of, where
from engine.migrate.kinds.extension import CRON_USABLE
from engine.policy.model import Job


def effective_job(job: Job, schema: str, version: tuple[int, ...]) -> dict[str, Any]:
    """What cron.job will hold for this job: pg_cron before 1.5 gets the per-minute fallback."""
    command, fallback = job_commands(job, schema)
    if fallback and version < (1, 5):
        return {"schedule": "* * * * *", "command": fallback, "active": True}
    return {"schedule": job.schedule, "command": command, "active": True}


def schedule_words(schedule: str | None) -> str:
    """'0 2 * * *' -> "'0 2 * * *' (at 02:00 (UTC))": a reviewer should not have to read cron."""
    if not schedule:
        return "(none)"
    try:
        return f"'{schedule}' ({schedule_in_words(schedule)})"
    except Exception:                      # a hand-made schedule cron-descriptor cannot read
        return f"'{schedule}'"


class CronJob(Kind):
    name = "cron_job"
    rank, drop_rank = 15, 0
    in_schema = in_scratch = False
    reported = True
    drop_hazards = (Hazard.JOB_UNSCHEDULED,)
    create_action = Action.SCHEDULE
    drop_action = Action.UNSCHEDULE

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        # Without USAGE on the cron schema (a non-superuser owner nobody granted it) there is
        # nothing this role could read or schedule: the plan's note names the GRANT.
        if not conn.execute(CRON_USABLE).fetchone():
            return []
        rows = conn.execute(query_text("cron_jobs.sql"))
        return [LiveObject(self.name, name, definition) for name, definition in rows]

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        if ctx.cron_version is None:
            return []
        return [LiveObject(self.name, job.name, effective_job(job, ctx.schema, ctx.cron_version))
                for job in ctx.policy.jobs]

    def create_reason(self, change: Change) -> str:
        return f"schedule job {change.name}: {schedule_words(change.wanted['schedule'])}"

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        old, new = change.found, change.wanted
        what = [f"{field} {old.get(field)!r} → {new[field]!r}" for field in ("command", "active")
                if old.get(field) != new[field]]
        if old.get("schedule") != new["schedule"]:
            what.insert(0, f"schedule {schedule_words(old.get('schedule'))} → {schedule_words(new['schedule'])}")
        origin = origin_of(obj)
        return [Step(Action.RESCHEDULE, change.key, obj.sql,
                     f"reschedule job {change.name}: {'; '.join(what)}{where(origin)}", (), origin)]
