-- Tables of the schema: columns by name (type, nullability, default, identity; column order is
-- not compared: a column added later sits last), constraints by name,
-- storage options. Run with search_path = pg_catalog so every type and reference is qualified.
SELECT c.relname AS name, jsonb_build_object(
  'columns', coalesce((SELECT jsonb_object_agg(a.attname, jsonb_build_object(
                'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
                'default', pg_get_expr(d.adbin, d.adrelid), 'identity', a.attidentity, 'generated', a.attgenerated))
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'::jsonb),
  'constraints', coalesce((SELECT jsonb_object_agg(co.conname, pg_get_constraintdef(co.oid))
                           FROM pg_constraint co WHERE co.conrelid = c.oid), '{}'::jsonb),
  'options', coalesce(to_jsonb(c.reloptions), '[]'::jsonb)) AS definition
FROM pg_class c
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p')
