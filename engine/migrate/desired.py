"""The desired state. Input: the rendered objects and a connection to the target database
(inside the plan's transaction). Output: a snapshot in the same form introspect() gives for
the live database: schema objects normalised by PostgreSQL through a scratch schema, plus the
kinds that live outside the schema (roles, publication, pg_cron), decided here."""

from __future__ import annotations

import psycopg

from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.compiler.render import job_commands, render_policy
from engine.migrate.introspect import LiveObject, desired_snapshot
from engine.policy.model import Policy


def cron_available(conn: psycopg.Connection) -> bool:
    """pg_cron is here, or rulesctl can create it here (this is cron.database_name)."""
    return bool(conn.execute("""
        SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')
            OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron')
                AND current_setting('cron.database_name', true) = current_database())""").fetchone()[0])


def cron_unavailable_reason(conn: psycopg.Connection) -> str | None:
    """Why pg_cron cannot run this database's jobs (the same words the rendered SQL uses), or None."""
    if cron_available(conn):
        return None
    available, loaded_in, here = conn.execute("""
        SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'),
               current_setting('cron.database_name', true), current_database()""").fetchone()
    if not available:
        return "pg_cron is not installed on this server (Debian: postgresql-15-cron); jobs will not be scheduled"
    if loaded_in is None:
        return "pg_cron is installed but not loaded (add it to shared_preload_libraries); jobs will not be scheduled"
    return f"pg_cron lives in database {loaded_in} of this cluster, not {here}; jobs will not be scheduled here"


def cron_version(conn: psycopg.Connection) -> tuple[int, ...]:
    row = conn.execute("""
        SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'),
                        (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_cron'))""").fetchone()
    digits = (row[0] or "0").split("-")[0]
    return tuple(int(part) for part in digits.split(".") if part.isdigit())


def desired_state(conn: psycopg.Connection, policy: Policy, objects: list[SqlObject], templates_dir,
                  scratch: str, schema: str = catalog.SCHEMA) -> dict[str, LiveObject]:
    scratch_objects = render_policy(policy, templates_dir, schema=scratch, parse_check=False)
    state = desired_snapshot(conn, scratch_objects, scratch, schema)
    outside = [LiveObject("role", role, role_definition(bypass_rls)) for role, bypass_rls in catalog.ROLES]
    outside.append(LiveObject("publication", catalog.PUBLICATION, True))
    outside += [LiveObject("publication_table", f"{catalog.PUBLICATION}/{schema}.{table}", True)
                for table in catalog.REALTIME_TABLES]
    if cron_available(conn):
        outside.append(LiveObject("extension", "pg_cron", True))
        version = cron_version(conn)
        for job in policy.jobs:
            outside.append(LiveObject("cron_job", job.name, effective_job(job, schema, version)))
    state.update({obj.key: obj for obj in outside})
    # Only what this render produces is desired (a sanity check on the scratch round trip).
    produced = {obj.key for obj in objects}
    missing = sorted(key for key in state if key not in produced and not key.startswith(("seed:", "grant:")))
    if missing:
        raise AssertionError(f"the scratch install produced objects the render did not: {missing[:5]}")
    return state


def role_definition(bypass_rls: bool) -> dict:
    """What a managed role is (engine/queries/roles.sql's form): no login, no superuser or
    role/database/replication powers, BYPASSRLS only where the catalog says (service_role), and
    a member of none of the other managed roles."""
    return {"superuser": False, "createrole": False, "createdb": False, "replication": False,
            "bypassrls": bypass_rls, "login": False, "member_of": []}


def effective_job(job, schema: str, version: tuple[int, ...]) -> dict:
    """What cron.job will hold for this job: pg_cron before 1.5 gets the per-minute fallback."""
    command, fallback = job_commands(job, schema)
    if fallback and version < (1, 5):
        return {"schedule": "* * * * *", "command": fallback, "active": True}
    return {"schedule": job.schedule, "command": command, "active": True}
