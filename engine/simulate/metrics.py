"""The figures of one replayed policy, read from its database at the end of the run. Input: the
scratch database (the engine's tables plus rulesctl_sim's arrivals and samples) and the instant the
run ended. Output: the `M` object of the JSON contract (issue 19), the runtime's invariants, and
the series the HTML report draws.

An item's wait is from its arrival to its first assignment (items still queued at the end are
not in the wait figures: they count in `queued_at_end`); its resolution from arrival to
completion. It is breached when it was completed after its SLA deadline or is still open past
it at the end. Its unit is the one that first took it, or the one it is queued for.
Utilisation is the mean of the engine's own `capacity_check` utilisation over the hourly
samples in which the unit had capacity. Figures are rounded (minutes to 0.1, rates to 0.0001)
so that the JSON of two identical runs is identical.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from engine.compiler.catalog import ACTIVE_STATUSES
from engine.compiler.sqltext import literal_list
from engine.database.invariants import all_violations

# Histogram edges (minutes) for the wait and resolution distributions.
EDGES = (0, 1, 5, 15, 30, 60, 120, 240, 480, 960, 1920, 3840)

PER_ITEM = f"""
WITH filed AS (
  SELECT a.request ->> 'work_item_id' AS work_item_id, a.request ->> 'work_item_type' AS work_item_type,
         a.request ->> 'priority' AS priority
  FROM rulesctl_sim.arrivals a WHERE a.at <= %(end)s
),
first_taken AS (
  SELECT DISTINCT ON (work_item_id) work_item_id, assigned_at, arrived_at, unit_id
  FROM assignments ORDER BY work_item_id, assigned_at, created_at
),
latest AS (
  SELECT DISTINCT ON (work_item_id) work_item_id, status, sla_deadline, completed_at, arrived_at
  FROM assignments ORDER BY work_item_id, assigned_at DESC, created_at DESC
)
SELECT f.work_item_id, f.work_item_type, f.priority,
       coalesce(t.unit_id, q.target_unit_id) AS unit_id,
       t.work_item_id IS NOT NULL AS assigned,
       q.work_item_id IS NOT NULL AS queued,
       x.work_item_id IS NOT NULL AS rejected,
       extract(epoch FROM t.assigned_at - t.arrived_at) / 60 AS wait_minutes,
       CASE WHEN l.status = 'completed' THEN extract(epoch FROM l.completed_at - l.arrived_at) / 60 END
         AS resolution_minutes,
       l.status = 'completed' AS completed,
       coalesce(CASE WHEN l.status IN ({literal_list(ACTIVE_STATUSES)}, 'completed') THEN l.sla_deadline END,
                q.sla_deadline) < coalesce(CASE WHEN l.status = 'completed' THEN l.completed_at END, %(end)s)
         AS breached
