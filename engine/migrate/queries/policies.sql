-- Row level security policies, by table.policy.
SELECT p.tablename || '.' || p.policyname AS name,
       jsonb_build_object('permissive', p.permissive, 'command', p.cmd, 'roles', to_jsonb(p.roles),
                          'using', p.qual, 'with_check', p.with_check) AS definition
FROM pg_policies p
WHERE p.schemaname = %(schema)s
