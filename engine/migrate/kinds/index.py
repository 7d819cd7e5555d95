"""Indexes: a changed one is dropped and built again, writers blocked while it builds."""

from __future__ import annotations

from engine.compiler.objects import SqlObject
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Change, Context, Kind, Step


class Index(Kind):
    name = "index"
    rank, drop_rank = 6, 8
    query = "indexes.sql"
    reported = True

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        return [self.drop_then_create(ctx, change, obj, (Hazard.LOCK,))]
