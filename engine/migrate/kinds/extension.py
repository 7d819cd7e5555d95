"""Extensions rulesctl needs (pg_cron, where it can run this database's jobs). Never dropped."""

from __future__ import annotations

from typing import Any

import psycopg

from engine.migrate.kinds.base import DesiredContext, Kind, LiveObject


class Extension(Kind):
    name = "extension"
    rank = 1
    in_schema = in_scratch = False

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            return [LiveObject(self.name, "pg_cron", True)]
        return []

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        return [LiveObject(self.name, "pg_cron", True)] if ctx.cron_version is not None else []
