"""The validated policy as frozen dataclasses. Input: schema-valid data of each policy file.
Output: a `Policy`. Source positions ride along as `Origin`, which never takes part in equality.

Builders here assume the JSON Schema already passed; semantic checks live in validate.py.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.policy.load import PolicyFile
from engine.policy.text import PolicyText

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Strategy(enum.StrEnum):
    """How a rule picks among eligible staff (assignment_rules.yaml `strategy`). The one list:
    the JSON Schema's enum (validate.schema_for), the assignment_rules CHECK and the runtime's
    picks (the Jinja global `strategies`: `strategies.round_robin`, `strategies|literal_list`)
    all read it."""

    least_loaded = enum.auto()          # fewest weighted items, then least recently assigned
    round_robin = enum.auto()           # least recently assigned (never assigned first)


@dataclass(frozen=True)
class Origin:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _origin(policy_file: PolicyFile, path: tuple) -> Origin:
    line, col = policy_file.position(path)
    return Origin(policy_file.display, line, col)


def minutes(duration: str) -> int:
    """'1h30m' -> 90."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")      # the schema admits only this form
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def percent(text: str) -> float:
    """'75%' -> 75.0"""
    return float(text.rstrip("%"))


def clock_minutes(text: str) -> int:
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    parent_id: str | None
    timezone: str
    calendar_id: str
    wip_limit: int
    origin: Origin = field(compare=False)
    retired: bool = False                  # kept for history, takes no new work
    renamed_from: str | None = None        # the id it had before: renamed in place


@dataclass(frozen=True)
class Skill:
    id: str
    name: str
    category: str
    description: str | None
    origin: Origin = field(compare=False)
    retired: bool = False                  # kept for history, takes no new work
    renamed_from: str | None = None        # the id it had before: renamed in place


@dataclass(frozen=True)
class WorkingPeriod:
    weekday: int          # ISO: 1 = Monday ... 7 = Sunday
    start_minute: int     # minutes after local midnight
    end_minute: int       # exclusive; 1440 = midnight at the end of the day


@dataclass(frozen=True)
class DayOff:
    day: dt.date
    name: str
    kind: str             # public_holiday | closure


@dataclass(frozen=True)
class Calendar:
    id: str
    name: str
    timezone: str
    working_hours: tuple[WorkingPeriod, ...]
    days_off: tuple[DayOff, ...]
    holiday_country: str | None
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class WorkItemType:
    id: str
    name: str
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class SlaTarget:
    work_item_type: str
    priority: str
    response_minutes: int
    resolution_minutes: int
    warning_percent: float
    calendar_id: str
    escalation_chain_id: str
    pause_statuses: tuple[str, ...]
    keep_deadlines: bool                # on_change: keep -- a policy change keeps started work's deadlines
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class AssignmentRule:
    id: str
    precedence: int
    description: str | None
    types: tuple[str, ...] | None          # None: any type
    priorities: tuple[str, ...] | None
    skills_any: tuple[str, ...] | None
    target_unit_id: str
    include_subtree: bool
    strategy: str
    capacity_weight: int
    min_proficiency: str | None
    when_no_capacity: str
    origin: Origin = field(compare=False)
    retired: bool = False                  # kept for history, takes no new work
    renamed_from: str | None = None        # the id it had before: renamed in place

    @property
    def conditions(self) -> dict[str, tuple[str, ...] | None]:
        return {"types": self.types, "priorities": self.priorities, "skills_any": self.skills_any}

    @property
    def is_catch_all(self) -> bool:
        return all(value is None for value in self.conditions.values())


@dataclass(frozen=True)
class QueueAging:
    raise_every_minutes: int
    max_priority: str
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class EscalationLevel:
    level: int            # 1-based position in the chain
    at_percent: float
    reason: str
    notify: str
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class EscalationChain:
    id: str
    name: str
    levels: tuple[EscalationLevel, ...]
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class LeavePolicy:
    reassign: tuple[str, ...]
    flag_for_review: tuple[str, ...]
    notify: str
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class Job:
    name: str
    description: str | None
    schedule: str
    function: str
    retention: str | None
    batch: int | None                 # rows per transaction; the run repeats until a batch comes back short
    origin: Origin = field(compare=False)


