-- Which roles hold each pg_cron job of this database (pg_cron keys a job by name and role).
-- Row level security on cron.job shows a role that is not a superuser only its own rows.
SELECT j.jobname AS name, array_agg(j.username::text ORDER BY j.username) AS holders
FROM cron.job j
WHERE j.database = current_database() AND j.jobname IS NOT NULL
GROUP BY j.jobname
