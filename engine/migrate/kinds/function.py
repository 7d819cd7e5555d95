"""Functions and procedures: key name `name(argument types)`. Replaced in place, or dropped
and created when the result type changes (CREATE OR REPLACE cannot change it)."""

from __future__ import annotations

from typing import Any

from engine.compiler.objects import ObjectKey, SqlObject
from engine.migrate.kinds.base import Action, Change, Context, Kind, Step, origin_of, where


def routine_and_args(key: ObjectKey) -> tuple[str, str]:
    """`function:public.f(integer, text)` -> ("f", "integer, text")."""
    routine, _, args = key.name.partition("(")
    return routine, args.removesuffix(")")


class Function(Kind):
    name = "function"
    rank, drop_rank = 3, 10
    query = "functions.sql"
    reported = True

    def drop_values(self, key: ObjectKey, live: Any) -> dict[str, Any]:
        routine, args = routine_and_args(key)
        procedure = live is not None and "PROCEDURE" in live["definition"][:40]
        return {"name": routine, "args": args, "procedure": procedure}

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        origin = origin_of(obj)
        if change.wanted["returns"] != change.found["returns"]:
            drop = self.drop_sql(ctx, change.key, None)
            return [Step(Action.REPLACE, change.key, drop + obj.sql + self._regrant(ctx, change),
                         f"drop and create {self.label(change.key)}: its result type changes{where(origin)}", (),
                         origin)]
        return [Step(Action.REPLACE, change.key, obj.sql,
                     f"replace {self.label(change.key)}: definition changed{where(origin)}", (), origin)]

    def _regrant(self, ctx: Context, change: Change) -> str:
        """The EXECUTE privilege the live routine held, given back after it is dropped and created
        (a changed grant is then the grant kind's own step, as for any routine)."""
        held = ctx.live.get(ObjectKey(f"grant:{ctx.schema}.{change.key.name}.execute"))
        if held is None:
            return ""
        return ctx.render("function/regrant.sql.j2", roles=held.definition, **self.drop_values(change.key, None))