@dataclass(frozen=True)
class RealtimePolicy:
    notify_assignment_changes: bool
    origin: Origin | None = field(compare=False)


@dataclass(frozen=True)
class Policy:
    units: tuple[Unit, ...]
    skills: tuple[Skill, ...]
    proficiency_levels: tuple[str, ...]
    proficiency_origin: Origin = field(compare=False)
    calendars: tuple[Calendar, ...]
    work_item_types: tuple[WorkItemType, ...]
    priorities: tuple[str, ...]            # ascending: lowest first
    sla_targets: tuple[SlaTarget, ...]
    rules: tuple[AssignmentRule, ...]      # sorted by precedence
    queue_aging: QueueAging
    chains: tuple[EscalationChain, ...]
    leave: LeavePolicy
    jobs: tuple[Job, ...]
    realtime: RealtimePolicy
    priorities_origin: Origin | None = field(compare=False, default=None)
    # (file name, sha256 of its parsed content): what the policy hash is made of (validate.meaning_digest)
    sources: tuple[tuple[str, str], ...] = field(compare=False, default=())

    @property
    def policy_hash(self) -> str:
        import hashlib
        digest = hashlib.sha256()
        for display, sha in sorted(self.sources):
            digest.update(f"{display}\0{sha}\n".encode())
        return digest.hexdigest()


# --- builders: one per policy file kind ------------------------------------------------------

def build_units(f: PolicyFile) -> tuple[Unit, ...]:
    defaults = f.spec["defaults"]
    return tuple(
        Unit(id=u["id"], name=u["name"], parent_id=u.get("parent"),
             timezone=u.get("timezone", defaults["timezone"]),
             calendar_id=u.get("calendar", defaults["calendar"]),
             wip_limit=u.get("wip_limit", defaults["wip_limit"]),
             origin=_origin(f, ("units", i)), retired=u.get("retired", False), renamed_from=u.get("renamed_from"))
        for i, u in enumerate(f.spec["units"]))


def build_skills(f: PolicyFile) -> tuple[tuple[Skill, ...], tuple[str, ...], Origin]:
    skills = tuple(Skill(s["id"], s["name"], s["category"], s.get("description"), _origin(f, ("skills", i)),
                         s.get("retired", False), s.get("renamed_from"))
                   for i, s in enumerate(f.spec["skills"]))
    return skills, tuple(f.spec["proficiency_levels"]), _origin(f, ("proficiency_levels",))


def build_calendar(f: PolicyFile, index: int,
                   expand_holidays: Callable[[dict[str, Any]], list[tuple[dt.date, str]]]) -> Calendar:
    c = f.spec["calendars"][index]
    periods = []
    for day, ranges in c["working_hours"].items():
        for text in ranges:
            start, end = text.split("-")
            periods.append(WorkingPeriod(WEEKDAYS.index(day) + 1, clock_minutes(start), clock_minutes(end)))
    days_off: dict[dt.date, DayOff] = {}
    holidays_spec = c.get("public_holidays")
    if holidays_spec:
        for day, name in expand_holidays(holidays_spec):     # names from the holidays library: data too
            days_off[day] = DayOff(day, PolicyText(name), "public_holiday")
    for closure in c.get("closures", []):
        first = dt.date.fromisoformat(closure.get("date") or closure["from"])
        last = dt.date.fromisoformat(closure.get("date") or closure["to"])
        day = first
        while day <= last:
            days_off[day] = DayOff(day, closure["reason"], "closure")
            day += dt.timedelta(days=1)
    return Calendar(id=c["id"], name=c["name"], timezone=c["timezone"],
                    working_hours=tuple(sorted(periods, key=lambda p: (p.weekday, p.start_minute))),
                    days_off=tuple(sorted(days_off.values(), key=lambda d: d.day)),
                    holiday_country=holidays_spec["country"] if holidays_spec else None,
                    origin=_origin(f, ("calendars", index)))


