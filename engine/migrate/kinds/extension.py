"""Extensions rulesctl needs (pg_cron, where it can run this database's jobs). Never dropped."""

from __future__ import annotations

from typing import Any

import psycopg

from engine.migrate.kinds.base import DesiredContext, Kind, LiveObject

# pg_cron is in this database and the role may use its schema `cron` (which is not the
# extension's own namespace in pg_extension). Reads nothing superuser-only, never raises.
CRON_USABLE = ("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'"
               " AND coalesce(has_schema_privilege(to_regnamespace('cron'), 'USAGE'), false)")


class Extension(Kind):
    name = "extension"
    rank = 1
    in_schema = in_scratch = False

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        """pg_cron as this role can use it: present without USAGE on its schema (a non-superuser
        owner nobody granted it), it is as good as absent, as the desired side says too."""
        if conn.execute(CRON_USABLE).fetchone():
            return [LiveObject(self.name, "pg_cron", True)]
        return []

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        return [LiveObject(self.name, "pg_cron", True)] if ctx.cron_version is not None else []
