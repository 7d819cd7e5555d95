"""Privileges: key `grant:schema.target.privilege`, target a table or view, or for EXECUTE a
routine `name(argument types)`; the definition is the list of roles holding it. A changed
grant is revoked from everyone and granted again; a dropped one is revoked."""

from __future__ import annotations

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.sqltext import ident
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Action, Change, Context, Kind, Step, origin_of, table_targets, where


def target_and_privilege(key: ObjectKey) -> tuple[str, str]:
    """`grant:public.units.select` -> ("units", "select"); `...f(integer).execute` -> ("f(integer)", "execute")."""
    target, _, privilege = key.name.rpartition(".")
    return target, privilege


def _holders(roles: list[str]) -> str:
    return ", ".join(roles) if roles else "the owner only"


class Grant(Kind):
    name = "grant"
    rank, drop_rank = 11, 3
    query = "grants.sql"
    guards_access = True
    drop_action = Action.REVOKE

    def access_targets(self, key: ObjectKey) -> list[str]:
        target, privilege = target_and_privilege(key)
        if privilege == "execute":
            return [f"function:{key.schema}.{target}"]
        return table_targets(key.schema, target)

    def object_type(self, ctx: Context, target: str, privilege: str) -> str:
        """TABLE for a table's or view's privileges; for EXECUTE, FUNCTION or PROCEDURE as the
        live routine is (REVOKE ... ON FUNCTION fails on a procedure)."""
        if privilege != "execute":
            return "TABLE"
        routine = ctx.live.get(ObjectKey(f"function:{ctx.schema}.{target}"))
        if routine is not None and isinstance(routine.definition, dict) and "kind" in routine.definition:
            return "PROCEDURE" if routine.definition["kind"] == "p" else "FUNCTION"
        return "PROCEDURE" if target.partition("(")[0] in catalog.PROCEDURES else "FUNCTION"

    def revoke_sql(self, ctx: Context, key: ObjectKey, roles: list[str]) -> str:
        target, privilege = target_and_privilege(key)
        object_type = self.object_type(ctx, target, privilege)
        if object_type == "TABLE":
            quoted = ident(target)
        else:                                   # FUNCTION or PROCEDURE: name(argument types) as PostgreSQL printed it
            routine, _, args = target.partition("(")
            quoted = f"{ident(routine)}({args}"
        return ctx.render("grant/revoke.sql.j2", privilege=privilege.upper(), object_type=object_type,
                          target=quoted, roles=roles)

    def drop(self, ctx: Context, change: Change) -> Step:
        live = change.found
        target, privilege = target_and_privilege(change.key)
        sql = self.revoke_sql(ctx, change.key, live)
        if not live:                              # granted to nobody: the record goes, no one loses a right
            return Step(Action.REVOKE, change.key, sql, f"forget {privilege} on {target}: nobody holds it", ())
        return Step(Action.REVOKE, change.key, sql, f"revoke {privilege} on {target} from {', '.join(live)}",
                    (Hazard.AUTHORIZATION,))

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        target, privilege = target_and_privilege(change.key)
        revoke = self.revoke_sql(ctx, change.key, change.found)
        return [Step(Action.REPLACE, change.key, revoke + obj.sql,
                     f"regrant {privilege} on {target}: {_holders(change.found)} → "
                     f"{_holders(change.wanted)}{where(origin_of(obj))}", (Hazard.AUTHORIZATION,), origin_of(obj))]
