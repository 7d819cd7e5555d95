"""What a plan would do to the work, not just to rows. Input: the plan's connection (inside its
read-only transaction), the desired `Policy`, the live and desired objects. Output: an `Impact`:

- capacity per unit before -> after where a unit's default WIP limit changes, and the people
  (on the unit default) who would be over the new limit;
- where the last N days of arrivals (`assignments` and `assignment_queue`) would be routed
  under the new assignment rules versus where they went, counted by (rule, unit) -> (rule, unit);
  rules that can never match (an earlier rule's conditions cover theirs) and rule targets with
  no available staff. The new rules are evaluated here, in Python, from the policy model
  against the arrivals aggregated in SQL by (type, priority, required skills, rule, target);
- for escalation and leave changes, who would now be notified (notify_impact.py);
- for SLA changes, the deadlines of running and queued work that move, on the resolution and
  the response clock (sla_moves.py, counted in the scratch install; set by the plan);
- per step, the detail a reviewer wants: a replaced function's body as a unified diff of the
  live definition against the desired one, a changed seed row as `column: old -> new`.

Nothing is written; a database without the engine's tables (a first install) has no impact.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey
from engine.migrate.fetch import fetch_value
from engine.migrate.kinds.seed import BOOKKEEPING_COLUMNS
from engine.migrate.model import Action, LiveObject, Step
from engine.migrate.notify_impact import LeaveAction, Notified
from engine.migrate.notify_impact import measure as measure_notified
from engine.migrate.sla_moves import SlaMoves
from engine.policy.model import AssignmentRule, Policy

DEFAULT_DAYS = 30
NO_RULE = "(no rule)"


@dataclass(frozen=True)
class UnitCapacity:
    unit_id: str
    limit_before: int
    limit_after: int
    capacity_before: int          # sum of the effective WIP limits of the unit's available staff
    capacity_after: int
    staff: int                    # available staff counted


@dataclass(frozen=True)
class OverLimit:
    unit_id: str
    staff_id: str
    full_name: str
    load: int                     # current_assignment_count
    limit_after: int


@dataclass(frozen=True)
class Route:
    from_rule: str
    from_unit: str
    to_rule: str
    to_unit: str
    count: int

    @property
    def moves(self) -> bool:
        return (self.from_rule, self.from_unit) != (self.to_rule, self.to_unit)


@dataclass(frozen=True)
class Shadowed:
    rule_id: str
    by: tuple[str, ...]           # the earlier rules that, between them, take every item it would match


@dataclass(frozen=True)
class Unstaffed:
    rule_id: str
    unit_id: str
    staff: int                    # staff in the target (subtree when the rule includes it)
    available: int


@dataclass
class Impact:
    days: int = DEFAULT_DAYS
    capacity: list[UnitCapacity] = field(default_factory=list)
    over_limit: list[OverLimit] = field(default_factory=list)
    routing_changed: bool = False
    arrivals: int = 0
    routes: list[Route] = field(default_factory=list)
    shadowed: list[Shadowed] = field(default_factory=list)
    unstaffed: list[Unstaffed] = field(default_factory=list)
    notified: list[Notified] = field(default_factory=list)
    leave_actions: list[LeaveAction] = field(default_factory=list)
    details: dict[str, list[str]] = field(default_factory=dict)   # step key -> lines shown under it
    seconds: float = 0.0
    sla_moves: SlaMoves | None = None     # None when the plan changes nothing deadlines are computed from

    @property
    def empty(self) -> bool:
        return not (self.capacity or self.over_limit or self.routing_changed or self.notified
                    or self.leave_actions)

    @property
    def moved(self) -> int:
        return sum(route.count for route in self.routes if route.moves)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Impact:
        return cls(data["days"], [UnitCapacity(**c) for c in data["capacity"]],
                   [OverLimit(**o) for o in data["over_limit"]], data["routing_changed"], data["arrivals"],
                   [Route(**r) for r in data["routes"]],
                   [Shadowed(s["rule_id"], tuple(s["by"])) for s in data["shadowed"]],
                   [Unstaffed(**u) for u in data["unstaffed"]],
                   [Notified(**n) for n in data.get("notified", [])],
                   [LeaveAction(**a) for a in data.get("leave_actions", [])],
                   data.get("details", {}), data.get("seconds", 0.0),
                   SlaMoves.from_dict(data["sla_moves"]) if data.get("sla_moves") else None)


def measure(conn: psycopg.Connection[Any], policy: Policy, days: int = DEFAULT_DAYS,
            schema: str = catalog.SCHEMA) -> Impact:
    """The impact on the live data; call inside the plan's transaction."""
    impact = Impact(days)
    if fetch_value(conn, "SELECT to_regclass(%s)", (f"{schema}.staff_profiles",)) is None:
        return impact
    impact.capacity, impact.over_limit = _capacity(conn, policy, schema)
    if _rules_changed(conn, policy, schema):
        impact.routing_changed = True
        impact.arrivals, impact.routes = _routing(conn, policy, days, schema)
        impact.shadowed = shadowed(policy)
        impact.unstaffed = _unstaffed(conn, policy, schema)
    impact.notified, impact.leave_actions = measure_notified(conn, policy, schema)
    return impact


