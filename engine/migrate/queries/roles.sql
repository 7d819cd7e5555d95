-- The managed roles (anon, authenticated, service_role): the attributes that widen what a role
-- may do, and which of the other managed roles it is a member of (GRANT service_role TO
-- authenticated hands one the other's rights).
SELECT r.rolname::text AS name,
       jsonb_build_object('superuser', r.rolsuper, 'createrole', r.rolcreaterole, 'createdb', r.rolcreatedb,
                          'replication', r.rolreplication, 'bypassrls', r.rolbypassrls, 'login', r.rolcanlogin,
                          'member_of', to_jsonb(ARRAY(SELECT g.rolname::text FROM pg_auth_members m
                                                      JOIN pg_roles g ON g.oid = m.roleid
                                                      WHERE m.member = r.oid AND g.rolname = ANY (%(roles)s)
                                                      ORDER BY 1))) AS definition
FROM pg_roles r
WHERE r.rolname = ANY (%(roles)s)
