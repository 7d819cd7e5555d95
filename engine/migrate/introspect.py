"""Introspection. Input: a connection (inside a transaction) and a schema. Output: a snapshot,
{key: LiveObject}, of every object kind rulesctl manages that exists there, each definition
normalised by PostgreSQL's own catalog functions (pg_get_functiondef, pg_get_indexdef, ...).

The desired side goes through the very same queries: the rendered policy is installed into a
scratch schema inside the plan's transaction, read back, and rolled back (desired_snapshot).
So both sides of the diff are compared in PostgreSQL's normal form, never template text
against catalog text.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.compiler.order import install_order
from engine.database.connect import query_text

# kind -> catalog query (engine/migrate/queries/*.sql); each returns (name, definition)
SCHEMA_QUERIES = {
    "enum": "enums.sql", "table": "tables.sql", "index": "indexes.sql", "function": "functions.sql",
    "trigger": "triggers.sql", "view": "views.sql", "rls": "rls.sql", "policy": "policies.sql",
    "grant": "grants.sql",
}
# Columns the database keeps for itself; they are not policy.
BOOKKEEPING_COLUMNS = {"created_at", "updated_at", "version"}
# Kinds that live outside the schema: never installed into the scratch schema.
OUTSIDE_SCRATCH = {"cron_job", "extension", "publication", "publication_table"}


@dataclass(frozen=True)
class LiveObject:
    kind: str
    name: str
    definition: Any          # JSON-like, normalised; equality is the diff's notion of "same"

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


def introspect(conn: psycopg.Connection, schema: str = catalog.SCHEMA) -> dict[str, LiveObject]:
    """Everything rulesctl could manage in `schema` (plus roles, publication, pg_cron jobs)."""
    conn.execute("SET LOCAL search_path = pg_catalog")      # qualify every type and reference
    found: list[LiveObject] = []
    for kind, query in SCHEMA_QUERIES.items():
        for name, definition in conn.execute(query_text(query), {"schema": schema}):
            found.append(LiveObject(kind, f"{schema}.{name}", definition))
    for name, definition in conn.execute(query_text("publication_tables.sql"), {"schema": schema}):
        found.append(LiveObject("publication_table", name, definition))
    for (name,) in conn.execute("SELECT pubname FROM pg_publication WHERE pubname = %s", (catalog.PUBLICATION,)):
        found.append(LiveObject("publication", name, True))
    for name, definition in conn.execute(query_text("roles.sql"), {"roles": [role for role, _ in catalog.ROLES]}):
        found.append(LiveObject("role", name, definition))
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
        found.append(LiveObject("extension", "pg_cron", True))
        for name, definition in conn.execute(query_text("cron_jobs.sql")):
            found.append(LiveObject("cron_job", name, definition))
    found += _seed_rows(conn, schema)
    return {obj.key: obj for obj in found}


def _seed_rows(conn: psycopg.Connection, schema: str) -> list[LiveObject]:
    rows = []
    for table in catalog.TABLES:
        if not table.seeded:
            continue
        if conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table.name}",)).fetchone()[0] is None:
            continue
        query = sql.SQL(query_text("seed_rows.sql")).format(table=sql.Identifier(schema, table.name))
        for (row,) in conn.execute(query):
            key = ",".join(str(row[column]) for column in table.pk)
            values = {column: value for column, value in row.items() if column not in BOOKKEEPING_COLUMNS}
            rows.append(LiveObject("seed", f"{schema}.{table.name}/{key}", values))
    return rows


def scratch_schema_name() -> str:
    return f"rulesctl_plan_{secrets.token_hex(4)}"


def desired_snapshot(conn: psycopg.Connection, scratch_objects: list[SqlObject], scratch: str,
                     target: str = catalog.SCHEMA) -> dict[str, LiveObject]:
    """Install the desired objects (rendered for the `scratch` schema) into that schema, in the
    caller's transaction, and read them back as if they lived in `target`. The caller rolls back."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
    for obj in install_order([o for o in scratch_objects if o.kind not in OUTSIDE_SCRATCH]):
        conn.execute(obj.sql)
    snapshot = introspect(conn, scratch)
    renamed = {}
    for obj in snapshot.values():
        if obj.kind in ("role", "publication", "extension", "cron_job", "publication_table"):
            continue            # not the scratch schema's own: the caller decides these
        moved = LiveObject(obj.kind, _rename(obj.name, scratch, target),
                           json.loads(_rename(json.dumps(obj.definition), scratch, target)))
        renamed[moved.key] = moved
    return renamed


def _rename(text: str, scratch: str, target: str) -> str:
    return text.replace(scratch, target)
