"""The realtime publication (catalog.PUBLICATION). Never dropped."""

from __future__ import annotations

from typing import Any

import psycopg

from engine.compiler import catalog
from engine.migrate.kinds.base import DesiredContext, Kind, LiveObject


class Publication(Kind):
    name = "publication"
    rank = 12
    in_schema = in_scratch = False

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        rows = conn.execute("SELECT pubname FROM pg_publication WHERE pubname = %s", (catalog.PUBLICATION,))
        return [LiveObject(self.name, name, True) for (name,) in rows]

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        return [LiveObject(self.name, catalog.PUBLICATION, True)]
