-- Tables of the schema in the realtime publication.
SELECT t.pubname || '/' || %(schema)s || '.' || t.tablename AS name, to_jsonb(true) AS definition
FROM pg_publication_tables t
WHERE t.schemaname = %(schema)s
