-- Privileges the API roles (and PUBLIC) hold on the schema's tables, views and functions,
-- by object.privilege. The owner's own privileges are not part of the policy.
WITH acl AS (
  SELECT c.relname AS object, (aclexplode(c.relacl)).*
  FROM pg_class c WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p', 'v')
  UNION ALL
  SELECT p.proname, (aclexplode(coalesce(p.proacl, acldefault('f', p.proowner)))).*
  FROM pg_proc p WHERE p.pronamespace = %(schema)s::regnamespace
)
SELECT acl.object || '.' || lower(acl.privilege_type) AS name,
       to_jsonb(array_agg(DISTINCT CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE r.rolname::text END)) AS definition
FROM acl LEFT JOIN pg_roles r ON r.oid = acl.grantee
WHERE acl.grantee = 0 OR r.rolname IN ('anon', 'authenticated', 'service_role')
GROUP BY 1
