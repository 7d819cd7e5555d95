-- pg_cron jobs of this database, by name (run only where the cron schema exists). A superuser
-- sees every role's jobs: where a name is held twice, the applying role's copy comes last and
-- is the one planned against (cron_owners.py notes the other copies).
SELECT j.jobname AS name, jsonb_build_object('schedule', j.schedule, 'command', j.command, 'active', j.active) AS definition
FROM cron.job j
WHERE j.database = current_database() AND j.jobname IS NOT NULL
ORDER BY j.jobname, j.username = current_user, j.jobid
