"""The runtime's invariants, checked from the tables. Used by the concurrency proof (and by
anything else that wants to know the engine's state is sound). Each returns the offending
rows; an empty list means the invariant holds."""

from __future__ import annotations

from collections.abc import Set

import psycopg

from engine.compiler.catalog import ACTIVE_STATUSES
from engine.compiler.sqltext import literal, literal_list
from engine.policy.model import Strategy

ACTIVE = f"({literal_list(ACTIVE_STATUSES)})"         # the engine's one list, as the templates get it
DEFAULT_STRATEGY = literal(Strategy.least_loaded)    # what a queued item without a rule is picked by


def staff_over_wip(conn: psycopg.Connection) -> list:
    return conn.execute("""
        SELECT s.id, s.current_assignment_count, coalesce(s.wip_limit, u.default_wip_limit)
        FROM staff_profiles s JOIN organizational_units u ON u.id = s.unit_id
        WHERE s.current_assignment_count > coalesce(s.wip_limit, u.default_wip_limit)""").fetchall()


def counters_off(conn: psycopg.Connection) -> list:
    return conn.execute(f"""
        SELECT s.id, s.current_assignment_count, coalesce(sum(a.capacity_weight), 0)
        FROM staff_profiles s LEFT JOIN assignments a ON a.assignee_id = s.id AND a.status IN {ACTIVE}
        GROUP BY s.id HAVING s.current_assignment_count <> coalesce(sum(a.capacity_weight), 0)""").fetchall()


def unit_counts_off(conn: psycopg.Connection) -> list:
    """Units whose kept staff count (unit_staff_counts) differs from their staff rows."""
    return conn.execute("""
        SELECT u.id, coalesce(c.staff, 0), count(s.id)
        FROM organizational_units u
        LEFT JOIN unit_staff_counts c ON c.unit_id = u.id
        LEFT JOIN staff_profiles s ON s.unit_id = u.id
        GROUP BY u.id, c.staff HAVING coalesce(c.staff, 0) <> count(s.id)""").fetchall()


def duplicate_active_assignments(conn: psycopg.Connection) -> list:
    return conn.execute(f"""
        SELECT work_item_id, count(*) FROM assignments WHERE status IN {ACTIVE}
        GROUP BY work_item_id HAVING count(*) > 1""").fetchall()


def queued_and_assigned(conn: psycopg.Connection) -> list:
    return conn.execute(f"""
        SELECT q.work_item_id FROM assignment_queue q
        JOIN assignments a ON a.work_item_id = q.work_item_id AND a.status IN {ACTIVE}""").fetchall()


def lost_work_items(conn: psycopg.Connection, requested: set[str]) -> list:
    """Requested work items that are neither assigned (now or before) nor queued."""
    known = {row[0] for row in conn.execute(
        "SELECT work_item_id FROM assignments UNION SELECT work_item_id FROM assignment_queue").fetchall()}
    return sorted(requested - known)


def idle_while_queued(conn: psycopg.Connection) -> list:
    """Queued items that an available person with room could take right now (a lost wake-up)."""
    return conn.execute(f"""
        SELECT q.work_item_id, e.staff_id
        FROM assignment_queue q
        LEFT JOIN assignment_rules r ON r.id = q.rule_id
        CROSS JOIN LATERAL find_eligible_staff_for_assignment(
            unit_ids_for_target(q.target_unit_id, q.include_subtree), q.required_skills,
            q.min_proficiency_rank, q.capacity_weight, coalesce(r.strategy, {DEFAULT_STRATEGY}), 1) e""").fetchall()


def all_violations(conn: psycopg.Connection, requested: Set[str] = frozenset()) -> dict[str, list]:
    return {
        "staff over WIP": staff_over_wip(conn),
        "counters not equal to active assignments": counters_off(conn),
        "unit staff counts not equal to staff": unit_counts_off(conn),
        "duplicate active assignments": duplicate_active_assignments(conn),
        "items both queued and assigned": queued_and_assigned(conn),
        "lost work items": lost_work_items(conn, set(requested)),
        "queued while an eligible person is idle": idle_while_queued(conn),
    }
