"""A table of the schema in the realtime publication: key `publication_table:<publication>/<schema>.<table>`."""

from __future__ import annotations

from typing import Any

import psycopg

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey
from engine.database.connect import query_text
from engine.migrate.kinds.base import DesiredContext, Kind, LiveObject


class PublicationTable(Kind):
    name = "publication_table"
    rank, drop_rank = 13, 2
    in_schema = in_scratch = False

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        return [LiveObject(self.name, name, definition)
                for name, definition in conn.execute(query_text("publication_tables.sql"), {"schema": schema})]

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        return [LiveObject(self.name, f"{catalog.PUBLICATION}/{ctx.schema}.{table}", True)
                for table in catalog.REALTIME_TABLES]

    def drop_values(self, key: ObjectKey, live: Any) -> dict[str, Any]:
        table = ObjectKey(f"table:{key.member}")
        return {"publication": key.name, "name": table.name}
