-- Enums of the schema: name -> labels in declared order.
SELECT t.typname AS name, to_jsonb(array_agg(e.enumlabel::text ORDER BY e.enumsortorder)) AS definition
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typnamespace = %(schema)s::regnamespace
GROUP BY t.typname
