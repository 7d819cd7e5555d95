"""Plan steps per kind, without a database: each kind's create / change / drop steps, their
SQL, reasons and hazards, from hand-made snapshots (the golden cases run the same code
against PostgreSQL). Also the registry itself: every kind has what it needs, an unknown kind
is an error and never empty SQL. Run: pytest -m "not db" tests/migrate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.compiler.objects import ObjectKey, SqlObject
from engine.errors import RenderError, UnknownKind
from engine.migrate.hazards import Hazard
from engine.migrate.kinds import KINDS, kind_of
from engine.migrate.model import ENUM_SEGMENT, Action, Change, ChangeType, LiveObject, Step
from engine.migrate.steps import StepBuilder
from engine.project import DEFAULT_TEMPLATES


def live(kind: str, name: str, definition: object = True) -> LiveObject:
    return LiveObject(kind, name, definition)


def obj(kind: str, name: str, sql: str = "-- rendered\n") -> SqlObject:
    return SqlObject(kind, name, sql, (), "x.sql", "x.sql.j2")


def builder(*found: LiveObject, objects: tuple[SqlObject, ...] = ()) -> StepBuilder:
    return StepBuilder(list(objects), DEFAULT_TEMPLATES, {o.key: o for o in found})


def drop(found: LiveObject, *others: LiveObject) -> Step:
    (step,) = builder(found, *others).steps(Change(ChangeType.DROP, found.key, None, found))
    return step


def change(desired: LiveObject, found: LiveObject, sql: str = "-- rendered\n", *others: LiveObject) -> list[Step]:
    rendered = obj(desired.kind, desired.name, sql)
    return builder(found, *others, objects=(rendered,)).steps(Change(ChangeType.CHANGE, desired.key, desired, found))


def create(desired: LiveObject, *others: LiveObject, sql: str = "-- rendered\n") -> Step:
    rendered = obj(desired.kind, desired.name, sql)
    (step,) = builder(*others, objects=(rendered,)).steps(Change(ChangeType.CREATE, desired.key, desired, None))
    return step


# --- keys and actions ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, parts", [
    ("table:public.units", ("table", "public", "units", None)),
    ("function:public.f(public.work_item_type, integer)",
     ("function", "public", "f(public.work_item_type, integer)", None)),
    ("seed:public.sla_configs/ticket,urgent", ("seed", "public", "sla_configs", "ticket,urgent")),
    ("enum:public.priority_level/high", ("enum", "public", "priority_level", "high")),
    ("policy:public.assignments.read own", ("policy", "public", "assignments.read own", None)),
    ("publication_table:supabase_realtime/public.assignments",
     ("publication_table", None, "supabase_realtime", "public.assignments")),
    ("role:anon", ("role", None, "anon", None)),
    ("cron_job:sla-check", ("cron_job", None, "sla-check", None)),
])
def test_an_object_key_is_its_text_with_typed_parts(text, parts):
    key = ObjectKey(text)
    assert (key.kind, key.schema, key.name, key.member) == parts
    assert str(key) == text and key == text and json.dumps(key) == json.dumps(text)
    assert ObjectKey.of(key.kind, key.name, key.schema, key.member) == key


def test_a_key_without_a_kind_is_refused():
    with pytest.raises(ValueError, match="not an object key"):
        ObjectKey("public.units")


def test_the_enum_value_key_names_its_enum():
    assert ObjectKey("enum:public.priority_level/high").whole == "enum:public.priority_level"


def test_actions_are_their_text_in_json_and_reports():
    step = Step(Action.ADD_VALUE, ObjectKey("enum:public.p/x"), "SQL", "why")
    assert json.dumps(step.as_dict())
    assert step.as_dict()["action"] == "add-value" and f"{step.action:<10}|" == "add-value |"
    assert Step.from_dict(step.as_dict()) == step
    assert {a for a in Action if a.removes} == {Action.DROP, Action.DELETE, Action.REVOKE, Action.UNSCHEDULE}


# --- the registry -------------------------------------------------------------------------------------

def test_an_unknown_kind_is_an_error_never_empty_sql():
    with pytest.raises(UnknownKind, match="unknown object kind 'sequence'"):
        kind_of("sequence")
    found = live("sequence", "public.s")
    with pytest.raises(UnknownKind):
        builder(found).steps(Change(ChangeType.DROP, found.key, None, found))


def test_every_kind_the_render_produces_is_registered_in_rank_order():
    assert set(KINDS) == {"role", "extension", "function", "enum", "table", "index", "view", "trigger", "rls", "policy",
                          "grant", "publication", "publication_table", "seed", "cron_job"}
    assert [kind.rank for kind in KINDS.values()] == sorted(kind.rank for kind in KINDS.values())
    assert len({kind.rank for kind in KINDS.values()}) == len(KINDS)


def test_every_droppable_kind_has_its_drop_template_and_a_distinct_drop_rank():
    droppable = {name: kind for name, kind in KINDS.items() if kind.drop_rank is not None}
    assert len({kind.drop_rank for kind in droppable.values()}) == len(droppable)
    custom = {"seed", "grant"}                     # delete.sql.j2, revoke.sql.j2
    for name in droppable.keys() - custom:
        assert (Path(DEFAULT_TEMPLATES) / "changes" / name / "drop.sql.j2").is_file(), name
    assert not (Path(DEFAULT_TEMPLATES) / "changes" / "drop.sql.j2").exists()


def test_a_kind_rulesctl_never_drops_is_an_error_to_drop():
    with pytest.raises(RenderError, match="never drops a role"):
        drop(live("role", "anon", {}))


# --- drops ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("found, action, sql, hazards", [
    (live("table", "public.units"), Action.DROP, "DROP TABLE public.units;\n", (Hazard.DATA_LOSS,)),
    (live("index", "public.units_name_idx"), Action.DROP, "DROP INDEX public.units_name_idx;\n", ()),
    (live("view", "public.queue_view"), Action.DROP, "DROP VIEW public.queue_view;\n", ()),
    (live("enum", "public.mood"), Action.DROP, "DROP TYPE public.mood;\n", (Hazard.DATA_LOSS,)),
    (live("function", "public.f(integer, text)", {"definition": "CREATE OR REPLACE FUNCTION ..."}), Action.DROP,
     "DROP FUNCTION public.f(integer, text);\n", ()),
    (live("function", "public.p(uuid)", {"definition": "CREATE OR REPLACE PROCEDURE ..."}), Action.DROP,
     "DROP PROCEDURE public.p(uuid);\n", ()),
    (live("trigger", "public.trg_x", {"table": "units"}), Action.DROP, "DROP TRIGGER trg_x ON public.units;\n", ()),
    (live("policy", "public.units.Read \"all\""), Action.DROP, 'DROP POLICY "Read ""all""" ON public.units;\n',
     (Hazard.AUTHORIZATION,)),
    (live("rls", "public.units"), Action.DROP, "ALTER TABLE public.units DISABLE ROW LEVEL SECURITY;\n",
     (Hazard.AUTHORIZATION,)),
    (live("cron_job", "sla-check", {}), Action.UNSCHEDULE, "SELECT cron.unschedule('sla-check');\n",
     (Hazard.JOB_UNSCHEDULED,)),
    (live("publication_table", "supabase_realtime/public.assignments"), Action.DROP,
     "ALTER PUBLICATION supabase_realtime DROP TABLE public.assignments;\n", ()),
    (live("seed", "public.skills/sql", {"id": "sql", "name": "SQL"}), Action.DELETE,
     "DELETE FROM public.skills\nWHERE id = 'sql';\n", (Hazard.SEED_ROW_DELETED,)),
    (live("grant", "public.units.select", ["anon"]), Action.REVOKE, "REVOKE SELECT ON TABLE public.units FROM anon;\n",
     (Hazard.AUTHORIZATION,)),
])
def test_each_kind_drops_with_its_own_sql_and_hazards(found, action, sql, hazards):
    step = drop(found)
    assert (step.action, step.key, step.sql, step.hazards) == (action, found.key, sql, hazards)
    assert step.sql.strip()


