"""`rulesctl status`: one screen for operators. Input: a database URL. Output: a `Status` --
pg_cron jobs (last run, duration, runs and failures in the last 24 h); per unit the staff,
load / capacity, queue depth, oldest queued item and queued work past its deadline; SLA
breaches in the last 24 h, running work at risk and overdue; escalations in the last 24 h by
reason; drift; the last apply.

Everything is read in one READ ONLY, REPEATABLE READ transaction (one consistent moment; no
lock beyond a reader's): a first look at what the database has, the figures in one pipelined
batch of statements (status_sql.py), then the drift check. Drift is the cheap one: the live
managed objects' hashes against what rulesctl recorded installing (rulesctl.managed_objects),
as `rulesctl drift` marks drift, without rendering the policy; whether rules/ itself differs
from the database takes a plan.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from engine.compiler import catalog
from engine.database.connect import connect
from engine.errors import DatabaseError
from engine.migrate.kinds import KINDS
from engine.migrate.ledger import require_ledger_access
from engine.migrate.plan import object_hash, read_owned
from engine.operations import status_sql as q


@dataclass(frozen=True)
class UnitStatus:
    unit_id: str
    name: str
    retired: bool
    staff: int
    available: int
    load: int                          # active work held by the unit's available people (weighted)
    capacity: int                      # their WIP limits
    utilisation: float | None          # load / capacity in %, as capacity_check says it
    queue_depth: int
    oldest_queued_at: datetime | None
    queued_overdue: int                # queued past their deadline (time queued counts)


@dataclass(frozen=True)
class JobStatus:
    name: str
    schedule: str
    active: bool
    last_status: str | None
    last_start: datetime | None
    last_seconds: float | None
    runs_24h: int
    failures_24h: int
    last_failure: str | None


@dataclass
class Status:
    checked_at: datetime
    engine_now: datetime
    units: list[UnitStatus]
    sla: dict[str, int]                          # breaches_24h, at_risk, overdue (see status_sql.SLA)
    escalations_24h: dict[str, int]
    jobs: list[JobStatus] | None                 # None: pg_cron is not installed in this database
    cron_note: str
    drift: bool | None                           # None: nothing installed by rulesctl yet
    drifted: list[str] = field(default_factory=list)
    managed: int = 0
    last_apply: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    read_only: bool = True                       # as the server says the transaction was

    def totals(self) -> dict[str, int]:
        return {name: sum(getattr(unit, name) for unit in self.units)
                for name in ("staff", "available", "load", "capacity", "queue_depth", "queued_overdue")}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["totals"] = self.totals()
        data["escalations_24h_total"] = sum(self.escalations_24h.values())
        return _jsonable(data)


def read_status(url: str) -> Status:
    try:
        with connect(url) as conn:
            return read_status_on(conn)
    except psycopg.Error as exc:
        raise DatabaseError(f"status failed: {str(exc).strip()}") from None


def read_status_on(conn: psycopg.Connection[Any]) -> Status:
    """On an open connection that is in no transaction (--watch's, the benchmark's)."""
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    with conn.transaction(force_rollback=True):
        return _read(conn)


def _read(conn: psycopg.Connection[Any]) -> Status:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    require_ledger_access(conn)
    head_row = conn.cursor(row_factory=dict_row).execute(q.HEAD).fetchone()
    if not head_row or not head_row["engine"]:
        raise DatabaseError("no engine in this database (engine_now() is missing): install it with `rulesctl apply`")
    engine_now = conn.execute(q.CLOCK).fetchone()[0]                     # type: ignore[index]
    at = {"now": engine_now, "since": engine_now - timedelta(hours=24), "active": list(q.ACTIVE)}
    with conn.pipeline():
        units = conn.cursor(row_factory=dict_row).execute(q.UNITS, at)
        sla = conn.cursor(row_factory=dict_row).execute(q.SLA, at)
        escalations = conn.execute(q.ESCALATIONS, at)
        unit_rows, sla_row, escalation_rows = units.fetchall(), sla.fetchone(), escalations.fetchall()
    assert sla_row is not None
    timings["figures"] = time.perf_counter() - clock
    clock = time.perf_counter()
    jobs = _jobs(conn) if head_row["cron"] else None
    cron_note = (f"pg_cron {head_row['cron']}" if head_row["cron"]
                 else "pg_cron not installed in this database: the scheduled jobs do not run here")
    last_apply = None
    if head_row["ledger"]:
        last_apply = conn.cursor(row_factory=dict_row).execute(q.LAST_APPLY).fetchone()
    timings["jobs_and_ledger"] = time.perf_counter() - clock
    clock = time.perf_counter()
    drift, drifted, managed = _drift(conn)
    timings["drift"] = time.perf_counter() - clock
    return Status(head_row["checked_at"], engine_now, [UnitStatus(**row) for row in unit_rows],
                  dict(sla_row), {reason: count for reason, count in escalation_rows}, jobs, cron_note, drift, drifted,
                  managed, last_apply, timings, head_row["read_only"])


def _jobs(conn: psycopg.Connection[Any]) -> list[JobStatus]:
    rows = conn.cursor(row_factory=dict_row).execute(q.JOBS, {"window": q.CRON_RUNS_READ}).fetchall()
    return [JobStatus(**row) for row in rows]


def _drift(conn: psycopg.Connection[Any]) -> tuple[bool | None, list[str], int]:
    """Managed objects whose live definition is not what rulesctl installed (or that are gone)."""
    owned = read_owned(conn)
    if not owned:
        return None, [], 0
    conn.execute("SET LOCAL search_path = pg_catalog")         # as introspect(): every name qualified; last
    live = {obj.key: obj for kind in KINDS.values() for obj in kind.introspect(conn, catalog.SCHEMA)}
    drifted = sorted(str(key) for key, digest in owned.items() if key not in live or object_hash(live[key]) != digest)
    return bool(drifted), drifted, len(owned)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, int | float):   # Decimal
        return float(value)
    return value
