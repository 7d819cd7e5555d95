-- Per pg_cron job, the role that last scheduled or rescheduled it through rulesctl, and that
-- apply's id, unless its last step on the job was an unschedule (only applied rows ran).
SELECT name, applied_by, apply_id FROM (
  SELECT DISTINCT ON (s ->> 'step') substr(s ->> 'step', length('cron_job:') + 1) AS name,
         a.applied_by, a.id AS apply_id, s ->> 'action' AS action
  FROM rulesctl.applies a CROSS JOIN LATERAL jsonb_array_elements(a.statements) s
  WHERE a.outcome = 'applied' AND s ->> 'step' LIKE 'cron_job:%'
  ORDER BY s ->> 'step', a.id DESC
) last
WHERE action <> 'unschedule'
