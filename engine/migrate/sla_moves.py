"""What an SLA policy change does to work in progress. Input: the plan's connection, inside its
read-only transaction, after the desired objects are installed into the scratch schema. Output:
`SlaMoves` -- how many running and queued items change deadline, the largest move, and how many
become at risk or breached at the engine's now -- for the reason of the reschedule step.

The new schedule is the one sla_reschedule_checks() will write: each live item goes through the
scratch schema's sla_schedule_for() (the new policy's function, reading the new SLA matrix,
chains and calendars), and both statuses through its sla_status_at(), so the plan counts with
the code apply runs, not a second model of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey
from engine.migrate.kinds.function import routine_and_args
from engine.migrate.model import LiveObject


def schedules_clocks(key: ObjectKey, schema: str = catalog.SCHEMA) -> bool:
    """The object is one the SLA schedule of running and queued work is computed from."""
    if key.schema != schema:
        return False
    if key.kind == "seed":
        return key.name in catalog.SLA_SCHEDULE_SEEDS
    return key.kind == "function" and routine_and_args(key)[0] in catalog.SLA_SCHEDULE_FUNCTIONS


@dataclass(frozen=True)
class SlaMoves:
    running: int = 0                        # assignments whose deadline changes
    queued: int = 0                         # queued items whose deadline changes
    largest: dt.timedelta = dt.timedelta()  # the largest move, either way
    at_risk: int = 0                        # on track before, at risk after (at the engine's now)
    breached: int = 0                       # not breached before, breached after

    def summary(self) -> str:
        if not (self.running or self.queued or self.at_risk or self.breached):
            return "no deadline moves"
        return (f"{self.running} running and {self.queued} queued items change deadline, "
                f"the largest by {_duration(self.largest)}; {self.at_risk} become at risk, "
                f"{self.breached} become breached")


def _duration(delta: dt.timedelta) -> str:
    minutes = round(abs(delta).total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return " ".join(part for part in parts if part) or "0m"


_QUERY = """
WITH items AS (
  SELECT 'running' AS what, a.work_item_type::text AS type, a.priority::text AS priority, a.arrived_at,
         a.paused_working_minutes AS paused, a.paused_at, a.sla_deadline, a.escalation_level, true AS started,
         (SELECT max((e.details ->> 'threshold_percent')::numeric) FROM {live}.escalation_events e
          WHERE e.assignment_id = a.id) AS passed
  FROM {live}.assignments a WHERE a.status::text IN ({active})
  UNION ALL
  SELECT 'queued', q.work_item_type::text, q.priority::text, q.arrived_at, q.paused_working_minutes, NULL,
         q.sla_deadline, 0, false, NULL
  FROM {live}.assignment_queue q
),
moved AS (
  SELECT i.what, i.sla_deadline AS before, n.sla_deadline AS after,
         {new}.sla_status_at(c.calendar_id, i.arrived_at, i.paused, i.paused_at, i.sla_deadline,
                             c.warning_percent, {new}.engine_now()) AS status_before,
         {new}.sla_status_at(c.calendar_id, i.arrived_at, i.paused, i.paused_at, n.sla_deadline,
                             c.warning_percent, {new}.engine_now()) AS status_after
  FROM items i
  JOIN {new}.sla_configs c ON c.work_item_type::text = i.type AND c.priority::text = i.priority
  CROSS JOIN LATERAL {new}.sla_schedule_for(c.work_item_type, c.priority, i.arrived_at, i.paused,
                                           i.paused_at IS NOT NULL, i.started, i.sla_deadline,
                                           i.escalation_level, i.passed) n
)
SELECT count(*) FILTER (WHERE what = 'running' AND after IS DISTINCT FROM before),
       count(*) FILTER (WHERE what = 'queued' AND after IS DISTINCT FROM before),
       coalesce(max(abs(extract(epoch FROM after - before))), 0),
       count(*) FILTER (WHERE status_before = 'on_track' AND status_after = 'at_risk'),
       count(*) FILTER (WHERE status_before <> 'breached' AND status_after = 'breached')
FROM moved
"""


def measure_sla_moves(conn: psycopg.Connection[Any], live: Mapping[ObjectKey, LiveObject],
                      desired: Mapping[ObjectKey, LiveObject], scratch: str,
                      schema: str = catalog.SCHEMA) -> SlaMoves | None:
    """The moves, when the plan changes what SLA schedules are computed from and there is live
    work (None otherwise). Runs in the caller's transaction, with `scratch` still installed."""
    if ObjectKey.of("table", "assignments", schema) not in live:
        return None
    keys = {key for key in set(live) | set(desired) if schedules_clocks(key, schema)}
    if all(live.get(key) == desired.get(key) for key in keys):
        return None
    active = sql.SQL(", ").join(sql.Literal(status) for status in catalog.ACTIVE_STATUSES)
    query = sql.SQL(_QUERY).format(live=sql.Identifier(schema), new=sql.Identifier(scratch), active=active)
    row = conn.execute(query).fetchone()
    assert row is not None
    running, queued, seconds, at_risk, breached = row
    return SlaMoves(running, queued, dt.timedelta(seconds=float(seconds)), at_risk, breached)
