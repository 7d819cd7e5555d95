"""Install on an empty real PostgreSQL: everything named in the design exists, foreign keys are
in place, seed rows equal the YAML, a second apply changes nothing, the ledger records every
apply, and a failed or refused apply leaves the database as it was."""

from __future__ import annotations

import re
import shutil

import psycopg
import pytest
from click.testing import CliRunner
from policy_cases import BASE

from engine.cli import cli
from engine.errors import ApplyRefused, DatabaseError
from engine.migrate.apply import HazardsBlocked, apply
from engine.project import build

pytestmark = pytest.mark.db

TABLES = {"organizational_units", "skills", "staff_profiles", "assignment_rules", "sla_configs", "assignments",
          "assignment_queue", "escalation_events", "capacity_snapshots"}
ENUMS = {"availability_status", "work_item_type", "priority_level", "assignment_status", "escalation_reason"}
HELPERS = {"increment_version_column", "update_updated_at_column", "engine_now"}
INDEXES = {"idx_assignments_assignee_status_sla", "idx_assignments_status_sla_covering", "idx_assignments_sla_partial"}


@pytest.fixture
def shipped(repo_root):
    return build(repo_root / "rules")


def _rows(url, query, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def _execute(url, statement):
    with psycopg.connect(url) as conn:
        conn.execute(statement)


def test_install_creates_the_whole_schema(database_url, shipped):
    policy, objects = shipped
    result = apply(database_url, objects, policy)
    assert result.outcome == "applied"

    tables = {r[0] for r in _rows(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert TABLES <= tables
    enums = {r[0] for r in _rows(database_url, "SELECT typname FROM pg_type WHERE typtype = 'e'")}
    assert ENUMS <= enums
    functions = {r[0] for r in _rows(database_url,
                                     "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")}
    assert HELPERS <= functions
    indexes = {r[0] for r in _rows(database_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert INDEXES <= indexes
    triggers = _rows(database_url, "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
                                   " WHERE NOT tgisinternal ORDER BY 1, 2")
    for table in ("assignments", "staff_profiles", "organizational_units"):
        assert (table, f"trg_{table}_version") in triggers and (table, f"trg_{table}_updated_at") in triggers

    priorities = _rows(database_url, "SELECT unnest(enum_range(NULL::priority_level))::text")
    assert [p[0] for p in priorities] == ["low", "normal", "high", "urgent"]
    types = [t[0] for t in _rows(database_url, "SELECT unnest(enum_range(NULL::work_item_type))::text")]
    assert types == [t.id for t in policy.work_item_types]


def test_foreign_keys_are_in_place(database_url, shipped):
    apply(database_url, shipped[1], shipped[0])
    fks = set(_rows(database_url, """
        SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"""))
    for pair in [("assignments", "staff_profiles"), ("staff_profiles", "organizational_units"),
                 ("organizational_units", "organizational_units"), ("assignment_rules", "organizational_units"),
                 ("escalation_events", "assignments"), ("capacity_snapshots", "organizational_units"),
                 ("sla_configs", "business_calendars"), ("assignment_queue", "organizational_units")]:
        assert pair in fks
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        _execute(database_url, "INSERT INTO staff_profiles (id, unit_id, full_name)"
                               " VALUES (gen_random_uuid(), 'unit-nope', 'X')")


def test_seed_rows_match_the_yaml(database_url, shipped):
    policy, objects = shipped
    apply(database_url, objects, policy)
    units = _rows(database_url, "SELECT id, parent_id, name, calendar_id, default_wip_limit"
                                " FROM organizational_units ORDER BY id")
    assert units == sorted((u.id, u.parent_id, u.name, u.calendar_id, u.wip_limit) for u in policy.units)
    skills = _rows(database_url, "SELECT id, name, category FROM skills ORDER BY id")
    assert skills == sorted((s.id, s.name, s.category) for s in policy.skills)
    sla = _rows(database_url, "SELECT work_item_type::text, priority::text, response_minutes, resolution_minutes, "
                              "warning_percent::float, calendar_id, escalation_chain_id FROM sla_configs ORDER BY 1, 2")
    assert sla == sorted((t.work_item_type, t.priority, t.response_minutes, t.resolution_minutes, t.warning_percent,
                          t.calendar_id, t.escalation_chain_id) for t in policy.sla_targets)
    assert _rows(database_url, "SELECT resolution_minutes FROM sla_configs WHERE work_item_type = 'ticket' "
                               "AND priority = 'urgent'") == [(120,)]
    rules = _rows(database_url, "SELECT id, precedence, target_unit_id, strategy, capacity_weight"
                                " FROM assignment_rules ORDER BY precedence")
    assert rules == [(r.id, r.precedence, r.target_unit_id, r.strategy, r.capacity_weight) for r in policy.rules]
    days_off = _rows(database_url, "SELECT day, kind FROM calendar_days_off"
                                   " WHERE calendar_id = 'riyadh-business' ORDER BY day")
    riyadh = next(c for c in policy.calendars if c.id == "riyadh-business")
    assert days_off == [(d.day, d.kind) for d in riyadh.days_off]
    hours = _rows(database_url, "SELECT weekday, start_minute, end_minute FROM calendar_working_hours "
                                "WHERE calendar_id = 'riyadh-business' ORDER BY weekday")
    assert hours == [(day, 480, 960) for day in (1, 2, 3, 4, 7)]
    levels = _rows(database_url, "SELECT level, threshold_percent::float, reason::text, notify FROM escalation_levels "
                                 "WHERE chain_id = 'standard' ORDER BY level")
    assert levels == [(1, 75.0, "sla_warning", "assignee"), (2, 100.0, "sla_breach", "supervisor"),
                      (3, 150.0, "sla_breach", "unit_head"), (4, 200.0, "sla_breach", "parent_unit_head")]


def test_second_apply_changes_nothing_and_ledger_has_both(database_url, shipped):
    policy, objects = shipped
    first = apply(database_url, objects, policy)
    before = _rows(database_url, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")
    second = apply(database_url, objects, policy)
    assert (first.outcome, second.outcome) == ("applied", "no_change")
    assert "nothing to do" in second.message
    assert _rows(database_url, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == before
    ledger = _rows(database_url, "SELECT id, outcome, policy_hash, statement_count, applied_by, message IS NOT NULL "
                                 "FROM rulesctl.applies ORDER BY id")
    assert [(row[1], row[2], row[3]) for row in ledger] == [("applied", policy.policy_hash, len(first.plan.steps)),
                                                            ("no_change", policy.policy_hash, 0)]
    assert all(row[4] == "postgres" and row[5] for row in ledger)
    # everything rendered was created, except what already existed cluster-wide (roles) and
    # pg_cron's objects, which cannot live in this database
    created = {step.key for step in first.plan.steps}
    skipped = {obj.key for obj in objects} - created
    assert skipped <= {"role:anon", "role:authenticated", "role:service_role", "extension:pg_cron"} | {
        f"cron_job:{job.name}" for job in policy.jobs}
    assert {f"cron_job:{job.name}" for job in policy.jobs} <= skipped
    statements = _rows(database_url, "SELECT statements -> 0 ->> 'step' FROM rulesctl.applies WHERE id = %s",
                       ledger[0][0])
    assert statements == [(first.plan.steps[0].key,)]


def test_failed_apply_leaves_the_database_as_it_was(database_url, shipped):
    policy, objects = shipped
    # Occupy a name the install needs, without being a managed object kind: CREATE TABLE assignments fails.
    _execute(database_url, "CREATE DOMAIN public.assignments AS integer")
    with pytest.raises(DatabaseError) as raised:
        apply(database_url, objects, policy)
    assert "table:public.assignments failed" in str(raised.value)
    assert "rolled back" in str(raised.value)
    assert _rows(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert _rows(database_url, "SELECT count(*) FROM pg_type WHERE typtype = 'e'") == [(0,)]
    assert _rows(database_url, "SELECT outcome, message LIKE '%%type \"assignments\" already exists%%' "
                               "FROM rulesctl.applies") == [("failed", True)]


def test_apply_of_a_much_smaller_policy_is_blocked_by_its_hazards(database_url, shipped, tmp_path):
    policy, objects = shipped
    apply(database_url, objects, policy)
    shutil.copytree(BASE, tmp_path / "rules")
    other_policy, other_objects = build(tmp_path / "rules")
    with pytest.raises(HazardsBlocked, match="have hazards not allowed: .*seed-row-deleted.* nothing was changed"):
        apply(database_url, other_objects, other_policy)
    assert _rows(database_url, "SELECT outcome FROM rulesctl.applies ORDER BY id") == [("applied",), ("refused",)]
    assert _rows(database_url, "SELECT count(*) FROM organizational_units") == [(len(policy.units),)]


def test_apply_waits_for_the_advisory_lock(database_url, shipped):
    from engine.migrate.apply import APPLY_LOCK_KEY
    policy, objects = shipped
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK_KEY,))
        with pytest.raises(ApplyRefused, match=r"another rulesctl apply holds the apply lock \(backend pid \d+\)"):
            apply(database_url, objects, policy, lock_timeout_s=0.5)
    assert _rows(database_url, "SELECT to_regclass('public.assignments')") == [(None,)]


def test_cli_apply_twice(database_url, repo_root):
    rules = ["--rules", str(repo_root / "rules")]
    runner = CliRunner()
    first = runner.invoke(cli, ["apply", *rules, "--database-url", database_url, "--auto-approve"])
    assert first.exit_code == 0, first.output
    assert re.match(r"applied: ran \d+ steps \(\d+ create, \d+ insert\)", first.stdout)
    assert "note: job sla-monitoring not scheduled (no pg_cron in this database)" in first.stdout
    second = runner.invoke(cli, ["apply", *rules, "--auto-approve"], env={"DATABASE_URL": database_url})
    assert second.exit_code == 0 and second.stdout.startswith("no changes: in sync")


def test_cli_apply_unreachable_database_is_a_clear_error(repo_root):
    result = CliRunner().invoke(cli, ["apply", "--rules", str(repo_root / "rules"), "--database-url",
                                       "postgresql://nobody:secret@127.0.0.1:1/x", "--auto-approve"])
    assert result.exit_code == 1
    assert result.stderr.startswith("apply failed: cannot connect to the database")
    assert "secret" not in result.stderr and "Traceback" not in result.output