FROM filed f
LEFT JOIN first_taken t USING (work_item_id)
LEFT JOIN latest l USING (work_item_id)
LEFT JOIN assignment_queue q USING (work_item_id)
LEFT JOIN rulesctl_sim.rejected x USING (work_item_id)
"""

def measure(conn: psycopg.Connection, end: dt.datetime) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """(M, invariant violations by name, chart series) for the database at `end`."""
    with conn.transaction():
        conn.execute(f"CREATE TEMP TABLE sim_items ON COMMIT DROP AS {PER_ITEM}", {"end": end})
        m = _headline(conn)
        m["by_unit"] = _by_unit(conn)
        m["by_type_priority"] = _by_type_priority(conn)
        m["escalations"], m["escalations_by_level"] = _escalations(conn)
        series = {"units": _samples(conn), "wait_histogram": _histogram(conn, "wait_minutes"),
                  "resolution_histogram": _histogram(conn, "resolution_minutes"), "edges": list(EDGES)}
        requested = {row[0] for row in conn.execute("SELECT work_item_id FROM sim_items WHERE NOT rejected")}
    violations = {name: len(rows) for name, rows in all_violations(conn, requested).items()}
    m["over_wip"] = violations["staff over WIP"]
    return m, violations, series


def _minutes(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _headline(conn: psycopg.Connection) -> dict[str, Any]:
    row = conn.execute("""
        SELECT count(*), count(*) FILTER (WHERE assigned), count(*) FILTER (WHERE completed),
               count(*) FILTER (WHERE queued), count(*) FILTER (WHERE breached), count(*) FILTER (WHERE rejected),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_minutes),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_minutes), max(wait_minutes),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_minutes),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY resolution_minutes)
        FROM sim_items""").fetchone()
    assert row is not None
    items, assigned, completed, queued, breached, rejected = row[:6]
    return {"items": items, "assigned": assigned, "completed": completed, "queued_at_end": queued,
            "breached": breached, "breach_rate": _rate(breached, items), "rejected": rejected,
            "wait_minutes": {"p50": _minutes(row[6]), "p95": _minutes(row[7]), "max": _minutes(row[8])},
            "resolution_minutes": {"p50": _minutes(row[9]), "p95": _minutes(row[10])}}


def _by_unit(conn: psycopg.Connection) -> dict[str, Any]:
    rows = conn.execute("""
        WITH load AS (
          SELECT unit_id, count(*) AS items, count(*) FILTER (WHERE breached) AS breached,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_minutes) AS p50,
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_minutes) AS p95
          FROM sim_items WHERE unit_id IS NOT NULL GROUP BY unit_id),
        used AS (
          SELECT unit_id, avg((capacity ->> 'utilisation')::numeric) AS utilisation
          FROM rulesctl_sim.samples WHERE (capacity ->> 'capacity')::numeric > 0 GROUP BY unit_id)
        SELECT coalesce(l.unit_id, u.unit_id), coalesce(l.items, 0), coalesce(l.breached, 0), l.p50, l.p95,
               u.utilisation
        FROM load l FULL JOIN used u USING (unit_id) ORDER BY 1""").fetchall()
    return {r[0]: {"items": r[1], "breached": r[2], "wait_minutes": {"p50": _minutes(r[3]), "p95": _minutes(r[4])},
                   "utilisation": None if r[5] is None else round(float(r[5]) / 100, 4)} for r in rows}


def _by_type_priority(conn: psycopg.Connection) -> dict[str, Any]:
    rows = conn.execute("""
        SELECT work_item_type || '/' || priority, count(*), count(*) FILTER (WHERE breached)
        FROM sim_items GROUP BY 1 ORDER BY 1""").fetchall()
    return {r[0]: {"items": r[1], "breached": r[2], "breach_rate": _rate(r[2], r[1])} for r in rows}


def _escalations(conn: psycopg.Connection) -> tuple[int, dict[str, int]]:
    rows = conn.execute("""
        SELECT coalesce(level::text, reason::text), count(*) FROM escalation_events GROUP BY 1 ORDER BY 1""").fetchall()
    return sum(r[1] for r in rows), {r[0]: r[1] for r in rows}


def _samples(conn: psycopg.Connection) -> dict[str, Any]:
    rows = conn.execute("""
        SELECT unit_id, array_agg(extract(epoch FROM at)::bigint ORDER BY at),
               array_agg((capacity ->> 'queue_depth')::int ORDER BY at),
               array_agg(round((capacity ->> 'utilisation')::numeric / 100, 4) ORDER BY at)
        FROM rulesctl_sim.samples GROUP BY unit_id ORDER BY unit_id""").fetchall()
    return {r[0]: {"at": r[1], "queue_depth": r[2], "utilisation": [None if v is None else float(v) for v in r[3]]}
            for r in rows}


def _histogram(conn: psycopg.Connection, column: str) -> list[int]:
    counts: dict[int, int] = dict(conn.execute(f"""
        SELECT width_bucket({column}, %s::float8[]), count(*) FROM sim_items
        WHERE {column} IS NOT NULL GROUP BY 1""", [list(EDGES)]).fetchall())
    return [counts.get(n, 0) for n in range(1, len(EDGES) + 1)]
