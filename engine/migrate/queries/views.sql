-- Views of the schema: query and options (security_invoker ...).
SELECT c.relname AS name, jsonb_build_object('query', pg_get_viewdef(c.oid),
                                             'options', coalesce(to_jsonb(c.reloptions), '[]'::jsonb)) AS definition
FROM pg_class c
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'v'
