"""plan and apply as a database owner that is not a superuser, as on Supabase or RDS.

A private cluster is set up by its superuser the way Supabase sets up a project: the roles
anon, authenticated and service_role (NOINHERIT, service_role with BYPASSRLS), the `auth`
schema with Supabase's auth.uid(), pg_cron created in the application database with USAGE
granted to the owner, and `owner`: LOGIN, CREATEROLE, not a superuser, owner of the database,
a member of the three API roles. Then rulesctl runs as `owner` only. A private cluster because
these tests change cluster-wide roles and schedule pg_cron jobs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from engine_calls import call, scalar

from engine.database.local import LocalCluster
from engine.errors import HazardsBlocked
from engine.migrate.apply import DEFAULT_TEMPLATES, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan

pytestmark = pytest.mark.db

STAFF = "5b0c1a2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d"

SUPABASE_LIKE = """
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE owner LOGIN NOSUPERUSER CREATEROLE CREATEDB;
GRANT anon, authenticated, service_role TO owner;
ALTER DATABASE rulesctl OWNER TO owner;
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, owner;
CREATE EXTENSION pg_cron;
GRANT USAGE ON SCHEMA cron TO owner;
"""


@contextmanager
def supabase_like_cluster(prefix: str) -> Iterator[LocalCluster]:
    """A private cluster set up as SUPABASE_LIKE says, destroyed on leaving."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    local = LocalCluster(base)
    try:
        local.start()
        assert local.status().pg_cron_available, "scripts/install-system-packages.sh installs pg_cron"
        with psycopg.connect(local.url, autocommit=True) as conn:
            conn.execute(SUPABASE_LIKE)
        yield local
    finally:
        local.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    with supabase_like_cluster("rulesctl-owner-") as local:
        yield local


def as_user(url: str, user: str) -> str:
    return url.replace("://postgres@", f"://{user}@", 1)


@pytest.fixture(scope="module")
def owner_url(cluster) -> str:
    return as_user(cluster.url, "owner")


def test_apply_as_the_owner_converges_on_supabase_roles_auth_uid_and_pg_cron(cluster, owner_url, shipped_objects):
    policy, objects = shipped_objects
    with psycopg.connect(owner_url) as conn:
        assert scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        with pytest.raises(psycopg.errors.InsufficientPrivilege):     # what planning used to read
            conn.execute("SELECT current_setting('cron.database_name', true)")

    result = apply(owner_url, objects, policy)
    assert result.outcome == "applied"
    assert not any("not scheduled" in note or "GRANT" in note for note in result.notes), result.notes
    second = build_plan(owner_url, policy, objects, DEFAULT_TEMPLATES)
    assert second.steps == []
    assert "current_user_id() delegates to auth.uid(): Supabase's auth schema is here and the owner, " \
           "authenticated and service_role may call it" in second.notes

    with psycopg.connect(cluster.url, autocommit=True) as admin:
        # the pre-made roles were used, not made again (CREATE ROLE would not say NOINHERIT)
        roles = dict(admin.execute("SELECT rolname, rolinherit FROM pg_roles"
                                   " WHERE rolname IN ('anon', 'authenticated', 'service_role')").fetchall())
        assert roles == {"anon": False, "authenticated": False, "service_role": False}
        # the jobs are the owner's, in pg_cron's database
        jobs = dict(admin.execute("SELECT jobname, username FROM cron.job").fetchall())
        assert jobs == {job.name: "owner" for job in policy.jobs}
        assert "auth.uid()" in scalar(admin, "SELECT prosrc FROM pg_proc WHERE proname = 'current_user_id'")

    # The runtime through a session with JWT claims, as PostgREST or `rulesctl serve` runs it.
    with psycopg.connect(owner_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": STAFF, "unit_id": "unit-it-support", "full_name": "Desk One",
                                            "role": "staff"})
        with conn.transaction():
            conn.execute("SET LOCAL ROLE service_role")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps({"role": "service_role"})])
            assigned = call(conn, "auto_assign", {"work_item_id": "T-1", "work_item_type": "ticket",
                                                  "priority": "normal"})
        assert (assigned["status"], assigned["assignee_id"]) == ("assigned", STAFF)
        with conn.transaction():
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                         [json.dumps({"role": "authenticated", "sub": STAFF})])
            assert str(scalar(conn, "SELECT current_user_id()")) == STAFF
            mine = scalar(conn, "SELECT my_assignments()")
            visible = scalar(conn, "SELECT count(*) FROM assignments")          # row level security
        assert [a["assignment_id"] for a in mine["assignments"]] == [assigned["assignment_id"]]
        assert visible == 1
        with conn.transaction():          # Supabase's older setting: auth.uid() reads it, so the engine does
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute("SELECT set_config('request.jwt.claim.sub', %s, true)", [STAFF])
            assert str(scalar(conn, "SELECT current_user_id()")) == STAFF
        with conn.transaction():          # no claims at all: nobody, never an error
            conn.execute("SET LOCAL ROLE authenticated")
            assert scalar(conn, "SELECT current_user_id()") is None
            assert scalar(conn, "SELECT count(*) FROM assignments") == 0