def test_a_drop_reason_names_the_object():
    assert drop(live("table", "public.units")).reason == "drop table public.units: no longer in rules/ or the engine"
    assert drop(live("cron_job", "sla-check", {})).reason == \
        "unschedule cron job sla-check: no longer in rules/ or the engine"


def test_a_privilege_nobody_holds_is_forgotten_without_hazard():
    step = drop(live("grant", "public.units.insert", []))
    assert step.hazards == () and step.reason == "forget insert on units: nobody holds it"


def test_revoking_execute_on_a_live_procedure_says_procedure():
    routine = live("function", "public.run_it(integer)", {"kind": "p", "definition": "..."})
    step = drop(live("grant", "public.run_it(integer).execute", ["authenticated"]), routine)
    assert step.sql == "REVOKE EXECUTE ON PROCEDURE public.run_it(integer) FROM authenticated;\n"


# --- creates --------------------------------------------------------------------------------------

def test_an_access_rule_on_an_existing_table_is_an_authorization_hazard():
    table = live("table", "public.units", {})
    assert create(live("policy", "public.units.p"), table).hazards == (Hazard.AUTHORIZATION,)
    assert create(live("policy", "public.units.p")).hazards == ()        # created with its table
    assert create(live("rls", "public.units"), table).hazards == (Hazard.AUTHORIZATION,)
    assert create(live("grant", "public.f(integer).execute", ["anon"]),
                  live("function", "public.f(integer)", {})).hazards == (Hazard.AUTHORIZATION,)


