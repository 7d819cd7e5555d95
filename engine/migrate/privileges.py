"""What the applying role may not do. Input: a connection (the plan's) and the plan's steps.
Output: the steps PostgreSQL would refuse for want of a privilege, marked with the `privilege`
hazard and a reason naming what a superuser must run; notes on the API roles the applying
role cannot switch to; or, when the desired state cannot even be installed into the scratch
schema, a `PrivilegeMissing` error naming the object, PostgreSQL's words and the SQL to run.

A database owner on a managed PostgreSQL (Supabase's `postgres`, RDS's master user) is not a
superuser: creating or altering roles with BYPASSRLS, creating pg_cron, taking over the
publication can be beyond it. Rather than model PostgreSQL's privilege rules (they change
between versions), each step that acts outside the schema is tried in a savepoint that is
rolled back, and only insufficient_privilege (42501) counts as a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import errors

from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.compiler.sqltext import ident
from engine.errors import DatabaseError
from engine.migrate.fetch import fetch_value
from engine.migrate.hazards import Hazard
from engine.migrate.model import Step

# Kinds whose steps act on the cluster or on objects rulesctl may not own: tried before the plan is shown.
PROBED_KINDS = ("role", "publication", "publication_table")


class PrivilegeMissing(DatabaseError):
    """The applying role may not install an object the policy needs (even into the plan's scratch schema)."""

    def __init__(self, user: str, obj: SqlObject, exc: psycopg.Error) -> None:
        reason = (exc.diag.message_primary or str(exc)).strip()
        super().__init__(f"{user} may not create {obj.key}: {reason}. Run this once as a superuser (or grant "
                         f"{user} what the message names), then plan again:\n{obj.sql.strip()}")


def install_checked(conn: psycopg.Connection[Any], obj: SqlObject) -> None:
    """Run an object's SQL; a refusal for want of a privilege names the object and what to run."""
    try:
        conn.execute(obj.sql)  # type: ignore[arg-type]       # rendered SQL, its values quoted by the templates
    except errors.InsufficientPrivilege as exc:
        raise PrivilegeMissing(conn.info.user, obj, exc) from None     # (the transaction is aborted: no query)


def mark_refused(conn: psycopg.Connection[Any], steps: Iterable[Step]) -> list[Step]:
    """The steps, those of PROBED_KINDS that PostgreSQL refuses to this role marked `privilege`.
    Each runs in a savepoint in plan order, and all of it is rolled back."""
    steps = list(steps)
    if not any(step.kind in PROBED_KINDS for step in steps):
        return steps                            # the usual re-plan: nothing to try, no round trip
    user = str(fetch_value(conn, "SELECT current_user"))
    marked = []
    with conn.transaction(force_rollback=True):
        for step in steps:
            if step.kind in PROBED_KINDS:
                refusal = _refusal(conn, step.sql)
                if refusal:
                    step = Step(step.action, step.key, step.sql,
                                f"{step.reason}; {user} may not ({refusal}): a superuser must run this step's SQL "
                                f"({_one_line(step.sql)}), then plan again",
                                step.hazards + (Hazard.PRIVILEGE,), step.origin, step.segment, step.drift, step.after)
            marked.append(step)
    return marked


def _refusal(conn: psycopg.Connection[Any], sql: str) -> str | None:
    try:
        with conn.transaction():
            conn.execute(sql)  # type: ignore[arg-type]       # a plan step's rendered SQL
    except errors.InsufficientPrivilege as exc:
        return (exc.diag.message_primary or str(exc)).strip()
    except psycopg.Error:
        return None             # not a privilege: it needs what an earlier step makes; apply will say
    return None


def _one_line(sql: str) -> str:
    return " ".join(line.strip() for line in sql.splitlines() if line.strip() and not line.strip().startswith("--"))


def membership_notes(conn: psycopg.Connection[Any]) -> list[str]:
    """The API roles the applying role is not a member of: `rulesctl serve` connecting as it
    switches to the token's role with SET ROLE, which needs that membership."""
    user, missing = conn.execute("""
        SELECT current_user, coalesce(array_agg(r.rolname::text ORDER BY r.rolname)
                                      FILTER (WHERE NOT pg_has_role(current_user, r.oid, 'MEMBER')), '{}')
        FROM pg_roles r WHERE r.rolname = ANY (%s)""", ([role for role, _ in catalog.ROLES],)).fetchone() or ("", [])
    return [f"{user} is not a member of {role}: `rulesctl serve` connecting as {user} cannot switch to it "
            f"(SET ROLE); a superuser runs: GRANT {ident(role)} TO {ident(user)};" for role in missing]
