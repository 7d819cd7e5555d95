"""Ordering, without a database: install order by declared dependencies and kind rank; plan
steps with enum values first, creates in dependency order, drops dependents first (each
kind's drop rank), a deleted seed row before the row it points at; cycles and unknown kinds
are errors."""

from __future__ import annotations

import pytest

from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.order import install_order, topological
from engine.errors import RenderError, UnknownKind
from engine.migrate.kinds import install_rank
from engine.migrate.model import ENUM_SEGMENT, Action, LiveObject, Step
from engine.migrate.plan import order_steps


def obj(key: str, *after: str) -> SqlObject:
    kind, name = key.split(":", 1)
    return SqlObject(kind, name, f"-- {key}\n", tuple(after), "x.sql", "x.sql.j2")


def step(action: Action, key: str, segment: int = 1) -> Step:
    return Step(action, ObjectKey(key), "SQL", "why", segment=segment)


def test_install_order_follows_dependencies_then_kind_rank_then_declaration():
    objects = [obj("trigger:public.t", "table:public.a"), obj("table:public.b"), obj("table:public.a", "enum:public.e"),
               obj("enum:public.e"), obj("role:anon"), obj("function:public.f()")]
    assert [o.key for o in install_order(objects, install_rank)] == [
        "role:anon", "function:public.f()", "enum:public.e", "table:public.b", "table:public.a", "trigger:public.t"]


def test_install_order_refuses_a_dependency_nothing_renders_and_a_cycle():
    with pytest.raises(RenderError, match="table:public.a comes after table:public.x, which nothing renders"):
        install_order([obj("table:public.a", "table:public.x")], install_rank)
    with pytest.raises(RenderError, match="dependency cycle: (table:public.a --> table:public.b --> table:public.a|"
                                          "table:public.b --> table:public.a --> table:public.b)"):
        install_order([obj("table:public.a", "table:public.b"), obj("table:public.b", "table:public.a")], install_rank)


def test_an_unknown_kind_cannot_be_ordered():
    with pytest.raises(UnknownKind):
        install_order([obj("sequence:public.s")], install_rank)


def test_topological_breaks_ties_by_rank():
    keys = [ObjectKey(f"table:public.{n}") for n in "abc"]
    ranks = {keys[0]: (3,), keys[1]: (1,), keys[2]: (2,)}
    assert topological({k: [] for k in keys}, ranks) == [keys[1], keys[2], keys[0]]


def test_plan_steps_enum_values_first_creates_by_dependency_drops_dependents_first():
    objects = [obj("table:public.a"), obj("index:public.a_idx", "table:public.a"), obj("function:public.f()")]
    steps = [step(Action.DROP, "table:public.old"), step(Action.CREATE, "index:public.a_idx"),
             step(Action.DROP, "view:public.old_v"), step(Action.CREATE, "table:public.a"),
             step(Action.ADD_VALUE, "enum:public.e/x", ENUM_SEGMENT), step(Action.UNSCHEDULE, "cron_job:old"),
             step(Action.REPLACE, "function:public.f()"), step(Action.DROP, "function:public.g()"),
             step(Action.REVOKE, "grant:public.old.select")]
    live = {}
    assert [s.key for s in order_steps(steps, objects, live)] == [
        "enum:public.e/x", "function:public.f()", "table:public.a", "index:public.a_idx",
        "cron_job:old", "grant:public.old.select", "view:public.old_v", "table:public.old", "function:public.g()"]


def test_a_deleted_seed_row_goes_before_the_deleted_row_it_points_at():
    from engine.compiler import catalog
    table, (column, ref_table) = next((t.name, t.seed_refs[0]) for t in catalog.TABLES if t.seed_refs)
    referenced = LiveObject("seed", f"public.{ref_table}/r1", {"id": "r1"})
    referring = LiveObject("seed", f"public.{table}/z9", {column: "r1"})
    steps = [step(Action.DELETE, referenced.key), step(Action.DELETE, referring.key)]
    ordered = order_steps(steps, [], {referenced.key: referenced, referring.key: referring})
    assert [s.key for s in ordered] == [referring.key, referenced.key]
