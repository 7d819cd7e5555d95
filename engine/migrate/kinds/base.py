"""What every managed kind of object says about itself, and the defaults most kinds keep.

A `Kind` holds, for one kind (table, function, seed row, ...):
  name, rank            its key prefix, and where it goes among free choices when installing
  drop_rank             where its drops go among drops (dependents first); None: never dropped
  query, in_schema      how introspection finds it (a catalog query in queries/, run per schema,
                        or its own `introspect`), and whether it lives in the managed schema
  in_scratch            installed into the plan's scratch schema (read back from there, or, for
                        kinds outside the schema, decided by its own `desired`)
  reported              an unowned live one is reported ("not managed by rulesctl")
  guards_access         creating it where its target exists changes who may see or do what
  drop_hazards          what dropping it costs
  create/change/drop    its plan steps, rendered from its templates (templates/changes/<kind>/)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import jinja2
import psycopg

from engine.compiler.objects import ObjectKey, SqlObject
from engine.database.connect import query_text
from engine.errors import RenderError
from engine.migrate.hazards import Hazard
from engine.migrate.model import Action, Change, ChangeType, LiveObject, Step
from engine.policy.model import Policy

_EXPLICIT_LOCK = re.compile(r"^LOCK TABLE (\w+\.\w+) IN", re.MULTILINE)   # what a rendered object locks itself


@dataclass(frozen=True)
class Context:
    """What a kind's steps are made from: the target schema, the live snapshot, the templates."""
    schema: str
    live: Mapping[ObjectKey, LiveObject]
    env: jinja2.Environment

    def render(self, template: str, **values: Any) -> str:
        """templates/changes/<template>, rendered for the target schema."""
        sql = self.env.get_template(f"changes/{template}").render(schema=self.schema, **values).strip()
        return sql + "\n"

    def exists(self, key: str) -> bool:
        return key in self.live


@dataclass(frozen=True)
class DesiredContext:
    """What a kind outside the schema decides its desired objects from."""
    policy: Policy
    schema: str
    cron_version: tuple[int, ...] | None       # None: no pg_cron can run this database's jobs


def where(origin: str | None) -> str:
    return f" ({origin})" if origin else ""


def origin_of(obj: SqlObject | None) -> str | None:
    return str(obj.origin) if obj is not None and obj.origin else None


class Kind:
    name: ClassVar[str]
    rank: ClassVar[int]
    drop_rank: ClassVar[int | None] = None
    query: ClassVar[str | None] = None
    in_schema: ClassVar[bool] = True
    in_scratch: ClassVar[bool] = True
    reported: ClassVar[bool] = False
    guards_access: ClassVar[bool] = False
    drop_hazards: ClassVar[tuple[Hazard, ...]] = ()
    create_action: ClassVar[Action] = Action.CREATE
    drop_action: ClassVar[Action] = Action.DROP

    @property
    def words(self) -> str:
        return self.name.replace("_", " ")

    def label(self, key: ObjectKey) -> str:
        return f"{self.words} {key.body}"

    # --- introspection ----------------------------------------------------------------------------
    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        """Every object of this kind in `schema`, in PostgreSQL's normal form."""
        if self.query is None:
            return []
        return [LiveObject(self.name, f"{schema}.{name}", definition)
                for name, definition in conn.execute(query_text(self.query), {"schema": schema})]

    def desired(self, ctx: DesiredContext) -> list[LiveObject]:
        """For kinds outside the schema (not read back from the scratch schema): what is wanted."""
        return []

    # --- steps ------------------------------------------------------------------------------------
    def create(self, ctx: Context, change: Change, obj: SqlObject) -> Step:
        origin = origin_of(obj)
        what = self.create_reason(change)
        hazards = self.access_hazards(ctx, change.key)
        locked = [name for name in _EXPLICIT_LOCK.findall(obj.sql) if ctx.exists(f"table:{name}")]
        if locked:                      # e.g. a new table filled from a live one it must not miss writes to
            hazards += (Hazard.LOCK,)
            what += f" (holds a write lock on {', '.join(locked)} until the apply commits)"
        return Step(self.create_action, change.key, obj.sql, f"{what}{where(origin)}", hazards, origin)

    def create_reason(self, change: Change) -> str:
        return f"create {self.label(change.key)}"

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        """A changed definition: by default the rendered SQL runs again (CREATE OR REPLACE)."""
        hazards = (Hazard.AUTHORIZATION,) if self.guards_access else ()
        return [Step(Action.REPLACE, change.key, obj.sql,
                     f"replace {self.label(change.key)}: definition changed{where(origin_of(obj))}", hazards,
                     origin_of(obj))]

    def drop(self, ctx: Context, change: Change) -> Step:
        sql = self.drop_sql(ctx, change.key, change.found)
        return Step(self.drop_action, change.key, sql,
                    f"{self.drop_action} {self.words} {change.name}: no longer in rules/ or the engine",
                    self.drop_hazards)

    def drop_sql(self, ctx: Context, key: ObjectKey, live: Any) -> str:
        """templates/changes/<kind>/drop.sql.j2; a kind without one is never dropped."""
        if self.drop_rank is None:
            raise RenderError(f"rulesctl never drops a {self.words}, yet the plan would drop {key}")
        sql = ctx.render(f"{self.name}/drop.sql.j2", **self.drop_values(key, live))
        if not sql.strip():
            raise RenderError(f"templates/changes/{self.name}/drop.sql.j2 rendered no SQL for {key}")
        return sql

    def drop_values(self, key: ObjectKey, live: Any) -> dict[str, Any]:
        return {"name": key.name}

    def drop_then_create(self, ctx: Context, change: Change, obj: SqlObject, hazards: tuple[Hazard, ...]) -> Step:
        origin = origin_of(obj)
        return Step(Action.REPLACE, change.key, self.drop_sql(ctx, change.key, change.found) + obj.sql,
                    f"drop and create {self.label(change.key)}: definition changed{where(origin)}", hazards, origin)

    # --- access -----------------------------------------------------------------------------------
    def access_targets(self, key: ObjectKey) -> list[str]:
        """The keys of what an access rule of this kind applies to (guards_access kinds)."""
        return []

    def access_hazards(self, ctx: Context, key: ObjectKey) -> tuple[Hazard, ...]:
        """Access rules on objects that already exist are a hazard; on objects this plan creates
        they are part of creating them."""
        if self.guards_access and any(ctx.exists(target) for target in self.access_targets(key)):
            return (Hazard.AUTHORIZATION,)
        return ()


def table_targets(schema: str | None, table: str) -> list[str]:
    """A table or view of that name (what policies, row level security and grants apply to)."""
    return [f"table:{schema}.{table}", f"view:{schema}.{table}"]


__all__ = ["Change", "ChangeType", "Context", "DesiredContext", "Kind", "LiveObject", "Step", "Action",
           "origin_of", "table_targets", "where"]
