"""SLA attainment and breaches. Input: a connection (in the report's read-only transaction)
and a window. Output: an `SlaReport`, one row per clock, unit, work item type and priority.

Which items count, per clock:
- resolution: assignments completed in the window (met, or breached when the engine's
  `sla_status_at` at completion says so), and work still open at the window's end -- assigned or
  queued, wherever it arrived -- as breached, at risk or on track by `sla_status_at` then.
  Rows handed on (`reassigned`) or `cancelled` are not outcomes: the item's next row carries it.
- response (when the engine keeps the response clock): each assignment's first response, by
  the engine's `sla_response_state`: answered in the window (met, or late), or unanswered and
  still active at the window's end (breached, at risk or on track then).
Attainment = met / (met + breached); items without a deadline are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import psycopg

from engine.compiler.catalog import ACTIVE_STATUSES
from engine.compiler.sqltext import literal_list
from engine.operations.reports.figures import share
from engine.operations.reports.window import Window

ACTIVE = f"({literal_list(ACTIVE_STATUSES)})"
RESOLUTION, RESPONSE = "resolution", "response"
RESPONSE_COLUMNS = {"response_deadline", "first_response_at"}

# Each item's clock outcome: the engine's status (sla_status_at, what sla_state reads) at its
# completion, 'met' or 'late', or at the window's end for open work. Called directly with the
# SLA config joined once: through sla_state (a row-typed SQL wrapper) it costs twice as much.
# The calendar arithmetic in it is the report's whole cost (~50 us an item here).
_RESOLUTION_ITEMS = f"""
  SELECT i.unit_id, i.work_item_type, i.priority,
         CASE WHEN NOT i.done THEN s.status WHEN s.status = 'breached' THEN 'late'
              WHEN s.status = 'none' THEN 'no_sla' ELSE 'met' END AS outcome    -- its SLA is gone: not counted
  FROM (
    SELECT coalesce(a.unit_id, a.target_unit_id) AS unit_id, a.work_item_type, a.priority, a.arrived_at,
           a.paused_working_minutes, a.paused_at, a.sla_deadline, a.status = 'completed' AS done,
           CASE WHEN a.status = 'completed' THEN a.completed_at ELSE %(until)s END AS at
    FROM assignments a
    WHERE a.sla_deadline IS NOT NULL
      AND ((a.status = 'completed' AND a.completed_at >= %(since)s AND a.completed_at < %(until)s)
           OR (a.status IN {ACTIVE} AND a.arrived_at < %(until)s))
    UNION ALL
    SELECT q.target_unit_id, q.work_item_type, q.priority, q.arrived_at, q.paused_working_minutes, NULL, q.sla_deadline,
           false, %(until)s
    FROM assignment_queue q
    WHERE q.sla_deadline IS NOT NULL AND q.arrived_at < %(until)s
  ) i
  LEFT JOIN sla_configs c ON c.work_item_type = i.work_item_type AND c.priority = i.priority
  -- OFFSET 0 keeps the subquery whole: inlined, the call would run once per mention of status
  CROSS JOIN LATERAL (SELECT sla_status_at(c.calendar_id, i.arrived_at, i.paused_working_minutes, i.paused_at,
                                           i.sla_deadline, c.warning_percent, i.at) AS status
                      OFFSET 0) s"""

# The response clock (each assignment's, from its start to its first response), by the engine's
# sla_response_state: answered in the window (met, or late), or unanswered and still active.
_RESPONSE_ITEMS = f"""
  SELECT coalesce(a.unit_id, a.target_unit_id) AS unit_id, a.work_item_type, a.priority,
         CASE WHEN r.status = 'breached' AND a.first_response_at IS NOT NULL THEN 'late' ELSE r.status END AS outcome
  FROM assignments a
  CROSS JOIN LATERAL sla_response_state(a, %(until)s) r
  WHERE a.response_deadline IS NOT NULL
    AND ((a.first_response_at >= %(since)s AND a.first_response_at < %(until)s)
         OR (a.first_response_at IS NULL AND a.status IN {ACTIVE} AND a.arrived_at < %(until)s))"""

_PRIORITIES = "SELECT e.p::text AS priority FROM unnest(enum_range(NULL::priority_level)) AS e(p) ORDER BY e.p DESC"

_COUNT = """
SELECT i.unit_id, coalesce(u.name, i.unit_id) AS unit_name, i.work_item_type::text, i.priority::text,
       count(*) FILTER (WHERE i.outcome = 'met') AS met,
       count(*) FILTER (WHERE i.outcome = 'late') AS breached_late,
       count(*) FILTER (WHERE i.outcome = 'breached') AS open_breached,
       count(*) FILTER (WHERE i.outcome = 'at_risk') AS open_at_risk,
       count(*) FILTER (WHERE i.outcome IN ('on_track', 'none')) AS open_on_track