def test_without_usage_on_cron_the_plan_names_the_grant_and_touches_no_job(cluster, owner_url, shipped_objects):
    policy, objects = shipped_objects
    apply(owner_url, objects, policy)
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("REVOKE USAGE ON SCHEMA cron FROM owner")
        try:
            plan = build_plan(owner_url, policy, objects, DEFAULT_TEMPLATES)
        finally:
            admin.execute("GRANT USAGE ON SCHEMA cron TO owner")
    assert plan.steps == []                      # nothing to unschedule: the jobs cannot even be read
    assert plan.notes[0] == ("pg_cron is in this database but owner may not use its schema; jobs will not be "
                             "scheduled until a superuser runs: GRANT USAGE ON SCHEMA cron TO owner;")
    assert {note.split()[1] for note in plan.notes if "not scheduled (no pg_cron" in note} == {
        job.name for job in policy.jobs}


def test_missing_privileges_are_named_in_the_plan_with_what_to_run(cluster, shipped_objects):
    """A second owner of a database without pg_cron, not a member of anon, whose realtime
    publication a superuser made, while service_role has lost BYPASSRLS (which on PostgreSQL 15
    only a superuser may give back)."""
    policy, objects = shipped_objects
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("CREATE ROLE lesser LOGIN NOSUPERUSER CREATEROLE")
        admin.execute("GRANT authenticated, service_role TO lesser")
        admin.execute("CREATE DATABASE lesser_app OWNER lesser")
        admin.execute("ALTER ROLE service_role NOBYPASSRLS")
    with psycopg.connect(cluster.url_for("lesser_app"), autocommit=True) as admin:
        admin.execute("CREATE PUBLICATION supabase_realtime")
    url = as_user(cluster.url_for("lesser_app"), "lesser")
    try:
        plan = build_plan(url, policy, objects, DEFAULT_TEMPLATES)
        refused = [step for step in plan.steps if Hazard.PRIVILEGE in step.hazards]
        assert [str(step.key) for step in refused] == ["role:service_role"] + [
            f"publication_table:supabase_realtime/public.{table}"
            for table in ("assignments", "assignment_queue", "escalation_events")]
        assert all("lesser may not (must be owner of publication supabase_realtime): a superuser must run this "
                   "step's SQL (DO $do$ BEGIN IF NOT EXISTS" in step.reason for step in refused[1:])
        assert refused[0].sql == "ALTER ROLE service_role BYPASSRLS;\n"
        assert refused[0].reason == (
            "restore role service_role: it lacks BYPASSRLS; lesser may not (must be superuser to change bypassrls "
            "attribute): a superuser must run this step's SQL (ALTER ROLE service_role BYPASSRLS;), then plan again")
        assert plan.blocked_by(set(Hazard)) == refused          # never allowable
        assert ("lesser is not a member of anon: `rulesctl serve` connecting as lesser cannot switch to it "
                "(SET ROLE); a superuser runs: GRANT anon TO lesser;") in plan.notes
        assert plan.notes[0] == (
            "pg_cron is not created in this database and only a superuser can create it; jobs will not be "
            "scheduled until a superuser runs, in the database pg_cron runs in (cron.database_name): "
            "CREATE EXTENSION pg_cron; GRANT USAGE ON SCHEMA cron TO lesser;")
        with pytest.raises(HazardsBlocked, match="privilege"):
            apply(url, objects, policy, allowed=set(Hazard))
        with psycopg.connect(url) as conn:                       # refused before anything ran
            assert scalar(conn, "SELECT to_regclass('public.assignments')") is None

        # Once a superuser has run what the plan named, the same owner converges.
        with psycopg.connect(cluster.url_for("lesser_app"), autocommit=True) as admin:
            admin.execute("ALTER ROLE service_role BYPASSRLS")
            admin.execute("ALTER PUBLICATION supabase_realtime OWNER TO lesser")
        assert apply(url, objects, policy).outcome == "applied"
        assert build_plan(url, policy, objects, DEFAULT_TEMPLATES).steps == []
    finally:
        with psycopg.connect(cluster.url, autocommit=True) as admin:
            admin.execute("ALTER ROLE service_role BYPASSRLS")
