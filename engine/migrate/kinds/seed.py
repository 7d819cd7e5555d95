"""Seed rows: the policy's rows in the engine's tables (catalog.TABLES with `seeded`), key
`seed:schema.table/<primary key>`; inserted, updated column by column, deleted."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.database.connect import query_text
from engine.migrate.fetch import fetch_value
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Action, Change, Context, Kind, LiveObject, Step, origin_of, where
from engine.migrate.usage import IN_USE, describe

# Columns the database keeps for itself; they are not policy.
BOOKKEEPING_COLUMNS = {"created_at", "updated_at", "version"}


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


class Seed(Kind):
    name = "seed"
    rank, drop_rank = 14, 1
    create_action = Action.INSERT
    drop_action = Action.DELETE
    drop_hazards = (Hazard.SEED_ROW_DELETED,)

    def introspect(self, conn: psycopg.Connection[Any], schema: str) -> list[LiveObject]:
        """The rows, without usage counts: the plan adds them (usage.with_usage) to what it takes away."""
        rows = []
        for table in catalog.TABLES:
            if not table.seeded:
                continue
            if fetch_value(conn, "SELECT to_regclass(%s)", (f"{schema}.{table.name}",)) is None:
                continue
            query = sql.SQL(query_text("seed_rows.sql")).format(table=sql.Identifier(schema, table.name))
            for (row,) in conn.execute(query):
                key = ",".join(str(row[column]) for column in table.pk)
                values = {column: value for column, value in row.items() if column not in BOOKKEEPING_COLUMNS}
                rows.append(LiveObject(self.name, f"{schema}.{table.name}/{key}", values))
        return rows

    def references(self, key: ObjectKey, row: dict[str, Any]) -> list[ObjectKey]:
        """The seed rows this row points at (deleted after it, when both go)."""
        table = catalog.TABLES_BY_NAME[key.name]
        return [ObjectKey.of(self.name, ref_table, catalog.SCHEMA, member=str(row.get(column)))
                for column, ref_table in table.seed_refs]

    def create_reason(self, change: Change) -> str:
        return f"insert seed row {change.name}"

    def drop(self, ctx: Context, change: Change) -> Step:
        table, live = change.key.name, change.found
        key = {column: live[column] for column in catalog.TABLES_BY_NAME[table].pk}
        sql_text = ctx.render("seed/delete.sql.j2", table=table, key=key)
        usage = change.live.usage if change.live is not None else None
        if usage:                 # live data references it: the plan refuses, with the counts
            return Step(Action.DELETE, change.key, sql_text,
                        f"delete seed row {change.name}: no longer in rules/, but {describe(live['id'], usage)}; "
                        f"retire it (retired: true), or move them", (Hazard.REFERENCED_REMOVAL,))
        return Step(Action.DELETE, change.key, sql_text, f"delete seed row {change.name}: no longer in rules/",
                    self.drop_hazards)

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        table = change.key.name
        desired, live = change.wanted, change.found
        changed = {column: desired[column] for column in desired if desired[column] != live.get(column)}
        key = {column: desired[column] for column in catalog.TABLES_BY_NAME[table].pk}
        detail = "; ".join(f"{column} {_short(live.get(column))} → {_short(value)}"
                           for column, value in changed.items())
        origin = origin_of(obj)
        hazards: tuple[Hazard, ...] = ()
        usage = change.live.usage if change.live is not None else None
        in_use = {what: count for what, count in (usage or {}).items() if what in IN_USE}
        if table == "organizational_units" and changed.get("retired") is True and in_use:
            hazards = (Hazard.RETIRE_IN_USE,)
            counts = ", ".join(f"{count} {what}" for what, count in in_use.items())
            detail += (f"; {desired['id']} still has {counts}: move the staff to a unit in service "
                       f"(upsert_staff_profile) and reassign its work (manual_override) or they get nothing new")
        return [Step(Action.UPDATE, change.key, ctx.render("seed/update.sql.j2", table=table, changes=changed, key=key),
                     f"update seed row {change.name}: {detail}{where(origin)}", hazards, origin)]
