"""The desired state. Input: the rendered objects and a connection to the target database
(inside the plan's transaction). Output: a snapshot in the same form introspect() gives for
the live database: schema objects normalised by PostgreSQL through a scratch schema, plus the
kinds that live outside the schema (roles, publication, pg_cron), each decided by its kind
(`Kind.desired`, engine/migrate/kinds/) from the policy and what pg_cron this database has
(cron_unavailable_reason, cron_version: read without superuser-only settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.render import render_policy
from engine.compiler.sqltext import ident
from engine.migrate.fetch import fetch_row
from engine.migrate.introspect import desired_snapshot
from engine.migrate.kinds import KINDS
from engine.migrate.kinds.base import DesiredContext
from engine.migrate.kinds.extension import CRON_USABLE
from engine.migrate.model import LiveObject
from engine.policy.model import Policy


def cron_unavailable_reason(conn: psycopg.Connection[Any]) -> str | None:
    """Why pg_cron cannot run this database's jobs (the same words the rendered SQL uses), or None.

    Never reads cron.database_name unless the role is a superuser: the setting is superuser-only
    (current_setting(..., true) still raises for a database owner on Supabase or RDS), and only
    a superuser could create pg_cron anyway. A non-superuser learns all it needs from whether
    pg_cron is in this database and whether it may use the cron schema."""
    here, usable, available, superuser, user = fetch_row(conn, f"""
        SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'), EXISTS ({CRON_USABLE}),
               EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'),
               (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_user""")
    if here:
        return None if usable else (f"pg_cron is in this database but {user} may not use its schema; jobs will "
                                    f"not be scheduled until a superuser runs: GRANT USAGE ON SCHEMA cron TO "
                                    f"{ident(user)};")
    if not available:
        return "pg_cron is not installed on this server (Debian: postgresql-15-cron); jobs will not be scheduled"
    if not superuser:
        return (f"pg_cron is not created in this database and only a superuser can create it; jobs will not be "
                f"scheduled until a superuser runs, in the database pg_cron runs in (cron.database_name): "
                f"CREATE EXTENSION pg_cron; GRANT USAGE ON SCHEMA cron TO {ident(user)};")
    loaded_in, here_name = fetch_row(conn, "SELECT current_setting('cron.database_name', true), current_database()")
    if loaded_in is None:
        return "pg_cron is installed but not loaded (add it to shared_preload_libraries); jobs will not be scheduled"
    if loaded_in != here_name:
        return (f"pg_cron lives in database {loaded_in} of this cluster, not {here_name}; "
                "jobs will not be scheduled here")
    return None


def cron_version(conn: psycopg.Connection[Any]) -> tuple[int, ...]:
    """The pg_cron version this database has, or would get (the server's default)."""
    row = fetch_row(conn, """
        SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'),
                        (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_cron'))""")
    return parse_version(row[0] or "0")


def parse_version(text: str) -> tuple[int, ...]:
    """'1.4-1' -> (1, 4); '1.6.2' -> (1, 6, 2)."""
    digits = text.split("-")[0]
    return tuple(int(part) for part in digits.split(".") if part.isdigit())


def desired_state(conn: psycopg.Connection[Any], policy: Policy, objects: list[SqlObject], templates_dir: Path,
                  scratch: str, pg_cron: tuple[int, ...] | None, schema: str = catalog.SCHEMA
                  ) -> dict[ObjectKey, LiveObject]:
    """`pg_cron`: the version that will run this database's jobs (None: none can)."""
    scratch_objects = render_policy(policy, templates_dir, schema=scratch, parse_check=False)
    state = desired_snapshot(conn, scratch_objects, scratch, schema)
    context = DesiredContext(policy, schema, pg_cron)
    outside = [obj for kind in KINDS.values() if not kind.in_schema for obj in kind.desired(context)]
    state.update({obj.key: obj for obj in outside})
    # Only what this render produces is desired (a sanity check on the scratch round trip);
    # seed rows and grants may also come from the install itself.
    produced = {obj.key for obj in objects}
    missing = sorted(key for key in state if key not in produced and key.kind not in ("seed", "grant"))
    if missing:
        raise AssertionError(f"the scratch install produced objects the render did not: {missing[:5]}")
    return state
