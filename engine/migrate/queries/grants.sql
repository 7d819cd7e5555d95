-- Privileges the API roles (and PUBLIC) hold on the schema's tables, views and functions, by
-- object.privilege (functions by name(argument types)); every privilege the owner holds gets a row, so "nobody else" reads as [].
WITH objects AS (
  SELECT c.relname::text AS object, coalesce(c.relacl, acldefault('r', c.relowner)) AS acl
  FROM pg_class c WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p', 'v')
  UNION ALL
  SELECT p.proname || '(' || oidvectortypes(p.proargtypes) || ')', coalesce(p.proacl, acldefault('f', p.proowner))
  FROM pg_proc p WHERE p.pronamespace = %(schema)s::regnamespace
), privileges AS (
  SELECT o.object, a.privilege_type, a.grantee FROM objects o, aclexplode(o.acl) a
)
SELECT pr.object || '.' || lower(pr.privilege_type) AS name,
       to_jsonb(coalesce(array_agg(DISTINCT CASE WHEN pr.grantee = 0 THEN 'PUBLIC' ELSE r.rolname::text END)
                         FILTER (WHERE pr.grantee = 0 OR r.rolname IN ('anon', 'authenticated', 'service_role')),
                         '{}'::text[])) AS definition
FROM privileges pr LEFT JOIN pg_roles r ON r.oid = pr.grantee
GROUP BY 1
