"""Enum types. New values are added in their own segment, committed first (PostgreSQL cannot
use a value in the transaction that added it): one step per value, key `enum:schema.type/value`.
Values are never removed or reordered in place."""

from __future__ import annotations

from engine.compiler.objects import ObjectKey, SqlObject
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Action, Change, Context, Kind, Step, origin_of, where
from engine.migrate.model import ENUM_SEGMENT


class Enum(Kind):
    name = "enum"
    rank, drop_rank = 4, 11
    query = "enums.sql"
    reported = True
    drop_hazards = (Hazard.DATA_LOSS,)

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        desired, live = change.wanted, change.found
        origin = origin_of(obj)
        label = self.label(change.key)
        if [value for value in desired if value in live] != live:
            removed = [value for value in live if value not in desired]
            migration = (f"-- {label}: values {', '.join(removed) or '(reordered)'} cannot be removed or reordered "
                         "in place.\n-- Migrate rows off them, then recreate the type by hand; rulesctl will not.\n")
            usage = (change.live.usage if change.live is not None else None) or {}
            used = [f"{value}: {usage[value]} running or queued items use it" for value in removed if usage.get(value)]
            if used:                  # work uses the value: blocked, with the counts
                return [Step(Action.REMOVE_VALUE, change.key, migration,
                             f"{label} loses values in use ({'; '.join(used)}); finish or move that work "
                             f"first{where(origin)}", (Hazard.REFERENCED_REMOVAL,), origin)]
            return [Step(Action.REMOVE_VALUE, change.key, migration,
                         f"{label} loses or reorders values ({', '.join(removed) or 'order'}){where(origin)}",
                         (Hazard.ENUM_VALUE_REMOVAL,), origin)]
        steps = []
        for index, value in enumerate(desired):
            if value in live:
                continue
            following = next((v for v in desired[index + 1:] if v in live), None)
            previous = desired[index - 1] if index else None      # exists by now: live, or added just before
            sql = ctx.render("enum/add_value.sql.j2", name=change.key.name, value=value,
                             before=following, after=None if following else previous)
            key = ObjectKey.of(self.name, change.key.name, change.key.schema, member=value)
            steps.append(Step(Action.ADD_VALUE, key, sql, f"add value {value!r} to {label}{where(origin)}",
                              (), origin, segment=ENUM_SEGMENT))
        return steps