def test_creates_say_insert_and_schedule_for_rows_and_jobs():
    assert create(live("seed", "public.skills/sql", {"id": "sql"})).action is Action.INSERT
    job = create(live("cron_job", "nightly", {"schedule": "0 2 * * *"}))
    assert job.action is Action.SCHEDULE and job.reason.startswith("schedule job nightly: '0 2 * * *' (")


def test_a_new_object_that_locks_a_live_table_carries_a_lock_hazard():
    step = create(live("table", "public.copy", {}), live("table", "public.units", {}),
                  sql="CREATE TABLE public.copy ();\nLOCK TABLE public.units IN SHARE MODE;\n")
    assert step.hazards == (Hazard.LOCK,) and "holds a write lock on public.units" in step.reason


# --- changes --------------------------------------------------------------------------------------

def table_definition(columns: dict, constraints: dict | None = None, options: list | None = None) -> dict:
    return {"columns": columns, "constraints": constraints or {}, "options": options or []}


def column(type_: str = "text", default: str | None = None, not_null: bool = False) -> dict:
    return {"type": type_, "default": default, "not_null": not_null}


def test_a_table_is_altered_column_by_column_with_its_hazards():
    before = live("table", "public.units", table_definition({"id": column(), "old": column()}))
    after = live("table", "public.units", table_definition({"id": column(), "size": column("integer", not_null=True)}))
    (step,) = change(after, before)
    assert step.action is Action.ALTER
    assert step.sql == ("ALTER TABLE public.units ADD COLUMN size integer NOT NULL;\n"
                        "ALTER TABLE public.units DROP COLUMN old;")  + "\n"
    assert step.hazards == (Hazard.DATA_LOSS, Hazard.LOCK)
    assert step.reason == "alter table public.units: add column size, drop column old"