# -- capacity ---------------------------------------------------------------------------------

def _capacity(conn: psycopg.Connection[Any], policy: Policy,
              schema: str) -> tuple[list[UnitCapacity], list[OverLimit]]:
    live = dict(conn.execute(sql.SQL("SELECT id, default_wip_limit FROM {}").format(
        sql.Identifier(schema, "organizational_units"))).fetchall())
    changed = {unit.id: unit.wip_limit for unit in policy.units
               if unit.id in live and live[unit.id] != unit.wip_limit}
    if not changed:
        return [], []
    ids = sorted(changed)
    staff = conn.execute(sql.SQL(
        "SELECT unit_id, id::text, full_name, wip_limit, current_assignment_count, availability_status::text "
        "FROM {} WHERE unit_id = ANY(%s) ORDER BY unit_id, full_name, id").format(
        sql.Identifier(schema, "staff_profiles")), (ids,)).fetchall()
    capacity = []
    for unit_id in ids:
        mine = [row for row in staff if row[0] == unit_id and row[5] == "available"]
        before = sum(own if own is not None else live[unit_id] for _, _, _, own, _, _ in mine)
        after = sum(own if own is not None else changed[unit_id] for _, _, _, own, _, _ in mine)
        capacity.append(UnitCapacity(unit_id, live[unit_id], changed[unit_id], before, after, len(mine)))
    over = [OverLimit(unit_id, staff_id, name, load, changed[unit_id])
            for unit_id, staff_id, name, own, load, _ in staff
            if own is None and load > changed[unit_id]]
    return capacity, over


# -- routing ----------------------------------------------------------------------------------

def _rule_shape(rule: AssignmentRule) -> tuple[Any, ...]:
    """What decides routing: identity, order, conditions and target."""
    return (rule.id, rule.precedence, _set(rule.types), _set(rule.priorities), _set(rule.skills_any),
            rule.target_unit_id, rule.include_subtree)


