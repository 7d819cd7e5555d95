"""SLA and capacity reports (`rulesctl report sla|capacity`). Input: a database URL, a
`--since` and a format. Output: the report as text, JSON, CSV or a self-contained HTML page.

Everything is read in one read-only REPEATABLE READ transaction, so the figures are one
consistent picture and a report can never write. The report ends at the database's clock,
engine_now(), so a session with a moved engine clock (tests, simulations) reports as of then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from engine.database.connect import connect
from engine.errors import DatabaseError
from engine.operations.reports import formats, html
from engine.operations.reports.capacity import CapacityReport, capacity_report
from engine.operations.reports.sla import SlaReport, sla_report
from engine.operations.reports.window import ReportError, Since, parse_since

FORMATS = ("text", "json", "csv", "html")
KINDS: dict[str, Callable[..., Any]] = {"sla": sla_report, "capacity": capacity_report}
RENDERERS: dict[tuple[str, str], Callable[[Any], str]] = {
    ("sla", "text"): formats.sla_text, ("sla", "json"): formats.sla_json, ("sla", "csv"): formats.sla_csv,
    ("sla", "html"): html.sla_html,
    ("capacity", "text"): formats.capacity_text, ("capacity", "json"): formats.capacity_json,
    ("capacity", "csv"): formats.capacity_csv, ("capacity", "html"): html.capacity_html,
}

__all__ = ["FORMATS", "ReportError", "Since", "build_report", "parse_since", "read_report", "render_report"]


def read_report(conn: psycopg.Connection, kind: str, since: Since) -> SlaReport | CapacityReport:
    """The report from an open connection, in a read-only snapshot of its own."""
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():
            installed = conn.execute("SELECT to_regprocedure('engine_now()') IS NOT NULL"
                                     " AND to_regclass('capacity_snapshots') IS NOT NULL").fetchone()
            if not (installed and installed[0]):
                raise DatabaseError("the engine is not installed in this database: run `rulesctl apply` first")
            until: datetime = conn.execute("SELECT engine_now()").fetchone()[0]    # type: ignore[index]
            result: SlaReport | CapacityReport = KINDS[kind](conn, since.window(until))
            return result
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedColumn) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise DatabaseError(f"the engine in this database lacks what the report reads ({first_line}): "
                            "run `rulesctl apply` with this rulesctl first") from None


def render_report(report: SlaReport | CapacityReport, fmt: str) -> str:
    kind = "sla" if isinstance(report, SlaReport) else "capacity"
    return RENDERERS[(kind, fmt)](report)


def build_report(database_url: str, kind: str, since: Since, fmt: str) -> str:
    """Connect, read the report, render it."""
    if kind not in KINDS:
        raise ReportError(f"unknown report {kind!r}: expected one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ReportError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    with connect(database_url) as conn:
        return render_report(read_report(conn, kind, since), fmt)