def test_a_new_identity_column_numbers_the_rows_there_in_the_catalogs_order():
    """assignment_queue.seq on a queue with rows: they are numbered as the queue served them
    (catalog numbered_by: created_at, id), their updated_at untouched (triggers off), and the
    sequence continues after them."""
    seq = {**column("bigint", not_null=True), "identity": "a"}
    (step,) = change(live("table", "public.assignment_queue", table_definition({"id": column("uuid"), "seq": seq})),
                     live("table", "public.assignment_queue", table_definition({"id": column("uuid")})))
    assert step.sql.splitlines() == [
        "ALTER TABLE public.assignment_queue ADD COLUMN seq bigint;",
        "ALTER TABLE public.assignment_queue DISABLE TRIGGER USER;",
        "UPDATE public.assignment_queue t SET seq = n.number",
        "FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS number",
        "      FROM public.assignment_queue) n",
        "WHERE t.id = n.id;",
        "ALTER TABLE public.assignment_queue ENABLE TRIGGER USER;",
        "ALTER TABLE public.assignment_queue ALTER COLUMN seq SET NOT NULL,",
        "  ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY;",
        "SELECT setval(pg_get_serial_sequence('public.assignment_queue', 'seq'),",
        "              coalesce(max(seq), 0) + 1, false)",
        "FROM public.assignment_queue;"]
    assert step.hazards == (Hazard.LOCK,)
    assert step.reason == "alter table public.assignment_queue: add identity column seq"


def test_an_existing_columns_identity_is_added_switched_or_dropped_in_place():
    def columns(**identities: str) -> dict:
        return table_definition({name: {**column("bigint", not_null=True), "identity": identity}
                                 for name, identity in identities.items()})

    (step,) = change(live("table", "public.t", columns(a="", b="d", c="a")),
                     live("table", "public.t", columns(a="a", b="a", c="")))
    assert step.sql.splitlines() == [
        "ALTER TABLE public.t ALTER COLUMN a DROP IDENTITY;",
        "ALTER TABLE public.t ALTER COLUMN b SET GENERATED BY DEFAULT;",
        "ALTER TABLE public.t ALTER COLUMN c SET NOT NULL,",            # its values stay: no numbering
        "  ALTER COLUMN c ADD GENERATED ALWAYS AS IDENTITY;",
        "SELECT setval(pg_get_serial_sequence('public.t', 'c'),",
        "              coalesce(max(c), 0) + 1, false)",
        "FROM public.t;"]
    assert step.hazards == (Hazard.LOCK,)


def test_storage_options_no_longer_declared_are_reset():
    before = live("table", "public.t", table_definition({}, options=["fillfactor=70", "autovacuum_enabled=false"]))
    after = live("table", "public.t", table_definition({}, options=["fillfactor=80"]))
    (step,) = change(after, before)
    assert step.sql == "ALTER TABLE public.t RESET (autovacuum_enabled);\nALTER TABLE public.t SET (fillfactor=80);\n"


def test_new_enum_values_are_their_own_segment_and_keys():
    steps = change(live("enum", "public.mood", ["low", "mid", "high"]), live("enum", "public.mood", ["low", "high"]))
    assert [(s.action, s.key, s.segment) for s in steps] == [(Action.ADD_VALUE, "enum:public.mood/mid", ENUM_SEGMENT)]
    assert steps[0].sql == "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'mid' BEFORE 'high';\n"


def test_a_removed_enum_value_is_reported_never_run():
    (step,) = change(live("enum", "public.mood", ["low"]), live("enum", "public.mood", ["low", "high"]))
    assert step.action is Action.REMOVE_VALUE and step.hazards == (Hazard.ENUM_VALUE_REMOVAL,)
    assert all(line.startswith("--") for line in step.sql.splitlines())


def test_a_trigger_only_disabled_is_enabled_in_place_otherwise_recreated():
    wanted = live("trigger", "public.trg", {"table": "units", "enabled": "O", "definition": "x"})
    (step,) = change(wanted, live("trigger", "public.trg", {"table": "units", "enabled": "D", "definition": "x"}))
    assert (step.action, step.sql) == (Action.ENABLE, "ALTER TABLE public.units ENABLE TRIGGER trg;\n")
    (step,) = change(wanted, live("trigger", "public.trg", {"table": "units", "enabled": "O", "definition": "y"}),
                     "CREATE TRIGGER trg ...;\n")
    assert (step.action, step.sql) == (Action.REPLACE, "DROP TRIGGER trg ON public.units;\nCREATE TRIGGER trg ...;\n")


