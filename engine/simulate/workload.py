"""The arrivals a simulation replays. Input: a CSV or JSONL file, the policy (synthetic, seeded), or
a live database's recent history (read-only, `from_history`). Output: a `Workload` — arrivals sorted by time, each
with its request for `auto_assign` and how long its holder takes to finish it.

Synthetic arrivals (`synthetic`): for each work item type a Poisson stream whose rate follows the
type's SLA calendar — 90% of the volume inside working hours, shaped over the day (a hump peaking
mid-shift), 10% spread over the rest of the week — at `per_day` items per day for the whole
organisation split by `TYPE_SHARE`. Priorities follow `PRIORITY_SHARE` (lowest first). Legal
translations ask for the legal-translation skill when the policy has one. Handling times are
log-normal (sigma 0.8) around `HANDLING_MINUTES` per type, shorter for higher priorities.
Everything is drawn from one `random.Random(seed)`: the same seed gives the same arrivals.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from engine.errors import RulesctlError
from engine.policy.model import Calendar, Policy

# A month for the shipped organisation is about 100,000 arrivals.
DEFAULT_PER_DAY = 3300
TYPE_SHARE = {"ticket": 0.40, "survey_task": 0.25, "data_request": 0.20, "translation_request": 0.15}
HANDLING_MINUTES = {"ticket": 40.0, "survey_task": 120.0, "data_request": 150.0, "translation_request": 240.0}
DEFAULT_HANDLING_MINUTES = 120.0
PRIORITY_SHARE = (0.20, 0.50, 0.20, 0.10)           # low, normal, high, urgent
LEGAL_SHARE = 0.2
OFF_HOURS_SHARE = 0.10
FIELDS = ("arrived_at", "work_item_id", "work_item_type", "priority", "required_skills", "target_unit_id",
          "handling_minutes")


class WorkloadError(RulesctlError):
    """A workload file or source that cannot be read; the message names the line and the field."""


@dataclass(frozen=True)
class Arrival:
    arrived_at: dt.datetime
    work_item_id: str
    work_item_type: str
    priority: str
    required_skills: tuple[str, ...]
    target_unit_id: str | None
    handling_minutes: float

    def request(self) -> dict:
        """The auto_assign request."""
        body: dict = {"work_item_id": self.work_item_id, "work_item_type": self.work_item_type,
                      "priority": self.priority, "required_skills": list(self.required_skills)}
        if self.target_unit_id:
            body["target_unit_id"] = self.target_unit_id
        return body


@dataclass(frozen=True)
class Workload:
    arrivals: tuple[Arrival, ...]
    source: str                  # synthetic | file | history
    start: dt.datetime
    end: dt.datetime             # the replay runs to here (items still open then count as open)

    @property
    def days(self) -> float:
        return round((self.end - self.start).total_seconds() / 86400, 2)


def synthetic(policy: Policy, days: int, seed: int, start: dt.datetime,
              per_day: int = DEFAULT_PER_DAY) -> Workload:
    rng = random.Random(seed)
    types = [t.id for t in policy.work_item_types]
    shares = _type_shares(types)
    calendars = {c.id: c for c in policy.calendars}
    calendar_of = {t.work_item_type: calendars[t.calendar_id] for t in policy.sla_targets}
    legal = "skill-legal-translation" if any(s.id == "skill-legal-translation" and not s.retired
                                             for s in policy.skills) else None
    end = start + dt.timedelta(days=days)
    drawn: list[tuple[dt.datetime, str]] = []
    for work_type in types:
        rate_per_day = per_day * shares[work_type]
        for moment in _poisson_times(rng, calendar_of[work_type], start, end, rate_per_day):
            drawn.append((moment, work_type))
    drawn.sort()
    arrivals = []
    for n, (moment, work_type) in enumerate(drawn, start=1):
        priority = _pick(rng, policy.priorities, _priority_weights(len(policy.priorities)))
        rank = policy.priorities.index(priority)
        skills = (legal,) if legal and work_type == "translation_request" and rng.random() < LEGAL_SHARE else ()
        mean = HANDLING_MINUTES.get(work_type, DEFAULT_HANDLING_MINUTES) * (1.25 - 0.25 * rank)
        handling = max(1.0, rng.lognormvariate(math.log(mean) - 0.32, 0.8))    # mu so that the mean is `mean`
        arrivals.append(Arrival(moment, f"sim-{n:06d}", work_type, priority, skills, None, round(handling, 3)))
    return Workload(tuple(arrivals), "synthetic", start, end)


def _type_shares(types: list[str]) -> dict[str, float]:
    known = {t: TYPE_SHARE[t] for t in types if t in TYPE_SHARE}
    rest = [t for t in types if t not in TYPE_SHARE]
    weights = {**known, **{t: 0.1 for t in rest}}
    total = sum(weights.values()) or 1.0
    return {t: w / total for t, w in weights.items()}


def _priority_weights(count: int) -> tuple[float, ...]:
    return PRIORITY_SHARE if count == len(PRIORITY_SHARE) else tuple([1.0] * count)


def _pick(rng: random.Random, values: Iterable[str], weights: Iterable[float]) -> str:
    return rng.choices(list(values), weights=list(weights))[0]


def _poisson_times(rng: random.Random, calendar: Calendar, start: dt.datetime, end: dt.datetime,
                   per_day: float) -> Iterator[dt.datetime]:
    """A Poisson stream, hour by hour at that hour's rate (exact for a piecewise-constant rate)."""
    zone = ZoneInfo(calendar.timezone)
    working_minutes_per_week = sum(p.end_minute - p.start_minute for p in calendar.working_hours) or 1
    hour = start
    while hour < end:
        rate = per_day * 7 * _hour_weight(calendar, hour.astimezone(zone), working_minutes_per_week) / 60.0
        t = 0.0
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= 60.0:
                break
            moment = hour + dt.timedelta(minutes=t)
            yield moment.replace(microsecond=moment.microsecond // 1000 * 1000)     # milliseconds
        hour += dt.timedelta(hours=1)


def _hour_weight(calendar: Calendar, local: dt.datetime, working_minutes_per_week: int) -> float:
    """This hour's share of a week's arrivals."""
    minute = local.hour * 60
    off = {d.day for d in calendar.days_off}
    for period in calendar.working_hours:
        if period.weekday == local.isoweekday() and period.start_minute <= minute < period.end_minute \
                and local.date() not in off:
            length = period.end_minute - period.start_minute
            hump = 1.0 + 0.6 * math.sin(math.pi * (minute + 30 - period.start_minute) / length)
            return (1 - OFF_HOURS_SHARE) * hump / 1.38 * 60 / working_minutes_per_week
    off_minutes = 7 * 1440 - working_minutes_per_week
    return OFF_HOURS_SHARE * 60 / off_minutes if off_minutes > 0 else 0.0


def from_file(path: Path, days: int | None = None) -> Workload:
    """Arrivals from CSV (a header naming the fields) or JSONL (one object a line), replayed for
    `days` from the first arrival, or until the last one's handling time has passed."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the workload: {exc.strerror}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise WorkloadError(f"{path}:{n}: not JSON: {exc.msg}") from None
    else:
        rows = [(n, row) for n, row in enumerate(csv.DictReader(text.splitlines()), start=2)]
    arrivals = sorted((_arrival(path, n, row) for n, row in rows), key=lambda a: (a.arrived_at, a.work_item_id))
    if not arrivals:
        raise WorkloadError(f"{path}: no arrivals")
    first = arrivals[0].arrived_at
    end = first + dt.timedelta(days=days) if days else \
        max(a.arrived_at + dt.timedelta(minutes=a.handling_minutes) for a in arrivals)
    return Workload(tuple(arrivals), "file", first, end)


def _arrival(path: Path, line: int, row: dict) -> Arrival:
    where = f"{path}:{line}"
    for name in ("arrived_at", "work_item_id", "work_item_type", "priority"):
        if not row.get(name):
            raise WorkloadError(f"{where}: {name}: is required")
    try:
        arrived = dt.datetime.fromisoformat(str(row["arrived_at"]))
    except ValueError:
        raise WorkloadError(f"{where}: arrived_at: not an ISO date-time: {row['arrived_at']!r}") from None
    if arrived.tzinfo is None:
        raise WorkloadError(f"{where}: arrived_at: give a time zone (e.g. +03:00 or Z): {row['arrived_at']!r}")
    skills = row.get("required_skills") or []
    if isinstance(skills, str):
        skills = [s for s in skills.replace(";", " ").replace(",", " ").split() if s]
    try:
        handling = float(row.get("handling_minutes") or DEFAULT_HANDLING_MINUTES)
    except (TypeError, ValueError):
        raise WorkloadError(f"{where}: handling_minutes: not a number: {row.get('handling_minutes')!r}") from None
    if handling <= 0:
        raise WorkloadError(f"{where}: handling_minutes: must be above 0")
    return Arrival(arrived.astimezone(dt.UTC), str(row["work_item_id"]), str(row["work_item_type"]),
                   str(row["priority"]), tuple(sorted(skills)), row.get("target_unit_id") or None, handling)


def write_csv(workload: Workload, path: Path) -> None:
    """The workload as a CSV `from_file` reads back (to edit or to replay elsewhere)."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        for a in workload.arrivals:
            writer.writerow([a.arrived_at.isoformat(), a.work_item_id, a.work_item_type, a.priority,
                             " ".join(a.required_skills), a.target_unit_id or "", a.handling_minutes])


def from_history(conn: psycopg.Connection, days: int, now: dt.datetime | None = None) -> Workload:
    """The last `days` days of arrivals of a live database (read-only): each work item once, as it
    first arrived, with the elapsed time from its latest assignment to completion as its handling
    time (items not completed yet get their type's synthetic mean)."""
    end = now or conn.execute("SELECT engine_now()").fetchone()[0]  # type: ignore[index]
    start = end - dt.timedelta(days=days)
    rows = conn.execute("""
        WITH arrived AS (
          SELECT work_item_id, work_item_type::text AS work_item_type, priority::text AS priority,
                 required_skills, arrived_at, assigned_at, completed_at, status::text AS status
          FROM assignments WHERE arrived_at >= %(start)s AND arrived_at < %(end)s
          UNION ALL
          SELECT work_item_id, work_item_type::text, priority::text, required_skills, arrived_at, NULL, NULL, 'queued'
          FROM assignment_queue WHERE arrived_at >= %(start)s AND arrived_at < %(end)s)
        SELECT DISTINCT ON (work_item_id) work_item_id, work_item_type, priority, required_skills, arrived_at,
               CASE WHEN status = 'completed' THEN extract(epoch FROM completed_at - assigned_at) / 60 END
        FROM arrived ORDER BY work_item_id, arrived_at, assigned_at DESC NULLS LAST""", {"start": start, "end": end})
    arrivals = sorted((Arrival(r[4].astimezone(dt.UTC), r[0], r[1], r[2], tuple(sorted(r[3] or ())), None,
                               max(0.05, round(float(r[5]), 3)) if r[5] is not None
                               else HANDLING_MINUTES.get(r[1], DEFAULT_HANDLING_MINUTES))
                       for r in rows.fetchall()), key=lambda a: (a.arrived_at, a.work_item_id))
    if not arrivals:
        raise WorkloadError(f"no arrivals in the database's last {days} days")
    return Workload(tuple(arrivals), "history", start.astimezone(dt.UTC), end.astimezone(dt.UTC))
