"""What live data references a policy row or an enum value. Input: a connection and a schema.
Output: counts by what references it ("staff", "assignments", ...), per id, so a plan can name
them: removing what work still uses is blocked with the counts, retiring a unit in use is a
hazard that says what to move. Read in the plan's transaction, beside the live snapshot, and only
for what the plan takes away (`with_usage`): the counts read every assignment, seconds at a
million, on every plan when they were read for every row."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

import psycopg
from psycopg import sql

from engine.compiler.catalog import ACTIVE_STATUSES
from engine.compiler.objects import ObjectKey
from engine.migrate.fetch import fetch_value
from engine.migrate.model import LiveObject

Counts = dict[str, int]          # "staff" -> 3, "assignments" -> 12 (only what is above zero)

# Per policy table: (what, table, the columns of a row of it that name an id). A text[] column
# names each id it holds; a row counts once per id, however many of its columns name it.
_ACTIVE = sql.SQL(", ").join(sql.Literal(status) for status in ACTIVE_STATUSES)
REFERENCES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "organizational_units": (
        ("staff", "staff_profiles", ("unit_id",)),
        ("assignments", "assignments", ("unit_id", "target_unit_id")),
        ("queued items", "assignment_queue", ("target_unit_id",)),
        ("capacity snapshots", "capacity_snapshots", ("unit_id",))),
    "assignment_rules": (
        ("assignments", "assignments", ("rule_id",)),
        ("queued items", "assignment_queue", ("rule_id",))),
    "skills": (
        ("staff", "staff_skills", ("skill_id",)),
        ("assignments", "assignments", ("required_skills",)),
        ("queued items", "assignment_queue", ("required_skills",))),
}
ARRAY_COLUMNS = {"required_skills"}
# Work in progress that stays in a retired unit until someone moves it.
IN_USE = ("staff", "active assignments", "queued items")


def _exists(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
    return fetch_value(conn, "SELECT to_regclass(%s)", (f"{schema}.{table}",)) is not None


def _counts_query(schema: str, table: str, source: str, columns: tuple[str, ...]) -> sql.Composed:
    """id, rows naming it, active ones among them (assignments), for the ids in parameter %(ids)s:
    one pass over the source, hash aggregated (joining the policy table to the source on
    `id IN (a, b)` or `id = ANY (skills)` compared every pair)."""
    active = (sql.SQL("count(*) FILTER (WHERE r.status::text IN ({}))").format(_ACTIVE) if source == "assignments"
              else sql.SQL("0"))
    if len(columns) == 1 and columns[0] not in ARRAY_COLUMNS:
        named = sql.SQL("SELECT r.{column} AS id, count(*) AS rows, {active} AS active FROM {source} r "
                        "WHERE r.{column} = ANY (%(ids)s) GROUP BY 1").format(
            column=sql.Identifier(columns[0]), active=active, source=sql.Identifier(schema, source))
    else:
        ids = (sql.SQL("r.{}").format(sql.Identifier(columns[0])) if columns[0] in ARRAY_COLUMNS
               else sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c))
                                                                    for c in columns)))
        # each id once per row: its first place in the row's list
        named = sql.SQL("SELECT u.id, count(*) AS rows, {active} AS active FROM {source} r "
                        "CROSS JOIN LATERAL unnest({ids}) WITH ORDINALITY AS u(id, n) "
                        "WHERE {ids} && %(ids)s AND u.id = ANY (%(ids)s) AND array_position({ids}, u.id) = u.n "
                        "GROUP BY 1").format(
            active=active, source=sql.Identifier(schema, source), ids=ids)
    return sql.SQL("SELECT p.id, c.rows, c.active FROM {policy} p JOIN ({named}) c ON c.id = p.id").format(
        policy=sql.Identifier(schema, table), named=named)


def row_usage(conn: psycopg.Connection[Any], schema: str, table: str, ids: Collection[str]) -> dict[str, Counts]:
    """id -> counts of what references it, for these ids of one of the REFERENCES tables."""
    found: dict[str, Counts] = {}
    if table not in REFERENCES or not ids or not _exists(conn, schema, table):
        return found
    for what, source, columns in REFERENCES[table]:
        if not _exists(conn, schema, source):
            continue
        for ident, rows, active in conn.execute(_counts_query(schema, table, source, columns), {"ids": sorted(ids)}):
            found.setdefault(ident, {})[what] = rows
            if source == "assignments" and active:
                found[ident]["active assignments"] = active
    return found


def enum_usage(conn: psycopg.Connection[Any], schema: str, enum: str) -> Counts:
    """value -> running and queued work of that work item type or priority."""
    column = {"work_item_type": "work_item_type", "priority_level": "priority"}.get(enum)
    found: Counts = {}
    if column is None:
        return found
    queries = [("assignments", sql.SQL("status::text IN ({})").format(_ACTIVE)), ("assignment_queue", sql.SQL("true"))]
    for table, condition in queries:
        if not _exists(conn, schema, table):
            continue
        query = sql.SQL("SELECT {column}::text, count(*) FROM {table} WHERE {condition} GROUP BY 1").format(
            column=sql.Identifier(column), table=sql.Identifier(schema, table), condition=condition)
        for value, count in conn.execute(query):
            found[value] = found.get(value, 0) + count
    return found


def describe(ident: str, counts: Counts) -> str:
    """"unit-hr: 3 staff, 12 assignments reference it" (active ones are part of assignments)."""
    shown = ", ".join(f"{count} {what}" for what, count in counts.items() if what != "active assignments")
    return f"{ident}: {shown} reference it"


def with_usage(conn: psycopg.Connection[Any], schema: str, live: Mapping[ObjectKey, LiveObject],
               desired: Mapping[ObjectKey, LiveObject]) -> dict[ObjectKey, LiveObject]:
    """`live`, with usage counts on what the plan takes away: the rows of the REFERENCES tables the
    policy no longer has (removed, or renamed: the counts go with the rename), the units it
    retires, and the enum types that lose a value. Everything else is left without counts."""
    ids: dict[str, set[str]] = {}
    enums = []
    for key, obj in live.items():
        if obj.kind == "seed":
            table, ident = key.name, str(key.member)
            wanted = desired.get(key)
            retired = (table == "organizational_units" and wanted is not None
                       and wanted.definition.get("retired") is True and obj.definition.get("retired") is not True)
            if table in REFERENCES and (wanted is None or retired):
                ids.setdefault(table, set()).add(ident)
        elif obj.kind == "enum" and key in desired and set(obj.definition) - set(desired[key].definition):
            enums.append(key)
    if not ids and not enums:
        return dict(live)
    counted = {table: row_usage(conn, schema, table, members) for table, members in ids.items()}
    found = dict(live)
    for key, obj in live.items():
        if obj.kind == "seed" and key.name in counted:
            found[key] = dataclasses.replace(obj, usage=counted[key.name].get(str(key.member)))
    for key in enums:
        found[key] = dataclasses.replace(live[key], usage=enum_usage(conn, schema, key.name))
    return found
