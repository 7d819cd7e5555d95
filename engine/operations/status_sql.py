"""The read-only statements of `rulesctl status`. Each reads through an index where the table
can be large, most of them index-only (assignments: idx_assignments_sla_partial,
idx_assignments_status_sla_covering, idx_assignments_sla_warned; escalation_events:
idx_escalation_events_escalated_at; cron.job_run_details: its primary key, newest first).
"Running" is assigned or in_progress, the statuses whose SLA clock runs (on_hold pauses it),
as idx_assignments_sla_partial holds them.

SLA figures are at the engine's clock (engine_now()); pg_cron's at the server's (now()).
"""

from __future__ import annotations

from engine.compiler.catalog import ACTIVE_STATUSES

ACTIVE = ACTIVE_STATUSES                        # holding someone's capacity

HEAD = """
SELECT now() AS checked_at, to_regprocedure('engine_now()') IS NOT NULL AS engine,
       (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'pg_cron') AS cron,
       to_regclass('rulesctl.applies') IS NOT NULL AS ledger,
       current_setting('transaction_read_only') = 'on' AS read_only
"""

CLOCK = "SELECT engine_now()"        # read once and bound: an index bound, not a call per row

# Per unit: staff and capacity as capacity_check counts them (available people's load over
# their WIP limits: their own, else the unit's default -- counted apart and multiplied out, so
# the staff table is read without a join).
UNITS = """
WITH staff AS (
  SELECT s.unit_id, count(*) AS staff, count(*) FILTER (WHERE s.availability_status = 'available') AS available,
         coalesce(sum(s.current_assignment_count) FILTER (WHERE s.availability_status = 'available'), 0) AS load,
         coalesce(sum(s.wip_limit) FILTER (WHERE s.availability_status = 'available'), 0) AS own_limits,
         count(*) FILTER (WHERE s.availability_status = 'available' AND s.wip_limit IS NULL) AS on_default
  FROM staff_profiles s GROUP BY s.unit_id
), queue AS (
  SELECT q.target_unit_id AS unit_id, count(*) AS depth, min(q.created_at) AS oldest,
         count(*) FILTER (WHERE q.sla_deadline <= %(now)s) AS overdue
  FROM assignment_queue q GROUP BY q.target_unit_id
), units AS (
  SELECT u.id, u.name, u.retired, coalesce(s.staff, 0)::int AS staff, coalesce(s.available, 0)::int AS available,
         coalesce(s.load, 0)::int AS load,
         coalesce(s.own_limits + s.on_default * u.default_wip_limit, 0)::int AS capacity,
         coalesce(q.depth, 0)::int AS queue_depth, q.oldest, coalesce(q.overdue, 0)::int AS queued_overdue
  FROM organizational_units u
  LEFT JOIN staff s ON s.unit_id = u.id
  LEFT JOIN queue q ON q.unit_id = u.id
)
SELECT id AS unit_id, name, retired, staff, available, load, capacity,
       CASE WHEN capacity > 0 THEN round(100.0 * load / capacity, 1)::float8 END AS utilisation,
       queue_depth, oldest AS oldest_queued_at, queued_overdue
FROM units ORDER BY id
"""

# breaches_24h: deadlines that fell in the last 24 h and were not met (the work is still open,
# or was completed after it); overdue: running work past its deadline now; at_risk: running
# work the SLA monitor has warned about (an escalation level before the deadline has passed)
# whose deadline is still ahead.
SLA = """
SELECT
  ((SELECT count(*) FROM assignments a
    WHERE a.status = ANY (%(active)s::assignment_status[]) AND a.sla_deadline > %(since)s
      AND a.sla_deadline <= %(now)s)
   + (SELECT count(*) FROM assignments a
      WHERE a.status = 'completed' AND a.sla_deadline > %(since)s AND a.sla_deadline <= %(now)s
        AND a.completed_at > a.sla_deadline))::int AS breaches_24h,
  (SELECT count(*) FROM assignments a
   WHERE a.status IN ('assigned', 'in_progress') AND a.escalation_level > 0 AND a.sla_deadline > %(now)s)::int
    AS at_risk,
  (SELECT count(*) FROM assignments a
   WHERE a.status IN ('assigned', 'in_progress') AND a.sla_deadline <= %(now)s)::int AS overdue
"""

ESCALATIONS = """
SELECT e.reason::text, count(*)::int FROM escalation_events e WHERE e.escalated_at > %(since)s
GROUP BY e.reason ORDER BY e.reason
"""

# How many of pg_cron's newest run records are read (newest first, by its primary key): the
# history table grows without bound, a job every second adds 86,400 a day. A job whose last
# run is older than these shows no last run.
CRON_RUNS_READ = 100_000

JOBS = """
WITH recent AS MATERIALIZED (
  SELECT d.jobid, d.status, d.start_time, d.end_time, d.return_message
  FROM cron.job_run_details d
  WHERE d.runid > (SELECT coalesce(max(runid), 0) FROM cron.job_run_details) - %(window)s
)
SELECT j.jobname AS name, j.schedule, j.active,
       last.status AS last_status, last.start_time AS last_start,
       extract(epoch FROM last.end_time - last.start_time)::float8 AS last_seconds,
       (SELECT count(*) FROM recent r WHERE r.jobid = j.jobid AND r.start_time > now() - interval '24 hours')::int
         AS runs_24h,
       (SELECT count(*) FROM recent r WHERE r.jobid = j.jobid AND r.start_time > now() - interval '24 hours'
                                        AND r.status = 'failed')::int AS failures_24h,
       (SELECT r.return_message FROM recent r WHERE r.jobid = j.jobid AND r.status = 'failed'
        ORDER BY r.start_time DESC LIMIT 1) AS last_failure
FROM cron.job j
LEFT JOIN LATERAL (SELECT r.status, r.start_time, r.end_time FROM recent r WHERE r.jobid = j.jobid
                   ORDER BY r.start_time DESC NULLS LAST LIMIT 1) last ON true
ORDER BY j.jobname
"""

LAST_APPLY = """
SELECT a.id, a.outcome, coalesce(a.finished_at, a.started_at) AS at, a.policy_hash, a.git_commit, a.applied_by,
       a.statement_count, a.message,
       (SELECT max(b.id) FROM rulesctl.applies b WHERE b.outcome = 'applied') AS last_applied_id
FROM rulesctl.applies a ORDER BY a.id DESC LIMIT 1
"""