def test_a_changed_index_and_policy_are_dropped_and_created_with_their_hazards():
    (index,) = change(live("index", "public.i", "new"), live("index", "public.i", "old"), "CREATE INDEX i ...;\n")
    assert index.hazards == (Hazard.LOCK,) and index.sql.startswith("DROP INDEX public.i;\n")
    (policy,) = change(live("policy", "public.units.p", "new"), live("policy", "public.units.p", "old"))
    assert policy.hazards == (Hazard.AUTHORIZATION,) and policy.sql.startswith("DROP POLICY p ON public.units;\n")


def test_a_function_whose_result_type_changes_is_dropped_first():
    (step,) = change(live("function", "public.f(integer)", {"returns": "text"}),
                     live("function", "public.f(integer)", {"returns": "integer"}), "CREATE FUNCTION ...;\n")
    assert step.sql == "DROP FUNCTION public.f(integer);\nCREATE FUNCTION ...;\n"
    assert "its result type changes" in step.reason


def test_a_function_dropped_and_created_gets_back_the_execute_privilege_it_held():
    """DROP FUNCTION takes its grants with it: the same step gives back exactly what it held."""
    (step,) = change(live("function", "public.f(integer)", {"returns": "TABLE(a integer, b bigint)"}),
                     live("function", "public.f(integer)", {"returns": "TABLE(a integer)"}), "CREATE FUNCTION ...;\n",
                     live("grant", "public.f(integer).execute", ["authenticated", "service_role"]))
    assert step.sql == ("DROP FUNCTION public.f(integer);\nCREATE FUNCTION ...;\n"
                        "REVOKE ALL ON FUNCTION public.f(integer) FROM PUBLIC;\n"
                        "GRANT EXECUTE ON FUNCTION public.f(integer) TO authenticated, service_role;\n")


def test_a_role_that_gained_powers_is_restored():
    wanted = {"login": False, "bypassrls": False, "member_of": []}
    (step,) = change(live("role", "anon", wanted), live("role", "anon", {**wanted, "login": True,
                                                                         "member_of": ["service_role"]}))
    assert step.sql == "ALTER ROLE anon NOLOGIN;\nREVOKE service_role FROM anon;\n"
    assert step.hazards == (Hazard.AUTHORIZATION,)
    assert step.reason == "restore role anon: it has LOGIN, is a member of service_role"


def test_a_changed_seed_row_is_updated_column_by_column():
    (step,) = change(live("seed", "public.skills/sql", {"id": "sql", "name": "SQL"}),
                     live("seed", "public.skills/sql", {"id": "sql", "name": "Sql"}))
    assert step.action is Action.UPDATE
    assert step.sql == "UPDATE public.skills\nSET name = 'SQL'\nWHERE id = 'sql';\n"
    assert step.reason == "update seed row public.skills/sql: name Sql → SQL"


def test_a_changed_grant_is_revoked_and_granted_again():
    (step,) = change(live("grant", "public.units.select", ["anon"]),
                     live("grant", "public.units.select", ["anon", "x"]), "GRANT SELECT ON public.units TO anon;\n")
    assert step.sql == "REVOKE SELECT ON TABLE public.units FROM anon, x;\nGRANT SELECT ON public.units TO anon;\n"
    assert step.hazards == (Hazard.AUTHORIZATION,) and step.reason == "regrant select on units: anon, x → anon"


def test_a_view_is_replaced_in_place():
    (step,) = change(live("view", "public.v", "new"), live("view", "public.v", "old"), "CREATE OR REPLACE VIEW ...;\n")
    assert (step.action, step.sql, step.hazards) == (Action.REPLACE, "CREATE OR REPLACE VIEW ...;\n", ())
