-- Indexes of the schema that no constraint owns (primary keys and UNIQUE constraints are
-- part of their table).
SELECT i.relname AS name, to_jsonb(pg_get_indexdef(i.oid)) AS definition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE i.relnamespace = %(schema)s::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = x.indexrelid)
