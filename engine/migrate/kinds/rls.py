"""Row level security switched on for a table (the key's name is the table's)."""

from __future__ import annotations

from engine.compiler.objects import ObjectKey
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Kind, table_targets


class Rls(Kind):
    name = "rls"
    rank, drop_rank = 9, 5
    query = "rls.sql"
    guards_access = True
    drop_hazards = (Hazard.AUTHORIZATION,)

    def access_targets(self, key: ObjectKey) -> list[str]:
        return table_targets(key.schema, key.name)