def build_work_items(f: PolicyFile) -> tuple[tuple[WorkItemType, ...], tuple[str, ...], Origin]:
    types = tuple(WorkItemType(t["id"], t["name"], _origin(f, ("types", i))) for i, t in enumerate(f.spec["types"]))
    return types, tuple(f.spec["priorities"]), _origin(f, ("priorities",))


def build_sla(f: PolicyFile) -> tuple[SlaTarget, ...]:
    defaults = f.spec["defaults"]
    targets = []
    for type_id, row in f.spec["matrix"].items():
        for priority, cell in row.items():
            if priority in ("calendar", "escalation_chain", "warning_at", "on_change"):
                continue
            targets.append(SlaTarget(
                work_item_type=type_id, priority=priority,
                response_minutes=minutes(cell["response"]), resolution_minutes=minutes(cell["resolution"]),
                warning_percent=percent(cell.get("warning_at", row.get("warning_at", defaults["warning_at"]))),
                calendar_id=row.get("calendar", defaults["calendar"]),
                escalation_chain_id=row.get("escalation_chain", defaults["escalation_chain"]),
                pause_statuses=tuple(defaults.get("pause_statuses", ())),
                keep_deadlines=cell.get("on_change", row.get("on_change", defaults.get("on_change"))) == "keep",
                origin=_origin(f, ("matrix", type_id, priority))))
    return tuple(targets)


def build_rules(f: PolicyFile) -> tuple[tuple[AssignmentRule, ...], QueueAging]:
    defaults = f.spec["defaults"]
    rules = []
    for i, r in enumerate(f.spec["rules"]):
        match = r.get("match", {})
        rules.append(AssignmentRule(
            id=r["id"], precedence=r["precedence"], description=r.get("description"),
            types=tuple(match["types"]) if "types" in match else None,
            priorities=tuple(match["priorities"]) if "priorities" in match else None,
            skills_any=tuple(match["skills_any"]) if "skills_any" in match else None,
            target_unit_id=r["target"]["unit"], include_subtree=r["target"].get("include_subtree", False),
            strategy=r.get("strategy", defaults["strategy"]),
            capacity_weight=r.get("capacity_weight", defaults["capacity_weight"]),
            min_proficiency=r.get("min_proficiency"),
            when_no_capacity=r.get("when_no_capacity", defaults["when_no_capacity"]),
            origin=_origin(f, ("rules", i)), retired=r.get("retired", False), renamed_from=r.get("renamed_from")))
    aging = f.spec["queue"]["aging"]
    queue_aging = QueueAging(minutes(aging["raise_every"]), aging["max_priority"], _origin(f, ("queue", "aging")))
    return tuple(sorted(rules, key=lambda r: (r.precedence, r.id))), queue_aging


def build_chains(f: PolicyFile) -> tuple[EscalationChain, ...]:
    return tuple(
        EscalationChain(c["id"], c["name"], tuple(
            EscalationLevel(j + 1, percent(level["at"]), level["reason"], level["notify"],
                            _origin(f, ("chains", i, "levels", j)))
            for j, level in enumerate(c["levels"])), _origin(f, ("chains", i)))
        for i, c in enumerate(f.spec["chains"]))


def build_leave(f: PolicyFile) -> LeavePolicy:
    leave = f.spec["leave"]
    return LeavePolicy(tuple(leave["reassign"]), tuple(leave["flag_for_review"]), leave["notify"],
                       _origin(f, ("leave",)))


def build_realtime(f: PolicyFile) -> RealtimePolicy:
    return RealtimePolicy(f.spec["notify_assignment_changes"], _origin(f, ("notify_assignment_changes",)))


def build_jobs(f: PolicyFile) -> tuple[Job, ...]:
    return tuple(Job(j["name"], j.get("description"), j["schedule"], j["function"], j.get("retention"), j.get("batch"),
                     _origin(f, ("jobs", i)))
                 for i, j in enumerate(f.spec["jobs"]))
