"""Table, index and grant changes, planned from a live schema changed by hand.

Each case installs the base policy, changes the live database by hand, plans, and asserts the
step's action, SQL and hazards (data-loss for a dropped table or column, lock for a rewrite or
a validated constraint or a rebuilt index, authorization for a grant); then apply refuses it
until exactly those hazards are allowed, runs it, and the plan after it is empty.
"""

from __future__ import annotations

import psycopg
import pytest

from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db

T = "ALTER TABLE public.capacity_snapshots"


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def plan_of(url: str, base):
    return build_plan(url, base[0], base[1], DEFAULT_TEMPLATES)


def converge(url: str, base, hazards: set[Hazard]) -> None:
    """Apply is refused without each of the plan's hazards, runs with them, and leaves nothing."""
    for missing in hazards:
        with pytest.raises(HazardsBlocked, match=missing.slug):
            apply(url, base[1], base[0], allowed=hazards - {missing})
    assert apply(url, base[1], base[0], allowed=hazards).outcome == "applied"
    assert plan_of(url, base).steps == []


# (what was done by hand, the SQL that undoes it, its hazards)
TABLE_CASES = {
    "column added by hand is dropped": (
        f"{T} ADD COLUMN note text", [f"{T} DROP COLUMN note;"], {Hazard.DATA_LOSS}),
    "column dropped by hand is added back": (
        f"{T} DROP COLUMN queue_depth", [f"{T} ADD COLUMN queue_depth integer DEFAULT 0 NOT NULL;"], set()),
    "nullable column dropped by hand is added back": (
        f"{T} DROP COLUMN utilisation", [f"{T} ADD COLUMN utilisation numeric(6,2);"], set()),
    "type change is reverted with a rewrite": (
        f"{T} ALTER COLUMN utilisation TYPE numeric(10,2)",
        [f"{T} ALTER COLUMN utilisation TYPE numeric(6,2) USING utilisation::numeric(6,2);"], {Hazard.LOCK}),
    "NOT NULL dropped by hand is set again": (
        f"{T} ALTER COLUMN assigned DROP NOT NULL", [f"{T} ALTER COLUMN assigned SET NOT NULL;"], {Hazard.LOCK}),
    "default changed by hand is restored": (
        f"{T} ALTER COLUMN capacity SET DEFAULT 5", [f"{T} ALTER COLUMN capacity SET DEFAULT 0;"], set()),
    "constraint dropped by hand is added back": (
        f"{T} DROP CONSTRAINT capacity_snapshots_unit_id_snapshot_date_key",
        [f"{T} ADD CONSTRAINT capacity_snapshots_unit_id_snapshot_date_key UNIQUE (unit_id, snapshot_date);"],
        {Hazard.LOCK}),
    "constraint added by hand is dropped": (
        f"{T} ADD CONSTRAINT hand_check CHECK (capacity >= 0)", [f"{T} DROP CONSTRAINT hand_check;"], set()),
    "storage option set by hand is reset": (
        f"{T} SET (fillfactor = 70)", [f"{T} RESET (fillfactor);"], set()),
}


@pytest.mark.parametrize("case", TABLE_CASES, ids=list(TABLE_CASES))
def test_a_table_changed_by_hand_is_altered_back(base_url, base, case):
    by_hand, sql, hazards = TABLE_CASES[case]
    execute(base_url, by_hand)
    plan = plan_of(base_url, base)
    assert [(s.action, s.key, set(s.hazards), s.drift) for s in plan.steps] == [
        ("alter", "table:public.capacity_snapshots", hazards, True)]
    assert plan.steps[0].sql.strip().splitlines() == sql
    assert plan.steps[0].reason.startswith("drift: changed outside rulesctl; alter table public.capacity_snapshots: ")
    converge(base_url, base, hazards)


def test_a_column_with_data_dropped_is_data_loss(base_url, base):
    """The data-loss hazard guards real rows: refused, the column's values stay until it is allowed."""
    execute(base_url, "INSERT INTO public.capacity_snapshots (unit_id, snapshot_date)"
                      " VALUES ('unit-desk', '2026-01-01')")
    execute(base_url, f"{T} ADD COLUMN note text DEFAULT 'keep me'")
    (step,) = plan_of(base_url, base).steps
    assert step.hazards == (Hazard.DATA_LOSS,) and "drop column note" in step.reason
    with pytest.raises(HazardsBlocked, match="data-loss"):
        apply(base_url, base[1], base[0])
    with psycopg.connect(base_url) as conn:
        assert conn.execute("SELECT note FROM public.capacity_snapshots").fetchall() == [("keep me",)]
    converge(base_url, base, {Hazard.DATA_LOSS})


def test_a_table_rulesctl_no_longer_makes_is_dropped_as_data_loss(base_url, base):
    """An older engine's table (recorded as owned) that this engine no longer has."""
    execute(base_url, "CREATE TABLE public.retired_notes (id integer PRIMARY KEY, body text)")
    execute(base_url, "INSERT INTO public.retired_notes VALUES (1, 'old')")
    execute(base_url, "INSERT INTO rulesctl.managed_objects (key, definition_hash)"
                      " VALUES ('table:public.retired_notes', 'older')")
    plan = plan_of(base_url, base)
    assert [(s.action, s.key, s.hazards) for s in plan.steps] == [
        ("drop", "table:public.retired_notes", (Hazard.DATA_LOSS,))]
    assert plan.steps[0].sql == "DROP TABLE public.retired_notes;\n"
    converge(base_url, base, {Hazard.DATA_LOSS})
    with psycopg.connect(base_url) as conn:
        assert conn.execute("SELECT to_regclass('public.retired_notes')").fetchone() == (None,)


def test_an_index_changed_by_hand_is_rebuilt_under_the_lock_hazard(base_url, base):
    execute(base_url, "DROP INDEX public.idx_staff_profiles_unit; "
                      "CREATE INDEX idx_staff_profiles_unit ON public.staff_profiles (unit_id, id)")
    plan = plan_of(base_url, base)
    assert [(s.action, s.key, s.hazards, s.drift) for s in plan.steps] == [
        ("replace", "index:public.idx_staff_profiles_unit", (Hazard.LOCK,), True)]
    assert plan.steps[0].sql.startswith("DROP INDEX public.idx_staff_profiles_unit;\n")
    converge(base_url, base, {Hazard.LOCK})


def test_a_grant_taken_away_by_hand_is_regranted_under_the_authorization_hazard(base_url, base):
    execute(base_url, "REVOKE SELECT ON public.skills FROM authenticated")
    plan = plan_of(base_url, base)
    assert [(s.action, s.key, s.hazards, s.drift) for s in plan.steps] == [
        ("replace", "grant:public.skills.select", (Hazard.AUTHORIZATION,), True)]
    assert plan.steps[0].reason.endswith("regrant select on skills: service_role → authenticated, service_role")
    converge(base_url, base, {Hazard.AUTHORIZATION})


def test_a_grant_added_by_hand_is_revoked_under_the_authorization_hazard(base_url, base):
    execute(base_url, "GRANT INSERT, DELETE ON public.assignments TO authenticated")
    plan = plan_of(base_url, base)
    assert [(s.action, s.key, s.hazards) for s in plan.steps] == [
        ("revoke", "grant:public.assignments.delete", (Hazard.AUTHORIZATION,)),
        ("revoke", "grant:public.assignments.insert", (Hazard.AUTHORIZATION,))]
    assert plan.steps[1].sql == "REVOKE INSERT ON TABLE public.assignments FROM authenticated;\n"
    converge(base_url, base, {Hazard.AUTHORIZATION})
