"""The managed roles (catalog.ROLES): created by the rendered SQL, never dropped; their powers
and memberships are restored when they moved."""

from __future__ import annotations

from typing import Any

import psycopg

from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.database.connect import query_text
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Action, Change, Context, DesiredContext, Kind, LiveObject, Step, origin_of, where

# role attribute (queries/roles.sql) -> (keyword to grant it, keyword to take it away)
ROLE_ATTRIBUTES = {"superuser": ("SUPERUSER", "NOSUPERUSER"), "createrole": ("CREATEROLE", "NOCREATEROLE"),
                   "createdb": ("CREATEDB", "NOCREATEDB"), "replication": ("REPLICATION", "NOREPLICATION"),
                   "bypassrls": ("BYPASSRLS", "NOBYPASSRLS"), "login": ("LOGIN", "NOLOGIN")}


def role_definition(bypass_rls: bool) -> dict[str, Any]:
    """What a managed role is (queries/roles.sql's form): no login, no superuser or
    role/database/replication powers, BYPASSRLS only where the catalog says (service_role), and
    a member of none of the other managed roles."""
    return {"superuser": False, "createrole": False, "createdb": False, "replication": False,
            "bypassrls": bypass_rls, "login": False, "member_of": []}


class Role(Kind):
    name = "role"
    rank = 0
    in_schema = False           # cluster-wide; its SQL runs in the scratch install all the same

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        rows = conn.execute(query_text("roles.sql"), {"roles": [role for role, _ in catalog.ROLES]})
        return [LiveObject(self.name, name, definition) for name, definition in rows]

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        return [LiveObject(self.name, role, role_definition(bypass_rls)) for role, bypass_rls in catalog.ROLES]

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        """A managed role's powers and memberships are restored: a role that gained BYPASSRLS,
        LOGIN, SUPERUSER ... or another managed role's rights changes who may see or do what."""
        desired, live = change.wanted, change.found
        attributes = [ROLE_ATTRIBUTES[name][0 if wanted else 1] for name, wanted in desired.items()
                      if name in ROLE_ATTRIBUTES and live.get(name) != wanted]
        revoke = sorted(set(live.get("member_of", [])) - set(desired["member_of"]))
        grant = sorted(set(desired["member_of"]) - set(live.get("member_of", [])))
        what = [f"{'has' if live.get(name) else 'lacks'} {ROLE_ATTRIBUTES[name][0]}" for name, wanted in desired.items()
                if name in ROLE_ATTRIBUTES and live.get(name) != wanted]
        what += [f"is a member of {role}" for role in revoke] + [f"is not a member of {role}" for role in grant]
        sql = ctx.render("role/alter.sql.j2", name=change.key.name, attributes=attributes, revoke=revoke, grant=grant)
        origin = origin_of(obj)
        return [Step(Action.ALTER, change.key, sql,
                     f"restore {self.label(change.key)}: it {', '.join(what)}{where(origin)}", (Hazard.AUTHORIZATION,),
                     origin)]
