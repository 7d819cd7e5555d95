"""Seed rows: the policy as rows of the policy tables. Input: a `Policy`. Output: `SeedRow`s,
each identified by its table's primary key and carrying the YAML line it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.compiler.catalog import TABLES, TABLES_BY_NAME
from engine.policy.model import Origin, Policy


@dataclass(frozen=True)
class SeedRow:
    table: str
    values: dict = field(hash=False)
    origin: Origin | None = field(compare=False, default=None)

    @property
    def key(self) -> tuple:
        return tuple(self.values[column] for column in TABLES_BY_NAME[self.table].pk)


def seed_rows(policy: Policy) -> list[SeedRow]:
    rows: list[SeedRow] = []

    def add(table: str, origin: Origin | None, **values: object) -> None:
        rows.append(SeedRow(table, values, origin))

    for calendar in policy.calendars:
        add("business_calendars", calendar.origin, id=calendar.id, name=calendar.name, timezone=calendar.timezone)
        for period in calendar.working_hours:
            add("calendar_working_hours", calendar.origin, calendar_id=calendar.id, weekday=period.weekday,
                start_minute=period.start_minute, end_minute=period.end_minute)
        for day_off in calendar.days_off:
            add("calendar_days_off", calendar.origin, calendar_id=calendar.id, day=day_off.day,
                name=day_off.name, kind=day_off.kind)
    for unit in policy.units:
        add("organizational_units", unit.origin, id=unit.id, parent_id=unit.parent_id, name=unit.name,
            timezone=unit.timezone, calendar_id=unit.calendar_id, default_wip_limit=unit.wip_limit,
            retired=unit.retired)
    parents = {unit.id: unit.parent_id for unit in policy.units}
    for unit in policy.units:
        ancestor: str | None = unit.id
        depth = 0
        while ancestor is not None:                   # the validator has ruled out cycles
            add("organizational_unit_tree", unit.origin, ancestor_id=ancestor, unit_id=unit.id, depth=depth)
            ancestor, depth = parents[ancestor], depth + 1
    for rank, proficiency in enumerate(policy.proficiency_levels, start=1):
        add("proficiency_levels", policy.proficiency_origin, id=proficiency, rank=rank)
    for skill in policy.skills:
        add("skills", skill.origin, id=skill.id, name=skill.name, category=skill.category,
            description=skill.description, retired=skill.retired)
    for chain in policy.chains:
        add("escalation_chains", chain.origin, id=chain.id, name=chain.name)
        for level in chain.levels:
            add("escalation_levels", level.origin, chain_id=chain.id, level=level.level,
                threshold_percent=level.at_percent, reason=level.reason, notify=level.notify)
    for target in policy.sla_targets:
        add("sla_configs", target.origin, work_item_type=target.work_item_type, priority=target.priority,
            response_minutes=target.response_minutes, resolution_minutes=target.resolution_minutes,
            warning_percent=target.warning_percent, calendar_id=target.calendar_id,
            escalation_chain_id=target.escalation_chain_id, pause_statuses=list(target.pause_statuses),
            keep_deadlines=target.keep_deadlines)
    for rule in policy.rules:
        add("assignment_rules", rule.origin, id=rule.id, precedence=rule.precedence, description=rule.description,
            match_types=_array(rule.types), match_priorities=_array(rule.priorities),
            match_skills_any=_array(rule.skills_any), target_unit_id=rule.target_unit_id,
            include_subtree=rule.include_subtree, strategy=rule.strategy, capacity_weight=rule.capacity_weight,
            min_proficiency=rule.min_proficiency, when_no_capacity=rule.when_no_capacity, retired=rule.retired)
    leave = policy.leave
    for priority in policy.priorities:
        action = "reassign" if priority in leave.reassign else "flag_for_review"
        add("leave_policy", leave.origin, priority=priority, on_leave=action, notify=leave.notify)
    aging = policy.queue_aging
    add("engine_settings", aging.origin, key="queue.aging",
        value={"raise_every_minutes": aging.raise_every_minutes, "max_priority": aging.max_priority})
    for job in policy.jobs:
        if job.function == "cleanup_escalation_events":
            add("engine_settings", job.origin, key="escalation_events.retention", value={"interval": job.retention})
    # Rows in key order within each table (tables in catalog order): generated/ and the install
    # order follow the policy's meaning, not the order of keys or entries in the YAML.
    table_order = {table.name: index for index, table in enumerate(TABLES)}
    return sorted(rows, key=lambda row: (table_order[row.table], _sortable(row.key)))


def _sortable(key: tuple) -> tuple:
    """A primary key as something that sorts whatever its column types (numbers numerically)."""
    return tuple((0, value, "") if isinstance(value, int) and not isinstance(value, bool) else (1, 0, str(value))
                 for value in key)


def _array(values: tuple[str, ...] | None) -> list[str] | None:
    return list(values) if values is not None else None