FROM ({items}) i
LEFT JOIN organizational_units u ON u.id = i.unit_id
GROUP BY i.unit_id, u.name, i.work_item_type, i.priority
ORDER BY coalesce(u.name, i.unit_id), i.work_item_type, i.priority DESC"""


@dataclass(frozen=True)
class SlaCounts:
    """What happened to the items of one group on one clock."""

    met: int = 0
    breached_late: int = 0      # done, but after the deadline
    open_breached: int = 0      # still open past the deadline
    open_at_risk: int = 0       # still open, past the warning share
    open_on_track: int = 0

    @property
    def breached(self) -> int:
        return self.breached_late + self.open_breached

    @property
    def attainment(self) -> float | None:
        """Percent of the decided items that met the deadline; None when nothing was decided."""
        return share(self.met, self.met + self.breached)

    def __add__(self, other: SlaCounts) -> SlaCounts:
        return SlaCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, Any]:
        counts = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**counts, "breached": self.breached, "attainment_percent": self.attainment}


@dataclass(frozen=True)
class SlaRow:
    clock: str
    unit_id: str
    unit_name: str
    work_item_type: str
    priority: str
    counts: SlaCounts


@dataclass(frozen=True)
class SlaReport:
    window: Window
    clocks: tuple[str, ...]
    priorities: tuple[str, ...]        # the engine's priority_level values, highest first
    rows: tuple[SlaRow, ...] = field(default=())

    def total(self, clock: str) -> SlaCounts:
        return sum((r.counts for r in self.rows if r.clock == clock), SlaCounts())

    def by_unit(self, clock: str) -> list[tuple[str, str, SlaCounts]]:
        """(unit id, unit name, counts), in the rows' order (by unit name)."""
        return [(unit_id, name, counts) for (unit_id, name), counts in
                _group(self.rows, clock, lambda r: (r.unit_id, r.unit_name)).items()]

    def by_type_priority(self, clock: str) -> list[tuple[str, str, SlaCounts]]:
        """(work item type, priority, counts), by type, priorities from the highest."""
        grouped = _group(self.rows, clock, lambda r: (r.work_item_type, r.priority))
        order = {key: index for index, key in enumerate(self.priorities)}
        return [(t, p, c) for (t, p), c in sorted(grouped.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))]


def _group(rows: Iterable[SlaRow], clock: str, key: Callable[[SlaRow], tuple[str, str]]) -> dict:
    grouped: dict[tuple[str, str], SlaCounts] = {}
    for row in rows:
        if row.clock == clock:
            grouped[key(row)] = grouped.get(key(row), SlaCounts()) + row.counts
    return grouped


def has_response_clock(conn: psycopg.Connection) -> bool:
    """Whether the engine keeps the response clock (its columns and sla_response_state); an
    engine installed before it reports resolution only."""
    found = {name for (name,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('assignments') AND NOT attisdropped"
        " AND attname = ANY(%s)", [sorted(RESPONSE_COLUMNS)]).fetchall()}
    function = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'sla_response_state'"
                            " AND pronamespace = current_schema()::regnamespace)").fetchone()
    return found == RESPONSE_COLUMNS and bool(function and function[0])


def sla_report(conn: psycopg.Connection, window: Window) -> SlaReport:
    clocks = {RESOLUTION: _RESOLUTION_ITEMS}
    if has_response_clock(conn):
        clocks[RESPONSE] = _RESPONSE_ITEMS
    priorities = [p for (p,) in conn.execute(_PRIORITIES).fetchall()]
    rows = []
    for clock, items in clocks.items():
        params: dict[str, datetime] = {"since": window.since, "until": window.until}
        for unit_id, unit_name, work_item_type, priority, *counts in conn.execute(
                _COUNT.format(items=items), params).fetchall():
            rows.append(SlaRow(clock, unit_id, unit_name, work_item_type, priority, SlaCounts(*counts)))
    return SlaReport(window, tuple(clocks), tuple(priorities), tuple(rows))
