"""Who would now be notified, for escalation and leave changes. Input: the plan's connection
(inside its read-only transaction), the desired `Policy`. Output: `Notified` rows, one per
(change, recipient before, recipient after), and `LeaveAction` rows for priorities whose
on-leave handling changes.

The recipients are resolved by the live database's own functions (get_escalation_recipient,
get_unit_recipient) from today's staff data, for the work running now:

- an escalation level whose `notify` changes, appears or goes (levels matched by their share
  of the SLA): the running items of that chain that have not reached the share yet, grouped
  by whom the level would notify before and after;
- a leave `notify` change for a priority: the active items of that priority, grouped by whom
  their assignee going on leave would notify before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from engine.compiler import catalog
from engine.policy.model import Policy

NOBODY = "(nobody)"
NO_LEVEL = "(no level)"
ACTIVE = list(catalog.ACTIVE_STATUSES)


@dataclass(frozen=True)
class Notified:
    change: str              # "escalation standard at 100%" or "leave urgent"
    notify_before: str       # the policy's notify value, NO_LEVEL or "none"
    notify_after: str
    recipient_before: str    # a person's name (and id), or NOBODY
    recipient_after: str
    items: int               # running items whose notification goes this way


@dataclass(frozen=True)
class LeaveAction:
    priority: str
    before: str              # reassign | flag_for_review | (none)
    after: str
    items: int               # active items of that priority today


def measure(conn: psycopg.Connection[Any], policy: Policy,
            schema: str = catalog.SCHEMA) -> tuple[list[Notified], list[LeaveAction]]:
    notified = _escalation(conn, policy, schema)
    leave_notified, actions = _leave(conn, policy, schema)
    return notified + leave_notified, actions


# -- escalation -------------------------------------------------------------------------------

def _escalation(conn: psycopg.Connection[Any], policy: Policy, schema: str) -> list[Notified]:
    live: dict[str, dict[Decimal, str]] = {}
    for chain_id, percent, notify in conn.execute(sql.SQL(
            "SELECT chain_id, threshold_percent, notify FROM {}").format(
            sql.Identifier(schema, "escalation_levels"))):
        live.setdefault(chain_id, {})[Decimal(percent).normalize()] = notify
    found = []
    for chain in sorted(policy.chains, key=lambda c: c.id):
        if chain.id not in live:
            continue                                    # a new chain has no running work yet
        before = live[chain.id]
        after = {Decimal(str(level.at_percent)).normalize(): level.notify for level in chain.levels}
        for percent in sorted(before.keys() | after.keys()):
            old, new = before.get(percent), after.get(percent)
            if old != new:
                found += _escalation_rows(conn, schema, chain.id, percent, old, new)
    return found


ESCALATION_RECIPIENTS = """
SELECT rb.full_name, rb.id::text, ra.full_name, ra.id::text, count(*)
FROM {assignments} a
JOIN {sla_configs} c ON c.work_item_type = a.work_item_type AND c.priority = a.priority
CROSS JOIN LATERAL (SELECT {s}.get_escalation_recipient(a.id, %(before)s) AS before,
                           {s}.get_escalation_recipient(a.id, %(after)s) AS after) r
LEFT JOIN {staff} rb ON rb.id = r.before
LEFT JOIN {staff} ra ON ra.id = r.after
WHERE a.status::text = ANY(%(active)s) AND c.escalation_chain_id = %(chain)s AND a.sla_deadline IS NOT NULL
  AND {s}.sla_share_due_at(c.calendar_id, a.arrived_at,
        {s}.sla_budget_minutes(c.calendar_id, a.arrived_at, a.sla_deadline, a.paused_working_minutes),
        a.paused_working_minutes, %(percent)s) > {s}.engine_now()
