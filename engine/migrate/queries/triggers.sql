-- Triggers on the schema's tables (not the ones constraints make), with their enabled state
-- (O enabled, D disabled, R replica only, A always): a disabled engine trigger is drift.
SELECT t.tgname AS name, jsonb_build_object('table', c.relname, 'definition', pg_get_triggerdef(t.oid),
                                               'enabled', t.tgenabled::text) AS definition
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal
