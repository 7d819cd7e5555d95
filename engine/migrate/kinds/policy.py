"""Row level security policies. The key's name is `table.policy`: a policy lives on its table."""

from __future__ import annotations

from typing import Any

from engine.compiler.objects import ObjectKey, SqlObject
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Change, Context, Kind, Step, table_targets


def table_and_policy(key: ObjectKey) -> tuple[str, str]:
    table, _, policy = key.name.partition(".")
    return table, policy


class Policy(Kind):
    name = "policy"
    rank, drop_rank = 10, 4
    query = "policies.sql"
    reported = True
    guards_access = True
    drop_hazards = (Hazard.AUTHORIZATION,)

    def access_targets(self, key: ObjectKey) -> list[str]:
        return table_targets(key.schema, table_and_policy(key)[0])

    def drop_values(self, key: ObjectKey, live: Any) -> dict[str, Any]:
        table, policy = table_and_policy(key)
        return {"table": table, "name": policy}

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        return [self.drop_then_create(ctx, change, obj, (Hazard.AUTHORIZATION,))]
