"""Introspection. Input: a connection (inside a transaction) and a schema. Output: a snapshot,
{key: LiveObject}, of every object kind rulesctl manages that exists there, each definition
normalised by PostgreSQL's own catalog functions (pg_get_functiondef, pg_get_indexdef, ...).
Each kind finds its own objects (engine/migrate/kinds/: a catalog query in queries/, or its
own `introspect`).

The desired side goes through the very same queries: the rendered policy is installed into a
scratch schema inside the plan's transaction, read back, and rolled back (desired_snapshot).
So both sides of the diff are compared in PostgreSQL's normal form, never template text
against catalog text.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import psycopg
from psycopg import sql

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.order import install_order
from engine.migrate.kinds import KINDS, install_rank, kind_of
from engine.migrate.model import LiveObject
from engine.migrate.privileges import install_checked

__all__ = ["LiveObject", "desired_snapshot", "introspect", "scratch_schema_name"]


def introspect(conn: psycopg.Connection[Any], schema: str = catalog.SCHEMA) -> dict[ObjectKey, LiveObject]:
    """Everything rulesctl could manage in `schema` (plus roles, publication, pg_cron jobs)."""
    conn.execute("SET LOCAL search_path = pg_catalog")      # qualify every type and reference
    found = [obj for kind in KINDS.values() for obj in kind.introspect(conn, schema)]
    return {obj.key: obj for obj in found}


def scratch_schema_name() -> str:
    return f"rulesctl_plan_{secrets.token_hex(4)}"


def desired_snapshot(conn: psycopg.Connection[Any], scratch_objects: list[SqlObject], scratch: str,
                     target: str = catalog.SCHEMA) -> dict[ObjectKey, LiveObject]:
    """Install the desired objects (rendered for the `scratch` schema) into that schema, in the
    caller's transaction, and read them back as if they lived in `target`. The caller rolls back."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
    for obj in install_order([o for o in scratch_objects if kind_of(o.kind).in_scratch], install_rank):
        install_checked(conn, obj)
    snapshot = introspect(conn, scratch)
    renamed = {}
    for found in snapshot.values():
        if not kind_of(found.kind).in_schema:
            continue            # not the scratch schema's own: the caller decides these
        moved = LiveObject(found.kind, _rename(found.name, scratch, target),
                           json.loads(_rename(json.dumps(found.definition), scratch, target)))
        renamed[moved.key] = moved
    return renamed


def _rename(text: str, scratch: str, target: str) -> str:
    return text.replace(scratch, target)
