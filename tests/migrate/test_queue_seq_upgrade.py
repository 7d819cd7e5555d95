"""Upgrading a live database whose queue predates `assignment_queue.seq` (the arrival order).

The older engine's shape is made by hand on a fresh install: no seq column, the four queue
indexes ending in `created_at, id`, queue_head without its seq column, and queued rows that
tie on created_at. The plan adds the identity column numbering the rows in the order the old
engine served them (created_at, then id) without touching their updated_at, rebuilds the
indexes under the lock hazard, drops and creates queue_head keeping its grants; apply needs
the lock hazard allowed, and the plan after it is empty.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from apply_support import execute, rows

from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db

OLD_INDEXES = {
    "idx_assignment_queue_target_priority": "(target_unit_id, priority DESC, created_at, id)",
    "idx_assignment_queue_priority_head": "(priority DESC, created_at, id)",
    "idx_assignment_queue_skill_head": "(target_unit_id, priority DESC, (coalesce(required_skills[1], '')), "
                                       "created_at, id)",
    "idx_assignment_queue_subtree_head": "(target_unit_id, priority DESC, created_at, id) WHERE include_subtree",
}
OLD_QUEUE_HEAD = """
DROP FUNCTION public.queue_head(text, integer);
CREATE FUNCTION public.queue_head(p_unit_id text, p_limit integer DEFAULT 50)
RETURNS TABLE (id uuid, "position" bigint) LANGUAGE sql STABLE AS 'SELECT NULL::uuid, 1::bigint';
REVOKE ALL ON FUNCTION public.queue_head(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.queue_head(text, integer) TO authenticated, service_role;
"""
CREATED = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)
TOUCHED = datetime(2026, 12, 1, tzinfo=UTC)


def older_queue(url: str) -> list[str]:
    """The queue as the previous engine made it, holding nine rows in three created_at ties;
    their work item ids in the order that engine served them (created_at, then id)."""
    execute(url, "DROP VIEW public.assignment_queue_ordered")
    execute(url, "ALTER TABLE public.assignment_queue DROP COLUMN seq")             # and the indexes on it
    for name, columns in OLD_INDEXES.items():
        execute(url, f"CREATE INDEX {name} ON public.assignment_queue {columns}")
    execute(url, OLD_QUEUE_HEAD)
    (unit,) = rows(url, "SELECT id FROM public.organizational_units ORDER BY id LIMIT 1")[0]
    items = [(str(uuid.UUID(int=(n * 7919) % 97)), f"item-{n}", CREATED + timedelta(minutes=n % 3)) for n in range(9)]
    for queue_id, work_item_id, created in items:
        execute(url, "INSERT INTO public.assignment_queue (id, work_item_id, work_item_type, priority, target_unit_id,"
                     " created_at, arrived_at, updated_at) SELECT %s, %s, (enum_range(NULL::public.work_item_type))[1],"
                     " (enum_range(NULL::public.priority_level))[1], %s, %s, %s, %s",
                queue_id, work_item_id, unit, created, created, TOUCHED)
    return [work_item_id for _, work_item_id, _ in sorted(items, key=lambda item: (item[2], uuid.UUID(item[0])))]


def test_a_queue_without_seq_is_numbered_in_its_served_order_and_converges(base_url, base):
    policy, objects = base
    served = older_queue(base_url)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    steps = {str(step.key): step for step in plan.steps}
    table = steps["table:public.assignment_queue"]
    assert (table.action, table.hazards) == ("alter", (Hazard.LOCK,))
    assert table.reason.endswith("add identity column seq")
    for name in OLD_INDEXES:
        assert (steps[f"index:public.{name}"].action, steps[f"index:public.{name}"].hazards) == (
            "replace", (Hazard.LOCK,))
    head = steps["function:public.queue_head(text, integer)"]
    assert head.sql.startswith("DROP FUNCTION public.queue_head(text, integer);\n")
    assert head.sql.endswith("GRANT EXECUTE ON FUNCTION public.queue_head(text, integer) TO authenticated, "
                             "service_role;\n")

    with pytest.raises(HazardsBlocked, match="lock"):
        apply(base_url, objects, policy)
    assert rows(base_url, "SELECT count(*) FROM information_schema.columns"
                          " WHERE table_name = 'assignment_queue' AND column_name = 'seq'") == [(0,)]
    assert apply(base_url, objects, policy, allowed={Hazard.LOCK}).outcome == "applied"
    assert build_plan(base_url, policy, objects, DEFAULT_TEMPLATES).steps == []

    numbered = rows(base_url, "SELECT work_item_id, seq, updated_at FROM public.assignment_queue ORDER BY seq")
    assert [(w, seq) for w, seq, _ in numbered] == [(w, n) for n, w in enumerate(served, start=1)]
    assert {touched for _, _, touched in numbered} == {TOUCHED}           # numbering is no update of theirs
    assert rows(base_url, "SELECT work_item_id FROM public.assignment_queue_ordered ORDER BY position LIMIT 3") == [
        (w,) for w in served[:3]]
    execute(base_url, "INSERT INTO public.assignment_queue (work_item_id, work_item_type, priority, target_unit_id)"
                      " SELECT 'new', work_item_type, priority, target_unit_id FROM public.assignment_queue LIMIT 1")
    assert rows(base_url, "SELECT seq FROM public.assignment_queue WHERE work_item_id = 'new'") == [(len(served) + 1,)]
    assert rows(base_url, "SELECT has_function_privilege('authenticated', 'public.queue_head(text, integer)',"
                          " 'EXECUTE'), has_function_privilege('anon', 'public.queue_head(text, integer)', 'EXECUTE')"
                ) == [(True, False)]
