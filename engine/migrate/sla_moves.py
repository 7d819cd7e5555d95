"""What an SLA policy change does to work in progress. Input: the plan's connection, inside its
read-only transaction, after the desired objects are installed into the scratch schema. Output:
`SlaMoves` -- per clock (resolution; response, issue 17), how many running and queued items
change deadline, the largest move, and how many become at risk or breached at the engine's now
-- for the reason of the reschedule step and the plan's Impact.

The new schedule is the one sla_reschedule_checks() will write: each live item goes through the
scratch schema's sla_schedule_for() (the new policy's function, reading the new SLA matrix,
chains and calendars), an assignment not yet answered through its sla_response_deadline_for()
(unless `on_change: keep` keeps it, as sla_reschedule_checks decides), and every status through
its sla_status_at(), so the plan counts with the code apply runs, not a second model of it."""

from __future__ import annotations

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
class ClockMoves:
    """What one clock's deadlines do under the new policy."""
    running: int = 0                # assignments whose deadline changes (response: those not yet answered)
    queued: int = 0                 # queued items whose deadline changes (a response clock starts at assignment)
    largest_minutes: int = 0        # the largest move, either way
    at_risk: int = 0                # on track before, at risk after (at the engine's now)
    breached: int = 0               # not breached before, breached after

    @property
    def moves(self) -> bool:
        return bool(self.running or self.queued or self.at_risk or self.breached)


@dataclass(frozen=True)
class SlaMoves:
    resolution: ClockMoves = ClockMoves()
    response: ClockMoves = ClockMoves()

    def summary(self) -> str:
        parts = []
        if self.resolution.moves:
            r = self.resolution
            parts.append(f"{r.running} running and {r.queued} queued items change deadline, the largest by "
                         f"{_duration(r.largest_minutes)}; {r.at_risk} become at risk, {r.breached} become breached")
        if self.response.moves:
            r = self.response
            parts.append(f"{r.running} unanswered items change response deadline, the largest by "
                         f"{_duration(r.largest_minutes)}; {r.at_risk} become at risk, {r.breached} become breached "
                         f"on the response clock")
        return "; ".join(parts) or "no deadline moves"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaMoves:
        return cls(ClockMoves(**data["resolution"]), ClockMoves(**data["response"]))