def _set(values: Iterable[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values else None       # empty or absent: any


def _rules_changed(conn: psycopg.Connection[Any], policy: Policy, schema: str) -> bool:
    rows = conn.execute(sql.SQL(
        "SELECT id, precedence, match_types::text[], match_priorities::text[], match_skills_any, target_unit_id, "
        "include_subtree FROM {}").format(sql.Identifier(schema, "assignment_rules"))).fetchall()
    live = {(i, p, _set(t), _set(pr), _set(sk), u, sub) for i, p, t, pr, sk, u, sub in rows}
    return live != {_rule_shape(rule) for rule in policy.rules}


def matches(rule: AssignmentRule, work_type: str, priority: str, skills: Iterable[str]) -> bool:
    """As match_assignment_rule() decides: every condition given holds (skills: any in common)."""
    return ((not rule.types or work_type in rule.types)
            and (not rule.priorities or priority in rule.priorities)
            and (not rule.skills_any or not set(rule.skills_any).isdisjoint(skills)))


def route(rules: Iterable[AssignmentRule], work_type: str, priority: str,
          skills: Iterable[str]) -> AssignmentRule | None:
    """The first rule in force, in precedence order, that matches (a retired rule matches nothing)."""
    skills = tuple(skills)
    return next((rule for rule in sorted(rules, key=lambda r: r.precedence)
                 if not rule.retired and matches(rule, work_type, priority, skills)), None)


ARRIVALS = """
SELECT work_item_type::text, priority::text, required_skills, rule_id, target_unit_id, count(*)
FROM (SELECT work_item_type, priority, required_skills, rule_id, target_unit_id FROM {assignments}
      WHERE arrived_at >= now() - make_interval(days => %(days)s)
      UNION ALL
      SELECT work_item_type, priority, required_skills, rule_id, target_unit_id FROM {queue}
      WHERE arrived_at >= now() - make_interval(days => %(days)s)) arrivals
GROUP BY 1, 2, 3, 4, 5
"""


def _routing(conn: psycopg.Connection[Any], policy: Policy, days: int, schema: str) -> tuple[int, list[Route]]:
    query = sql.SQL(ARRIVALS).format(assignments=sql.Identifier(schema, "assignments"),
                                     queue=sql.Identifier(schema, "assignment_queue"))
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for work_type, priority, skills, rule_id, target, count in conn.execute(query, {"days": days}):
        new = route(policy.rules, work_type, priority, skills or ())
        to = (new.id, new.target_unit_id) if new else (NO_RULE, "(unrouted)")
        counts[(rule_id or NO_RULE, target or "(none)", *to)] += count
    routes = [Route(*key, count) for key, count in counts.items()]
    routes.sort(key=lambda r: (not r.moves, -r.count, r.from_rule, r.from_unit, r.to_rule, r.to_unit))
    return sum(counts.values()), routes


def shadowed(policy: Policy) -> list[Shadowed]:
    """Rules that can never match: the earlier rules, alone or together, take every item they
    would. Exact over the policy's types and priorities; for skills it is enough to try each of
    the rule's skills alone (an item with more skills only meets more earlier rules) or, for a
    rule without a skill condition, no skills at all. Validation already rejects a rule covered
    by one earlier rule; this also finds one covered by several."""
    rules = sorted((rule for rule in policy.rules if not rule.retired), key=lambda r: r.precedence)
    all_types = [t.id for t in policy.work_item_types]
    found = []
    for index, rule in enumerate(rules):
        earlier = [other for other in rules[:index] if other.precedence < rule.precedence]
        takers: set[str] = set()
        reachable = False
        for work_type in rule.types or all_types:
            for priority in rule.priorities or policy.priorities:
                for skills in [(skill,) for skill in rule.skills_any] if rule.skills_any else [()]:
                    first = route(earlier, work_type, priority, skills)
                    if first is None:
                        reachable = True
                        break
                    takers.add(first.id)
        if not reachable:
            found.append(Shadowed(rule.id, tuple(r.id for r in earlier if r.id in takers)))
    return found


def _unstaffed(conn: psycopg.Connection[Any], policy: Policy, schema: str) -> list[Unstaffed]:
    children: dict[str, list[str]] = {}
    for unit in policy.units:
        if unit.parent_id:
            children.setdefault(unit.parent_id, []).append(unit.id)
    rows = conn.execute(sql.SQL(
        "SELECT unit_id, count(*), count(*) FILTER (WHERE availability_status = 'available') FROM {} "
        "GROUP BY unit_id").format(sql.Identifier(schema, "staff_profiles"))).fetchall()
    staff = {unit: (total, available) for unit, total, available in rows}
    found = []
    shadow = {s.rule_id for s in shadowed(policy)}
    for rule in policy.rules:
        if rule.retired or rule.id in shadow:
            continue
        units, todo = [], [rule.target_unit_id]
        while todo:
            unit_id = todo.pop()
            units.append(unit_id)
            if rule.include_subtree:
                todo += children.get(unit_id, [])
        total = sum(staff.get(u, (0, 0))[0] for u in units)
        available = sum(staff.get(u, (0, 0))[1] for u in units)
        if available == 0:
            found.append(Unstaffed(rule.id, rule.target_unit_id, total, available))
    return found


# -- per-step detail --------------------------------------------------------------------------

def step_details(steps: Iterable[Step], live: Mapping[ObjectKey, LiveObject],
                 desired: Mapping[ObjectKey, LiveObject]) -> dict[str, list[str]]:
    """Lines to show under a step: a replaced function's unified diff, a seed row's changed columns."""
    details = {}
    for step in steps:
        before, after = live.get(step.key), desired.get(step.key)
        if before is None or after is None:
            continue
        if step.kind == "function" and step.action is Action.REPLACE:
            old, new = before.definition["definition"], after.definition["definition"]
            diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "live", "policy", n=2, lineterm=""))
            if diff:
                details[str(step.key)] = diff
        elif step.kind == "seed" and step.action is Action.UPDATE:
            details[str(step.key)] = [f"{column}: {_value(before.definition.get(column))} -> {_value(value)}"
                                      for column, value in after.definition.items()
                                      if column not in BOOKKEEPING_COLUMNS and before.definition.get(column) != value]
    return details


def _value(value: Any) -> str:
    return "null" if value is None else str(value) if not isinstance(value, str) else value
