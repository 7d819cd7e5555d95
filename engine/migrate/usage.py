"""What live data references a policy row or an enum value. Input: a connection and a schema.
Output: counts by what references it ("staff", "assignments", ...), per id, so a plan can name
them: removing what work still uses is blocked with the counts, retiring a unit in use is a
hazard that says what to move. Read in the plan's transaction, beside the live snapshot."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from engine.compiler.catalog import ACTIVE_STATUSES
from engine.migrate.fetch import fetch_value

Counts = dict[str, int]          # "staff" -> 3, "assignments" -> 12 (only what is above zero)

# Per policy table: (what, table, how a row of it names the id) — `{id}` is the id column.
_ACTIVE = sql.SQL(", ").join(sql.Literal(status) for status in ACTIVE_STATUSES)
REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "organizational_units": (
        ("staff", "staff_profiles", "unit_id = {id}"),
        ("assignments", "assignments", "{id} IN (unit_id, target_unit_id)"),
        ("queued items", "assignment_queue", "target_unit_id = {id}"),
        ("capacity snapshots", "capacity_snapshots", "unit_id = {id}")),
    "assignment_rules": (
        ("assignments", "assignments", "rule_id = {id}"),
        ("queued items", "assignment_queue", "rule_id = {id}")),
    "skills": (
        ("staff", "staff_skills", "skill_id = {id}"),
        ("assignments", "assignments", "{id} = ANY (required_skills)"),
        ("queued items", "assignment_queue", "{id} = ANY (required_skills)")),
}
# Work in progress that stays in a retired unit until someone moves it.
IN_USE = ("staff", "active assignments", "queued items")


def _exists(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
    return fetch_value(conn, "SELECT to_regclass(%s)", (f"{schema}.{table}",)) is not None


def row_usage(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, Counts]:
    """id -> counts of what references it, for one of the REFERENCES tables."""
    found: dict[str, Counts] = {}
    if table not in REFERENCES or not _exists(conn, schema, table):
        return found
    parts = []
    for what, source, condition in REFERENCES[table]:
        if not _exists(conn, schema, source):
            continue
        match = sql.SQL(condition).format(id=sql.SQL("p.id"))
        parts.append(sql.SQL("SELECT p.id, {what}, count(*) FROM {policy} p JOIN {source} r ON {match} "
                             "GROUP BY p.id").format(what=sql.Literal(what), policy=sql.Identifier(schema, table),
                                                     source=sql.Identifier(schema, source), match=match))
        if source == "assignments":
            parts.append(sql.SQL("SELECT p.id, 'active assignments', count(*) FROM {policy} p JOIN {source} r "
                                 "ON {match} AND r.status::text IN ({active}) GROUP BY p.id").format(
                policy=sql.Identifier(schema, table), source=sql.Identifier(schema, source), match=match,
                active=_ACTIVE))
    for part in parts:
        for ident, what, count in conn.execute(part):
            found.setdefault(ident, {})[what] = count
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
