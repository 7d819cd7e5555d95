-- Functions and procedures of the schema, by name(argument types), with their full
-- normalised definition (signature, volatility, security, settings, body) and kind (f function,
-- p procedure: GRANT/REVOKE must name which). The result type includes the columns of a
-- RETURNS TABLE: CREATE OR REPLACE cannot change those either.
SELECT p.proname || '(' || oidvectortypes(p.proargtypes) || ')' AS name,
       jsonb_build_object('definition', pg_get_functiondef(p.oid),
                          'returns', pg_get_function_result(p.oid),    -- a TABLE's columns too
                          'kind', p.prokind::text) AS definition
FROM pg_proc p
WHERE p.pronamespace = %(schema)s::regnamespace AND p.prokind IN ('f', 'p')
