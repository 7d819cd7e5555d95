"""Triggers: key name is the trigger's; its table is in its definition. Only a changed enabled
state is altered in place; any other change drops and creates it."""

from __future__ import annotations

from typing import Any

from engine.compiler.objects import ObjectKey, SqlObject
from engine.migrate.kinds.base import Action, Change, Context, Kind, Step, origin_of, where

# ALTER TABLE ... <state> TRIGGER by pg_trigger.tgenabled
TRIGGER_STATES = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
TRIGGER_WORDS = {"D": "disabled", "R": "enabled for replicas only", "A": "enabled always", "O": "enabled"}


class Trigger(Kind):
    name = "trigger"
    rank, drop_rank = 8, 6
    query = "triggers.sql"
    reported = True

    def drop_values(self, key: ObjectKey, live: Any) -> dict[str, Any]:
        return {"table": live["table"], "name": key.name}

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        desired, live = change.wanted, change.found
        if {**live, "enabled": desired["enabled"]} != desired:
            return [self.drop_then_create(ctx, change, obj, ())]
        # only its enabled state moved (ALTER TABLE ... DISABLE TRIGGER): what it keeps up to date drifts
        origin = origin_of(obj)
        sql = ctx.render("trigger/enable.sql.j2", table=desired["table"], name=change.key.name,
                         state=TRIGGER_STATES[desired["enabled"]])
        return [Step(Action.ENABLE, change.key, sql, f"enable {self.label(change.key)} on {desired['table']}: it is "
                     f"{TRIGGER_WORDS.get(live['enabled'], live['enabled'])}; what it keeps up to date may have "
                     f"drifted meanwhile{where(origin)}", (), origin)]