def _duration(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return " ".join(part for part in parts if part) or "0m"


# Items: running and queued work with what both clocks are computed from. The response clock
# runs for assignments not yet answered (a queued item's starts at assignment); its new deadline
# is the one sla_reschedule_checks() writes: kept once answered or under `on_change: keep`.
_RESPONSE_CLOCK = ("a.first_response_at IS NULL AS unanswered, a.assigned_at,"
                   " a.response_paused_minutes AS response_paused, a.response_deadline")
# A database installed before the response clock has none of its columns: nothing of it moves.
_NO_RESPONSE_CLOCK = ("false AS unanswered, a.assigned_at, NULL::numeric AS response_paused,"
                      " NULL::timestamptz AS response_deadline")
_QUERY = """
WITH items AS (
  SELECT 'running' AS what, a.work_item_type::text AS type, a.priority::text AS priority, a.arrived_at,
         a.paused_working_minutes AS paused, a.paused_at, a.sla_deadline, a.escalation_level, true AS started,
         (SELECT max((e.details ->> 'threshold_percent')::numeric) FROM {live}.escalation_events e
          WHERE e.assignment_id = a.id) AS passed,
         {response_clock}
  FROM {live}.assignments a WHERE a.status::text IN ({active})
  UNION ALL
  SELECT 'queued', q.work_item_type::text, q.priority::text, q.arrived_at, q.paused_working_minutes, NULL,
         q.sla_deadline, 0, false, NULL, false, NULL, NULL, NULL
  FROM {live}.assignment_queue q
),
moved AS (
  SELECT i.what, i.unanswered, i.sla_deadline AS before, n.sla_deadline AS after,
         {new}.sla_status_at(c.calendar_id, i.arrived_at, i.paused, i.paused_at, i.sla_deadline,
                             c.warning_percent, {new}.engine_now()) AS status_before,
         {new}.sla_status_at(c.calendar_id, i.arrived_at, i.paused, i.paused_at, n.sla_deadline,
                             c.warning_percent, {new}.engine_now()) AS status_after,
         i.response_deadline AS response_before, r.response_deadline AS response_after,
         CASE WHEN i.unanswered THEN {new}.sla_status_at(c.calendar_id, i.assigned_at, i.response_paused,
           i.paused_at, i.response_deadline, c.warning_percent, {new}.engine_now()) END AS response_status_before,
         CASE WHEN i.unanswered THEN {new}.sla_status_at(c.calendar_id, i.assigned_at, i.response_paused,
           i.paused_at, r.response_deadline, c.warning_percent, {new}.engine_now()) END AS response_status_after
  FROM items i
  JOIN {new}.sla_configs c ON c.work_item_type::text = i.type AND c.priority::text = i.priority
  CROSS JOIN LATERAL {new}.sla_schedule_for(c.work_item_type, c.priority, i.arrived_at, i.paused,
                                           i.paused_at IS NOT NULL, i.started, i.sla_deadline,
                                           i.escalation_level, i.passed) n
  CROSS JOIN LATERAL (
    SELECT CASE WHEN NOT i.unanswered OR (c.keep_deadlines AND i.response_deadline IS NOT NULL)
                THEN i.response_deadline
                ELSE coalesce({new}.sla_response_deadline_for(c.work_item_type, c.priority, i.assigned_at,
                                                             i.response_paused), i.response_deadline)
           END AS response_deadline) r
)
SELECT count(*) FILTER (WHERE what = 'running' AND after IS DISTINCT FROM before),
       count(*) FILTER (WHERE what = 'queued' AND after IS DISTINCT FROM before),
       coalesce(max(abs(extract(epoch FROM after - before))), 0),
       count(*) FILTER (WHERE status_before = 'on_track' AND status_after = 'at_risk'),
       count(*) FILTER (WHERE status_before <> 'breached' AND status_after = 'breached'),
       count(*) FILTER (WHERE unanswered AND response_after IS DISTINCT FROM response_before),
       coalesce(max(abs(extract(epoch FROM response_after - response_before))) FILTER (WHERE unanswered), 0),
       count(*) FILTER (WHERE unanswered AND response_status_before = 'on_track'
                              AND response_status_after = 'at_risk'),
       count(*) FILTER (WHERE unanswered AND response_status_before <> 'breached'
                              AND response_status_after = 'breached')
FROM moved
"""


def measure_sla_moves(conn: psycopg.Connection[Any], live: Mapping[ObjectKey, LiveObject],
                      desired: Mapping[ObjectKey, LiveObject], scratch: str,
                      schema: str = catalog.SCHEMA) -> SlaMoves | None:
    """The moves, when the plan changes what SLA schedules are computed from and there is live
    work (None otherwise). Runs in the caller's transaction, with `scratch` still installed."""
    assignments = live.get(ObjectKey.of("table", "assignments", schema))
    if assignments is None:
        return None
    keys = {key for key in set(live) | set(desired) if schedules_clocks(key, schema)}
    if all(live.get(key) == desired.get(key) for key in keys):
        return None
    active = sql.SQL(", ").join(sql.Literal(status) for status in catalog.ACTIVE_STATUSES)
    has_response_clock = {"first_response_at", "response_paused_minutes", "response_deadline"} \
        <= assignments.definition["columns"].keys()       # the live table, as the plan read it
    response_clock = _RESPONSE_CLOCK if has_response_clock else _NO_RESPONSE_CLOCK
    query = sql.SQL(_QUERY).format(live=sql.Identifier(schema), new=sql.Identifier(scratch), active=active,
                                   response_clock=sql.SQL(response_clock))
    row = conn.execute(query).fetchone()
    assert row is not None
    running, queued, seconds, at_risk, breached, responding, response_seconds, response_at_risk, response_breached = row
    return SlaMoves(ClockMoves(running, queued, _minutes(seconds), at_risk, breached),
                    ClockMoves(responding, 0, _minutes(response_seconds), response_at_risk, response_breached))


def _minutes(seconds: Any) -> int:
    return round(float(seconds) / 60)
