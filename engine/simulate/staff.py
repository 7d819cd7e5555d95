"""The people a simulation replays with, the same for every policy compared. Input: a CSV file, a
live database (read-only), or the workload and the engine's own routing (synthetic). Output:
`Person` records (the `upsert_staff_profile` body) and their leave periods.

Synthetic staff: every arrival is routed by the first policy's `match_assignment_rule` (the engine
decides, not Python); its unit needs the item's weight in WIP slots from arrival to arrival +
handling time. Each unit gets enough people for the 85th percentile of that demand over the
quarter hours of the run (at its WIP limit), so the shipped load is neither idle nor hopeless.
A target taken with its subtree spreads its people over the subtree's leaf units. Everyone holds
the skills their unit's items ask for at the highest level; the first person of a unit is its
unit head, the second its supervisor; units above them get a head with WIP 0 (escalations only).
About 4% of people take one to three days of leave. Ids come from `random.Random(seed)`.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psycopg

from engine.errors import RulesctlError
from engine.policy.model import Policy
from engine.simulate.workload import Workload

BUCKET = dt.timedelta(minutes=15)
DEMAND_PERCENTILE = 0.85
LEAVE_SHARE = 0.04


class StaffError(RulesctlError):
    """A staff file that cannot be read; the message names the line and the field."""


@dataclass(frozen=True)
class Leave:
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Person:
    id: str
    unit_id: str
    role: str
    skills: tuple[tuple[str, str], ...]          # (skill id, proficiency level)
    wip_limit: int | None                        # None: the unit's default (so a policy change counts)
    leave: tuple[Leave, ...] = ()

    def profile(self) -> dict:
        """The upsert_staff_profile body."""
        return {"id": self.id, "unit_id": self.unit_id, "full_name": f"Simulated {self.role} {self.id[-6:]}",
                "role": self.role, "skills": dict(self.skills), "wip_limit": self.wip_limit}


def availability_changes(people: list[Person]) -> list[tuple[dt.datetime, dict]]:
    """set_staff_availability requests in time order (leave starts and ends)."""
    changes = []
    for person in people:
        for leave in person.leave:
            changes.append((leave.start, {"staff_id": person.id, "status": "on_leave",
                                          "until": leave.end.isoformat(), "reason": "simulated leave"}))
            changes.append((leave.end, {"staff_id": person.id, "status": "available", "reason": "back from leave"}))
    return sorted(changes, key=lambda c: (c[0], c[1]["staff_id"], c[1]["status"]))


def synthetic(policy: Policy, workload: Workload, routing: psycopg.Connection, seed: int) -> list[Person]:
    rng = random.Random(seed * 7919 + 1)          # its own stream: staff do not shift the arrivals
    demand, skills = _demand_by_target(workload, routing)
    units = {u.id: u for u in policy.units if not u.retired}
    top_level = policy.proficiency_levels[-1]
    people: list[Person] = []
    staffed: dict[str, int] = defaultdict(int)
    for (target, subtree), series in sorted(demand.items()):
        homes = _leaf_units(policy, target) if subtree else [target]
        wip = min(units[h].wip_limit for h in homes) or 1
        needed = max(len(homes), math.ceil(_percentile(series, DEMAND_PERCENTILE) / wip))
        held = tuple((s, top_level) for s in sorted(skills[(target, subtree)]))
        for n in range(needed):
            home = homes[n % len(homes)]
            role = ("unit_head", "supervisor")[staffed[home]] if staffed[home] < 2 else "staff"
            staffed[home] += 1
            people.append(Person(_uuid(rng), home, role, held, None))
    parents = {u.id: u.parent_id for u in units.values()}
    for unit_id in sorted({p for home in staffed for p in _ancestors(parents, home)} - set(staffed)):
        people.append(Person(_uuid(rng), unit_id, "unit_head", (), 0))
    return _with_leave(rng, people, workload)


def _demand_by_target(workload: Workload, routing: psycopg.Connection
                      ) -> tuple[dict[tuple[str, bool], list[float]], dict[tuple[str, bool], set[str]]]:
    """WIP slots in use per quarter hour for each (target unit, with subtree), as the engine routes."""
    kinds = sorted({(a.work_item_type, a.priority, a.required_skills, a.target_unit_id) for a in workload.arrivals})
    route = {}
    for kind in kinds:
        row = routing.execute("SELECT target_unit_id, include_subtree, capacity_weight "
                              "FROM match_assignment_rule(%s, %s, %s)", [kind[0], kind[1], list(kind[2])]).fetchone()
        if kind[3]:
            route[kind] = (kind[3], False, row[2] if row else 1)
        elif row:
            route[kind] = (row[0], row[1], row[2])
    buckets = int((workload.end - workload.start) / BUCKET) + 1
    demand: dict[tuple[str, bool], list[float]] = defaultdict(lambda: [0.0] * buckets)
    skills: dict[tuple[str, bool], set[str]] = defaultdict(set)
    for a in workload.arrivals:
        found = route.get((a.work_item_type, a.priority, a.required_skills, a.target_unit_id))
        if found is None:
            continue
        target, subtree, weight = found
        skills[(target, subtree)].update(a.required_skills)
        first = int((a.arrived_at - workload.start) / BUCKET)
        last = int((a.arrived_at + dt.timedelta(minutes=a.handling_minutes) - workload.start) / BUCKET)
        series = demand[(target, subtree)]
        for b in range(max(first, 0), min(last, buckets - 1) + 1):
            series[b] += weight
    return demand, skills


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _leaf_units(policy: Policy, root: str) -> list[str]:
    children = defaultdict(list)
    for u in policy.units:
        if not u.retired and u.parent_id:
            children[u.parent_id].append(u.id)
    leaves, todo = [], [root]
    while todo:
        unit = todo.pop()
        if children[unit]:
            todo.extend(sorted(children[unit], reverse=True))
        else:
            leaves.append(unit)
    return leaves


def _ancestors(parents: dict[str, str | None], unit: str) -> list[str]:
    found = []
    while parents.get(unit):
        unit = parents[unit]  # type: ignore[assignment]
        found.append(unit)
    return found


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _with_leave(rng: random.Random, people: list[Person], workload: Workload) -> list[Person]:
    days = max(1, int((workload.end - workload.start).days))
    result = []
    for person in people:
        leave: tuple[Leave, ...] = ()
        if person.role == "staff" and rng.random() < LEAVE_SHARE and days > 1:
            start = workload.start + dt.timedelta(days=rng.randrange(days), hours=8)   # 08:00 from a midnight start
            leave = (Leave(start, start + dt.timedelta(days=rng.randint(1, 3))),)
        result.append(Person(person.id, person.unit_id, person.role, person.skills, person.wip_limit, leave))
    return result


def from_file(path: Path) -> list[Person]:
    """CSV with a header: id, unit, role, skills ("skill-a skill-b:expert"), wip_limit (blank: the
    unit's default), leave ("2027-01-05T08:00+03:00/2027-01-07T08:00+03:00;..."). An id that is
    not a UUID is turned into one (uuid5), so readable ids work."""
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except OSError as exc:
        raise StaffError(f"{path}: cannot read the staff file: {exc.strerror}") from None
    people = []
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        for name in ("id", "unit"):
            if not (row.get(name) or "").strip():
                raise StaffError(f"{where}: {name}: is required")
        skills = []
        for token in (row.get("skills") or "").split():
            skill, _, level = token.partition(":")
            skills.append((skill, level or "basic"))
        wip = (row.get("wip_limit") or "").strip()
        if wip and not wip.isdigit():
            raise StaffError(f"{where}: wip_limit: not a whole number: {wip!r}")
        people.append(Person(_person_id(row["id"].strip()), row["unit"].strip(), (row.get("role") or "staff").strip(),
                             tuple(skills), int(wip) if wip else None, _leave(where, row.get("leave") or "")))
    if not people:
        raise StaffError(f"{path}: no staff")
    return people


def _person_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rulesctl-simulate:{text}"))


def _leave(where: str, text: str) -> tuple[Leave, ...]:
    periods = []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        try:
            start, end = (dt.datetime.fromisoformat(x) for x in part.split("/"))
        except ValueError:
            raise StaffError(f"{where}: leave: not FROM/TO ISO date-times: {part!r}") from None
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise StaffError(f"{where}: leave: give time zones, and an end after the start: {part!r}")
        periods.append(Leave(start, end))
    return tuple(periods)


def from_database(conn: psycopg.Connection) -> list[Person]:
    """The people of a live database as they are now (read-only; leave is not replayed)."""
    rows = conn.execute("""
        SELECT s.id::text, s.unit_id, s.role, s.wip_limit,
               coalesce(array_agg(k.skill_id || ':' || k.proficiency ORDER BY k.skill_id)
                        FILTER (WHERE k.skill_id IS NOT NULL), '{}')
        FROM staff_profiles s LEFT JOIN staff_skills k ON k.staff_id = s.id
        GROUP BY s.id ORDER BY s.id""").fetchall()
    return [Person(r[0], r[1], r[2], tuple(tuple(x.split(":", 1)) for x in r[4]), r[3]) for r in rows]  # type: ignore[misc]
