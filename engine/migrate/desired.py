"""The desired state. Input: the rendered objects and a connection to the target database
(inside the plan's transaction). Output: a snapshot in the same form introspect() gives for
the live database: schema objects normalised by PostgreSQL through a scratch schema, plus the
kinds that live outside the schema (roles, publication, pg_cron), each decided by its kind
(`Kind.desired`, engine/migrate/kinds/) from the policy and what pg_cron this database has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.render import render_policy
from engine.migrate.fetch import fetch_row, fetch_value
from engine.migrate.introspect import desired_snapshot
from engine.migrate.kinds import KINDS
from engine.migrate.kinds.base import DesiredContext
from engine.migrate.model import LiveObject
from engine.policy.model import Policy


def cron_available(conn: psycopg.Connection[Any]) -> bool:
    """pg_cron is here, or rulesctl can create it here (this is cron.database_name)."""
    return bool(fetch_value(conn, """
        SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')
            OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron')
                AND current_setting('cron.database_name', true) = current_database())"""))


def cron_unavailable_reason(conn: psycopg.Connection[Any]) -> str | None:
    """Why pg_cron cannot run this database's jobs (the same words the rendered SQL uses), or None."""
    if cron_available(conn):
        return None
    available, loaded_in, here = fetch_row(conn, """
        SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'),
               current_setting('cron.database_name', true), current_database()""")
    if not available:
        return "pg_cron is not installed on this server (Debian: postgresql-15-cron); jobs will not be scheduled"
    if loaded_in is None:
        return "pg_cron is installed but not loaded (add it to shared_preload_libraries); jobs will not be scheduled"
    return f"pg_cron lives in database {loaded_in} of this cluster, not {here}; jobs will not be scheduled here"


def cron_version(conn: psycopg.Connection[Any]) -> tuple[int, ...]:
    row = fetch_row(conn, """
        SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'),
                        (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_cron'))""")
    digits = (row[0] or "0").split("-")[0]
    return tuple(int(part) for part in digits.split(".") if part.isdigit())


def desired_state(conn: psycopg.Connection[Any], policy: Policy, objects: list[SqlObject], templates_dir: Path,
                  scratch: str, schema: str = catalog.SCHEMA) -> dict[ObjectKey, LiveObject]:
    scratch_objects = render_policy(policy, templates_dir, schema=scratch, parse_check=False)
    state = desired_snapshot(conn, scratch_objects, scratch, schema)
    context = DesiredContext(policy, schema, cron_version(conn) if cron_available(conn) else None)
    outside = [obj for kind in KINDS.values() if not kind.in_schema for obj in kind.desired(context)]
    state.update({obj.key: obj for obj in outside})
    # Only what this render produces is desired (a sanity check on the scratch round trip);
    # seed rows and grants may also come from the install itself.
    produced = {obj.key for obj in objects}
    missing = sorted(key for key in state if key not in produced and key.kind not in ("seed", "grant"))
    if missing:
        raise AssertionError(f"the scratch install produced objects the render did not: {missing[:5]}")
    return state
