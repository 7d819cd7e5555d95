-- Tables of the schema with row level security enabled.
SELECT c.relname AS name, jsonb_build_object('enabled', true, 'forced', c.relforcerowsecurity) AS definition
FROM pg_class c
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p') AND c.relrowsecurity
