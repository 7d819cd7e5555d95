-- Triggers on the schema's tables (not the ones constraints make).
SELECT t.tgname AS name, jsonb_build_object('table', c.relname, 'definition', pg_get_triggerdef(t.oid)) AS definition
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal
