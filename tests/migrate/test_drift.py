"""Drift the plan must see: an engine trigger disabled by hand, a managed
role given BYPASSRLS / LOGIN / SUPERUSER or another managed role's rights, and a permissive
policy added by hand to a table rulesctl manages. Each is planned as drift, restored by apply,
and the plan after it is empty. Real PostgreSQL, the small base policy.

Roles are cluster-wide (shared by every test database of the session): each test that changes
one restores it in a finally block, whatever the outcome.
"""

from __future__ import annotations

import psycopg
import pytest

from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def value(url: str, query: str):
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


def plan_of(url: str, base):
    return build_plan(url, base[0], base[1], DEFAULT_TEMPLATES)


def lines(plan) -> list[str]:
    return [" ".join([s.action, s.key] + (["[" + ",".join(h.slug for h in s.hazards) + "]"] if s.hazards else [])
                     + (["drift"] if s.drift else [])) for s in plan.steps]


def restore_roles(url: str) -> None:
    execute(url, "ALTER ROLE anon NOSUPERUSER NOLOGIN NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION; "
                 "ALTER ROLE authenticated NOSUPERUSER NOLOGIN NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION; "
                 "ALTER ROLE service_role NOSUPERUSER NOLOGIN BYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION; "
                 "REVOKE service_role FROM authenticated; REVOKE service_role FROM anon; "
                 "REVOKE authenticated FROM anon")


def test_a_disabled_engine_trigger_is_drift_and_apply_enables_it(base_url, base):
    execute(base_url, "ALTER TABLE public.assignments DISABLE TRIGGER assignment_capacity_trigger")
    plan = plan_of(base_url, base)
    assert lines(plan) == ["enable trigger:public.assignment_capacity_trigger drift"]
    (step,) = plan.steps
    assert step.sql == "ALTER TABLE public.assignments ENABLE TRIGGER assignment_capacity_trigger;\n"
    assert "it is disabled" in step.reason and step.reason.startswith("drift: changed outside rulesctl")

    assert apply(base_url, base[1], base[0]).outcome == "applied"
    assert value(base_url, "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'assignment_capacity_trigger'") == "O"
    assert plan_of(base_url, base).steps == []


def test_a_trigger_enabled_for_replicas_only_is_drift_too(base_url, base):
    execute(base_url, "ALTER TABLE public.staff_profiles ENABLE REPLICA TRIGGER staff_room_trigger")
    assert lines(plan_of(base_url, base)) == ["enable trigger:public.staff_room_trigger drift"]
    apply(base_url, base[1], base[0])
    assert plan_of(base_url, base).steps == []


def test_a_managed_role_given_bypassrls_is_restored_with_an_authorization_hazard(base_url, base):
    try:
        execute(base_url, "ALTER ROLE authenticated BYPASSRLS")
        plan = plan_of(base_url, base)
        assert lines(plan) == ["alter role:authenticated [authorization] drift"]
        (step,) = plan.steps
        assert step.sql == "ALTER ROLE authenticated NOBYPASSRLS;\n"
        assert "it has BYPASSRLS" in step.reason
        with pytest.raises(HazardsBlocked, match="authorization"):
            apply(base_url, base[1], base[0])
        assert apply(base_url, base[1], base[0], allowed={Hazard.AUTHORIZATION}).outcome == "applied"
        assert value(base_url, "SELECT rolbypassrls FROM pg_roles WHERE rolname = 'authenticated'") is False
        assert plan_of(base_url, base).steps == []
    finally:
        restore_roles(base_url)


def test_login_superuser_and_a_lost_bypassrls_are_restored(base_url, base):
    """service_role legitimately has BYPASSRLS (catalog.ROLES): losing it is drift as well."""
    try:
        execute(base_url, "ALTER ROLE anon LOGIN SUPERUSER; ALTER ROLE service_role NOBYPASSRLS")
        plan = plan_of(base_url, base)
        assert lines(plan) == ["alter role:anon [authorization] drift", "alter role:service_role [authorization] drift"]
        assert plan.steps[0].sql == "ALTER ROLE anon NOSUPERUSER NOLOGIN;\n"
        assert plan.steps[1].sql == "ALTER ROLE service_role BYPASSRLS;\n"
        assert "lacks BYPASSRLS" in plan.steps[1].reason
        apply(base_url, base[1], base[0], allowed={Hazard.AUTHORIZATION})
        assert value(base_url, "SELECT array_agg(rolname::text || ':' || rolsuper || rolcanlogin || rolbypassrls "
                               "ORDER BY rolname) FROM pg_roles WHERE rolname IN ('anon', 'service_role')") == [
            "anon:falsefalsefalse", "service_role:falsefalsetrue"]
        assert plan_of(base_url, base).steps == []
    finally:
        restore_roles(base_url)


def test_a_membership_between_managed_roles_is_revoked(base_url, base):
    try:
        execute(base_url, "GRANT service_role TO authenticated")
        plan = plan_of(base_url, base)
        assert lines(plan) == ["alter role:authenticated [authorization] drift"]
        assert plan.steps[0].sql == "REVOKE service_role FROM authenticated;\n"
        assert "is a member of service_role" in plan.steps[0].reason
        apply(base_url, base[1], base[0], allowed={Hazard.AUTHORIZATION})
        assert value(base_url, "SELECT pg_has_role('authenticated', 'service_role', 'MEMBER')") is False
        assert plan_of(base_url, base).steps == []
    finally:
        restore_roles(base_url)


def test_a_hand_made_policy_on_a_managed_table_is_drift_and_dropped(base_url, base):
    execute(base_url, "CREATE POLICY everyone_sees_all ON public.assignments FOR SELECT TO authenticated USING (true)")
    # a policy on a table rulesctl does not manage stays someone else's
    execute(base_url, "CREATE TABLE public.hand_notes (id integer PRIMARY KEY); "
                      "ALTER TABLE public.hand_notes ENABLE ROW LEVEL SECURITY; "
                      "CREATE POLICY hand_notes_open ON public.hand_notes USING (true)")
    plan = plan_of(base_url, base)
    assert lines(plan) == ["drop policy:public.assignments.everyone_sees_all [authorization] drift"]
    (step,) = plan.steps
    assert step.sql == "DROP POLICY everyone_sees_all ON public.assignments;\n"
    assert step.reason.startswith("drift: changed outside rulesctl: policy everyone_sees_all was made by hand on "
                                  "public.assignments")
    assert "policy:public.assignments.everyone_sees_all" not in plan.foreign
    assert "policy:public.hand_notes.hand_notes_open" in plan.foreign
    with pytest.raises(HazardsBlocked):
        apply(base_url, base[1], base[0])
    apply(base_url, base[1], base[0], allowed={Hazard.AUTHORIZATION})
    assert value(base_url, "SELECT array_agg(policyname::text ORDER BY policyname) FROM pg_policies "
                           "WHERE policyname IN ('everyone_sees_all', 'hand_notes_open')") == ["hand_notes_open"]
    assert plan_of(base_url, base).steps == []
