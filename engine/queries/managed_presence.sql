-- Which of the managed objects (kind, name) exist. Seed rows, grants, cluster-wide roles and
-- pg_cron's extension and jobs (present only where pg_cron can live) are not looked up.
SELECT o.key,
       CASE o.kind
         -- by schema and name: to_regprocedure() raises, not NULL, when an argument type is missing
         WHEN 'function' THEN EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                      WHERE n.nspname = split_part(o.name, '.', 1)
                                        AND p.proname = split_part(split_part(o.name, '.', 2), '(', 1))
         WHEN 'enum'     THEN to_regtype(o.name) IS NOT NULL
         WHEN 'table'    THEN to_regclass(o.name) IS NOT NULL
         WHEN 'index'    THEN to_regclass(o.name) IS NOT NULL
         WHEN 'view'     THEN to_regclass(o.name) IS NOT NULL
         WHEN 'trigger'  THEN EXISTS (SELECT 1 FROM pg_trigger t
                                      JOIN pg_class c ON c.oid = t.tgrelid
                                      JOIN pg_namespace n ON n.oid = c.relnamespace
                                      WHERE t.tgname = split_part(o.name, '.', 2) AND NOT t.tgisinternal
                                        AND n.nspname = split_part(o.name, '.', 1))
         WHEN 'rls'      THEN coalesce((SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = to_regclass(o.name)), false)
         WHEN 'publication' THEN EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = o.name)
         WHEN 'publication_table' THEN EXISTS (SELECT 1 FROM pg_publication_tables p
                                      WHERE p.pubname = split_part(o.name, '/', 1)
                                        AND p.schemaname || '.' || p.tablename = split_part(o.name, '/', 2))
         WHEN 'policy'   THEN EXISTS (SELECT 1 FROM pg_policies p
                                      WHERE p.schemaname || '.' || p.tablename || '.' || p.policyname = o.name)
       END AS present
FROM unnest(%(kinds)s::text[], %(names)s::text[], %(keys)s::text[]) AS o(kind, name, key)
WHERE o.kind NOT IN ('seed', 'grant', 'role', 'extension', 'cron_job')