GROUP BY 1, 2, 3, 4
ORDER BY 5 DESC, 1, 3
"""


def _escalation_rows(conn: psycopg.Connection[Any], schema: str, chain_id: str, percent: Decimal,
                     old: str | None, new: str | None) -> list[Notified]:
    query = sql.SQL(ESCALATION_RECIPIENTS).format(
        assignments=sql.Identifier(schema, "assignments"), sla_configs=sql.Identifier(schema, "sla_configs"),
        staff=sql.Identifier(schema, "staff_profiles"), s=sql.Identifier(schema))
    rows = conn.execute(query, {"before": old, "after": new, "active": ACTIVE, "chain": chain_id,
                                "percent": percent}).fetchall()
    change = f"escalation {chain_id} at {percent:f}%"
    return [Notified(change, old or NO_LEVEL, new or NO_LEVEL, _person(b_name, b_id), _person(a_name, a_id), count)
            for b_name, b_id, a_name, a_id, count in rows]


# -- leave ------------------------------------------------------------------------------------

def _leave(conn: psycopg.Connection[Any], policy: Policy,
           schema: str) -> tuple[list[Notified], list[LeaveAction]]:
    live = {priority: (action, notify) for priority, action, notify in conn.execute(sql.SQL(
        "SELECT priority::text, on_leave, notify FROM {}").format(sql.Identifier(schema, "leave_policy")))}
    desired = {priority: ("reassign", policy.leave.notify) for priority in policy.leave.reassign}
    desired |= {priority: ("flag_for_review", policy.leave.notify) for priority in policy.leave.flag_for_review}
    if live == desired:
        return [], []
    load = dict(conn.execute(sql.SQL(
        "SELECT priority::text, count(*) FROM {} WHERE status::text = ANY(%s) GROUP BY 1").format(
        sql.Identifier(schema, "assignments")), (ACTIVE,)).fetchall())
    actions, notified = [], []
    for priority in policy.priorities[::-1]:                   # highest first, as people read them
        old, new = live.get(priority, ("(none)", "none")), desired.get(priority, ("(none)", "none"))
        if old[0] != new[0]:
            actions.append(LeaveAction(priority, old[0], new[0], load.get(priority, 0)))
        if old[1] != new[1] and load.get(priority):
            notified += _leave_rows(conn, schema, priority, old[1], new[1])
    return notified, actions


LEAVE_RECIPIENTS = """
SELECT rb.full_name, rb.id::text, ra.full_name, ra.id::text, count(*)
FROM {assignments} a
JOIN {staff} s ON s.id = a.assignee_id
CROSS JOIN LATERAL (
  SELECT CASE WHEN %(before)s = 'none' THEN NULL ELSE {s}.get_unit_recipient(s.unit_id, %(before)s, s.id) END AS before,
         CASE WHEN %(after)s = 'none' THEN NULL ELSE {s}.get_unit_recipient(s.unit_id, %(after)s, s.id) END AS after) r
LEFT JOIN {staff} rb ON rb.id = r.before
LEFT JOIN {staff} ra ON ra.id = r.after
WHERE a.status::text = ANY(%(active)s) AND a.priority::text = %(priority)s
GROUP BY 1, 2, 3, 4
ORDER BY 5 DESC, 1, 3
"""


def _leave_rows(conn: psycopg.Connection[Any], schema: str, priority: str, old: str, new: str) -> list[Notified]:
    """As apply_leave_policy() resolves it: the nearest such person in the assignee's unit or up
    its tree, never the assignee."""
    query = sql.SQL(LEAVE_RECIPIENTS).format(assignments=sql.Identifier(schema, "assignments"),
                                             staff=sql.Identifier(schema, "staff_profiles"), s=sql.Identifier(schema))
    rows = conn.execute(query, {"before": old, "after": new, "active": ACTIVE, "priority": priority}).fetchall()
    return [Notified(f"leave {priority}", old, new, _person(b_name, b_id), _person(a_name, a_id), count)
            for b_name, b_id, a_name, a_id, count in rows]


def _person(name: str | None, staff_id: str | None) -> str:
    return NOBODY if staff_id is None else f"{name} ({staff_id})"
