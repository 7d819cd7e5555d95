"""Utilisation per unit per day. Input: a connection (in the report's read-only transaction)
and a window. Output: a `CapacityReport` read from `capacity_snapshots`, the rows the
`capacity-snapshot` job writes (capture_capacity_snapshot: one per unit per day, the day in the
unit's own time zone, utilisation = work held by available staff / their WIP limits, NULL when
nobody was available). The window's ends are read as dates in each unit's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg

from engine.operations.reports.figures import one_decimal
from engine.operations.reports.window import Window

_SNAPSHOTS = """
SELECT c.unit_id, u.name, c.snapshot_date, c.staff_count, c.capacity, c.assigned, c.utilisation, c.queue_depth
FROM capacity_snapshots c
JOIN organizational_units u ON u.id = c.unit_id
WHERE c.snapshot_date >= (%(since)s AT TIME ZONE u.timezone)::date
  AND c.snapshot_date <= (%(until)s AT TIME ZONE u.timezone)::date
ORDER BY u.name, c.unit_id, c.snapshot_date"""


@dataclass(frozen=True)
class CapacityDay:
    unit_id: str
    unit_name: str
    day: date
    staff: int                   # available staff when captured
    capacity: int                # their WIP limits, summed
    assigned: int                # capacity weight held by the unit's staff
    utilisation: float | None    # percent; None when nobody was available
    queue_depth: int


@dataclass(frozen=True)
class UnitUtilisation:
    """One unit over the window."""

    unit_id: str
    unit_name: str
    days: int
    mean: float | None
    peak: float | None
    peak_queue_depth: int


@dataclass(frozen=True)
class CapacityReport:
    window: Window
    rows: tuple[CapacityDay, ...]

    def days(self) -> list[date]:
        return sorted({row.day for row in self.rows})

    def units(self) -> list[tuple[str, str]]:
        """(unit id, name) in the rows' order (by name)."""
        return list(dict.fromkeys((row.unit_id, row.unit_name) for row in self.rows))

    def idle_units(self) -> list[str]:
        """Names of the units that had nobody available and nothing queued on every day."""
        busy = self._busy_unit_ids()
        return [name for unit_id, name in self.units() if unit_id not in busy]

    def _busy_unit_ids(self) -> set[str]:
        return {row.unit_id for row in self.rows if row.capacity or row.queue_depth}

    def without_idle_units(self) -> CapacityReport:
        """The same report without the idle units' rows: what the text and HTML views draw (they
        name the idle units once instead); JSON and CSV keep every row."""
        busy = self._busy_unit_ids()
        return CapacityReport(self.window, tuple(row for row in self.rows if row.unit_id in busy))

    def by_unit(self) -> list[UnitUtilisation]:
        summaries = []
        for unit_id, name in self.units():
            rows = [row for row in self.rows if row.unit_id == unit_id]
            known = [row.utilisation for row in rows if row.utilisation is not None]
            summaries.append(UnitUtilisation(
                unit_id, name, len(rows), one_decimal(sum(known) / len(known)) if known else None,
                max(known) if known else None, max(row.queue_depth for row in rows)))
        return summaries


def capacity_report(conn: psycopg.Connection, window: Window) -> CapacityReport:
    rows = conn.execute(_SNAPSHOTS, {"since": window.since, "until": window.until}).fetchall()
    return CapacityReport(window, tuple(
        CapacityDay(unit_id, name, day, staff, capacity, assigned, _percent(utilisation), queue_depth)
        for unit_id, name, day, staff, capacity, assigned, utilisation, queue_depth in rows))


def _percent(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
