-- pg_cron jobs of this database, by name (run only where the cron schema exists).
SELECT j.jobname AS name, jsonb_build_object('schedule', j.schedule, 'command', j.command, 'active', j.active) AS definition
FROM cron.job j
WHERE j.database = current_database() AND j.jobname IS NOT NULL
