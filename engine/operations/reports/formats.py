"""A report as text (aligned tables), JSON (the contract: stable keys, numbers as numbers) or
CSV (one row per unit × type × priority × clock, or per unit × day). Input: an `SlaReport` or
a `CapacityReport`. Output: a string. The HTML page is html.py's."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from engine.operations.reports.capacity import CapacityReport
from engine.operations.reports.sla import SlaCounts, SlaReport

SLA_COLUMNS = ("met", "breached", "breached_late", "open_breached", "open_at_risk", "open_on_track",
               "attainment_percent")
CAPACITY_COLUMNS = ("staff", "capacity", "assigned", "utilisation_percent", "queue_depth")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int) -> str:
    """An aligned text table: columns from `numeric_from` on are right-aligned."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i >= numeric_from else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def _window(report: SlaReport | CapacityReport) -> dict[str, str]:
    return {"since": report.window.since.isoformat(), "until": report.window.until.isoformat()}


# ------------------------------------------------------------------------------------------ SLA

def _counts_cells(counts: SlaCounts) -> list[Any]:
    return [counts.met, counts.breached, counts.breached_late, counts.open_breached, counts.open_at_risk,
            counts.open_on_track, percent(counts.attainment)]


def sla_text(report: SlaReport) -> str:
    out = [f"SLA report {report.window.since:%Y-%m-%d %H:%M} .. {report.window.until:%Y-%m-%d %H:%M %Z}"]
    headers = ["met", "breached", "late", "open past", "at risk", "on track", "attainment"]
    for clock in report.clocks:
        total = report.total(clock)
        out += ["", f"{clock}: {percent(total.attainment)} met ({total.met} of {total.met + total.breached} decided), "
                    f"{total.breached} breached ({total.open_breached} still open), {total.open_at_risk} at risk"]
        rows = [[r.unit_name, r.work_item_type, r.priority, *_counts_cells(r.counts)]
                for r in report.rows if r.clock == clock]
        out += ["", table(["unit", "type", "priority", *headers], rows, 3) if rows else "(no items in the window)"]
        if rows:
            out += ["", table(["unit", *headers], [[name, *_counts_cells(c)] for _, name, c in report.by_unit(clock)],
                              1)]
            out += ["", table(["type", "priority", *headers],
                              [[t, p, *_counts_cells(c)] for t, p, c in report.by_type_priority(clock)], 2)]
    return "\n".join(out) + "\n"


def sla_json(report: SlaReport) -> str:
    document = {
        "report": "sla", **_window(report), "clocks": list(report.clocks),
        "rows": [{"clock": r.clock, "unit_id": r.unit_id, "unit_name": r.unit_name, "work_item_type": r.work_item_type,
                  "priority": r.priority, **r.counts.as_dict()} for r in report.rows],
        "by_unit": [{"clock": clock, "unit_id": unit_id, "unit_name": name, **c.as_dict()}
                    for clock in report.clocks for unit_id, name, c in report.by_unit(clock)],
        "by_type_priority": [{"clock": clock, "work_item_type": t, "priority": p, **c.as_dict()}
                             for clock in report.clocks for t, p, c in report.by_type_priority(clock)],
        "totals": [{"clock": clock, **report.total(clock).as_dict()} for clock in report.clocks],
    }
    return json.dumps(document, indent=2) + "\n"


def sla_csv(report: SlaReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clock", "unit_id", "unit_name", "work_item_type", "priority", *SLA_COLUMNS])
    for r in report.rows:
        counts = r.counts.as_dict()
        writer.writerow([r.clock, r.unit_id, r.unit_name, r.work_item_type, r.priority,
                         *("" if counts[c] is None else counts[c] for c in SLA_COLUMNS)])
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- capacity

def capacity_text(report: CapacityReport) -> str:
    out = [f"Capacity report {report.window.since:%Y-%m-%d} .. {report.window.until:%Y-%m-%d} "
           f"(daily snapshots, utilisation of available staff's WIP limits)"]
    if not report.rows:
        return out[0] + "\n\n(no capacity snapshots in the window: the capacity-snapshot job writes them daily)\n"
    shown = report.without_idle_units()
    out += ["", table(["unit", "day", "staff", "capacity", "assigned", "utilisation", "queue"],
                      [[r.unit_name, r.day.isoformat(), r.staff, r.capacity, r.assigned, percent(r.utilisation),
                        r.queue_depth] for r in shown.rows], 2)]
    out += ["", table(["unit", "days", "mean", "peak", "peak queue"],
                      [[u.unit_name, u.days, percent(u.mean), percent(u.peak), u.peak_queue_depth]
                       for u in shown.by_unit()], 1)]
    if idle := report.idle_units():
        out += ["", f"nobody available and nothing queued on any day (not listed): {', '.join(idle)}"]
    return "\n".join(out) + "\n"


def capacity_json(report: CapacityReport) -> str:
    document = {
        "report": "capacity", **_window(report),
        "rows": [{"unit_id": r.unit_id, "unit_name": r.unit_name, "day": r.day.isoformat(), "staff": r.staff,
                  "capacity": r.capacity, "assigned": r.assigned, "utilisation_percent": r.utilisation,
                  "queue_depth": r.queue_depth} for r in report.rows],
        "by_unit": [{"unit_id": u.unit_id, "unit_name": u.unit_name, "days": u.days,
                     "mean_utilisation_percent": u.mean, "peak_utilisation_percent": u.peak,
                     "peak_queue_depth": u.peak_queue_depth} for u in report.by_unit()],
    }
    return json.dumps(document, indent=2) + "\n"


def capacity_csv(report: CapacityReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["unit_id", "unit_name", "day", *CAPACITY_COLUMNS])
    for r in report.rows:
        writer.writerow([r.unit_id, r.unit_name, r.day.isoformat(), r.staff, r.capacity, r.assigned,
                         "" if r.utilisation is None else r.utilisation, r.queue_depth])
    return buffer.getvalue()
