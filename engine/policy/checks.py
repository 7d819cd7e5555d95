"""Semantic checks over the model pieces. Input: the pieces built from schema-valid files
(a kind whose file failed is simply absent) and those files, for positions. Output: problems.

A check that needs a missing kind is skipped: its file already has problems of its own.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

from croniter import croniter

from engine.policy import lifecycle
from engine.policy.load import PolicyFile
from engine.policy.model import AssignmentRule, minutes
from engine.policy.problems import Problem
from engine.policy.text import MAX_IDENTIFIER_BYTES

# The model pieces built so far, by file kind (validate._build_pieces), and the files they came from.
Pieces = dict[str, Any]
Files = dict[str, PolicyFile]

# Engine functions a job may call (the runtime defines them).
JOB_FUNCTIONS = {
    "sla_check_and_escalate": "the SLA monitor",
    "capture_capacity_snapshot": "the daily capacity snapshot",
    "process_stale_queue_items": "the queue fallback sweep",
    "cleanup_escalation_events": "the escalation clean-up (needs `retention`)",
    "relay_engine_events": "the notification relay (sends what engine_events holds)",
    "return_staff_from_leave": "the leave return (people whose leave `until` passed become available)",
}
# Job functions that take a row limit and return how much they did: they can run in batches.
BATCHED_JOB_FUNCTIONS = ("sla_check_and_escalate", "process_stale_queue_items", "relay_engine_events",
                         "return_staff_from_leave")
_SECONDS_SCHEDULE = re.compile(r"([1-9]|[1-5][0-9]) seconds?")
_CRON_CHARACTERS = re.compile(r"[0-9A-Za-z*/,\- ]+")      # croniter also reads other digits; pg_cron does not

# Values that become a PostgreSQL identifier or `name` value, which PostgreSQL cuts to 63 bytes
# without a word (two long job names become one job): (kind, how to list them, label).
NAME_FIELDS = (
    ("jobs", lambda d: [(("jobs", i, "name"), j["name"]) for i, j in enumerate(d["jobs"])],
     "job name (cron.job.jobname)"),
    ("work_items", lambda d: [(("types", i, "id"), t["id"]) for i, t in enumerate(d["types"])],
     "work item type (an enum label)"),
    ("work_items", lambda d: [(("priorities", i), p) for i, p in enumerate(d["priorities"])],
     "priority (an enum label)"),
)
# Bounds that keep every number inside the column or interval it is stored in.
MAX_DURATION_MINUTES = 8760 * 60                  # a year, for SLA targets and queue aging
MAX_LEVEL_PERCENT = 1000.0                        # escalation_levels.threshold_percent is numeric(6,2)
MAX_RETENTION_HOURS = 3650 * 24                   # ten years
MAX_CLOSURE_DAYS = 7305                           # one closure from..to: twenty years (each day is a seed row)


def run_all(pieces: Pieces, files: Files) -> list[Problem]:
    problems: list[Problem] = []
    for check in (check_duplicate_ids, check_name_lengths, check_units, check_timezones, check_calendars,
                  check_sla, check_rules, check_escalation, check_leave, check_jobs, lifecycle.check_lifecycle):
        problems.extend(check(pieces, files))
    return problems


def _dupes(file: PolicyFile, list_key: str, field: str, label: str) -> list[Problem]:
    """Items of the list `list_key` whose `field` an earlier item already has."""
    seen: dict[object, int] = {}
    problems = []
    for index, item in enumerate(file.spec[list_key]):
        value = item[field]
        if value in seen:
            problems.append(file.problem((list_key, index, field),
                                         f"duplicate {label} {value!r} (first at index {seen[value]})"))
        else:
            seen[value] = index
    return problems


def check_duplicate_ids(pieces: Pieces, files: Files) -> list[Problem]:
    problems = []
    specs = [("units", "units", "id", "unit id"),                 # (file kind, list, key, label)
             ("skills", "skills", "id", "skill id"),
             ("calendars", "calendars", "id", "calendar id"),
             ("work_items", "types", "id", "work item type"),
             ("assignment_rules", "rules", "id", "rule id"),
             ("escalation", "chains", "id", "chain id"),
             ("jobs", "jobs", "name", "job name")]
    for kind, list_key, field, label in specs:
        if kind in files:
            problems += _dupes(files[kind], list_key, field, label)
    return problems


def check_name_lengths(pieces: Pieces, files: Files) -> list[Problem]:
    problems = []
    for kind, values, label in NAME_FIELDS:
        if kind in files:
            for path, value in values(files[kind].spec):
                size = len(value.encode("utf-8"))
                if size > MAX_IDENTIFIER_BYTES:
                    problems.append(files[kind].problem(path, f"{label} is {size} bytes long; PostgreSQL keeps "
                                                              f"{MAX_IDENTIFIER_BYTES} and would cut it short"))
    return problems


def _duration(f: PolicyFile, path: tuple, text: str) -> list[Problem]:
    if minutes(text) > MAX_DURATION_MINUTES:
        return [f.problem(path, f"{text} is longer than {MAX_DURATION_MINUTES // 60}h (a year), the longest "
                                f"duration rulesctl accepts")]
    return []


def closure_problems(f: PolicyFile, index: int) -> list[Problem]:
    """Before a calendar is built (its closures are expanded day by day): spans that are too long."""
    problems = []
    for c_index, closure in enumerate(f.spec["calendars"][index].get("closures", [])):
        if "from" in closure:
            days = (dt.date.fromisoformat(closure["to"]) - dt.date.fromisoformat(closure["from"])).days + 1
            if days > MAX_CLOSURE_DAYS:
                problems.append(f.problem(("calendars", index, "closures", c_index, "to"),
                                          f"a closure of {days} days; one closure may span at most "
                                          f"{MAX_CLOSURE_DAYS} days"))
    return problems


def _known(pieces: Pieces, kind: str) -> set[str] | None:
    """The set of ids of a kind, or None when that kind is not available (skip the check)."""
    if kind == "units" and "units" in pieces:
        return {u.id for u in pieces["units"]}
    if kind == "skills" and "skills" in pieces:
        return {s.id for s in pieces["skills"][0]}
    if kind == "levels" and "skills" in pieces:
        return set(pieces["skills"][1])
    if kind == "calendars" and "calendars" in pieces:
        return {c.id for c in pieces["calendars"]}
    if kind == "types" and "work_items" in pieces:
        return {t.id for t in pieces["work_items"][0]}
    if kind == "priorities" and "work_items" in pieces:
        return set(pieces["work_items"][1])
    if kind == "chains" and "escalation" in pieces:
        return {c.id for c in pieces["escalation"]}
    return None


def _unknown(file: PolicyFile, path: tuple[str | int, ...], value: object, known: set[str] | None,
             label: str) -> list[Problem]:
    if known is None or value is None or value in known:
        return []
    hint = f"; known: {', '.join(sorted(known))}" if len(known) <= 12 else ""
    return [file.problem(path, f"unknown {label} {value!r}{hint}")]


def check_units(pieces: Pieces, files: Files) -> list[Problem]:
    if "units" not in pieces:
        return []
    f = files["units"]
    units = pieces["units"]
    known = {u.id for u in units}
    calendars = _known(pieces, "calendars")
    problems = _unknown(f, ("defaults", "calendar"), f.spec["defaults"]["calendar"], calendars, "calendar")
    for index, (unit, raw) in enumerate(zip(units, f.spec["units"], strict=True)):
        problems += _unknown(f, ("units", index, "parent"), unit.parent_id, known, "parent unit")
        if "calendar" in raw:
            problems += _unknown(f, ("units", index, "calendar"), unit.calendar_id, calendars, "calendar")
    parents = {u.id: u.parent_id for u in units}
    reported: set[str] = set()
    for index, unit in enumerate(units):
        path, node = [], unit.id
        while node is not None and node in parents and node not in path:
            path.append(node)
            node = parents[node]
        if node in path:                  # walked back onto the path: a cycle
            cycle = path[path.index(node):] + [node]
            if not set(cycle) & reported:
                reported.update(cycle)
                problems.append(f.problem(("units", index, "parent"),
                                          f"the unit tree has a cycle: {' --> '.join(cycle)}"))
    if not any(u.parent_id is None for u in units):
        problems.append(f.problem(("units",), "no root unit: exactly one unit must have no parent"))
    return problems


def check_timezones(pieces: Pieces, files: Files) -> list[Problem]:
    problems = []
    places: list[tuple[PolicyFile, tuple[str | int, ...], str]] = []
    if "units" in files:
        f = files["units"]
        places.append((f, ("defaults", "timezone"), f.spec["defaults"]["timezone"]))
        places += [(f, ("units", i, "timezone"), u["timezone"])
                   for i, u in enumerate(f.spec["units"]) if "timezone" in u]
    if "calendars" in files:
        f = files["calendars"]
        places += [(f, ("calendars", i, "timezone"), c["timezone"]) for i, c in enumerate(f.spec["calendars"])]
    for f, path, name in places:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f.problem(path, f"time zone {name!r} does not exist "
                                            "(use an IANA name such as Asia/Riyadh)"))
    return problems


def check_calendars(pieces: Pieces, files: Files) -> list[Problem]:
    if "calendars" not in files:
        return []
    f = files["calendars"]
    problems = []
    for index, raw in enumerate(f.spec["calendars"]):
        hours = raw["working_hours"]
        if not any(hours.values()):
            problems.append(f.problem(("calendars", index, "working_hours"),
                                      f"calendar {raw['id']!r} has no working hours: its SLA clock would never run"))
        for day, ranges in hours.items():
            spans = []
            for r_index, text in enumerate(ranges):
                start, end = text.split("-")
                if start >= end:
                    problems.append(f.problem(("calendars", index, "working_hours", day, r_index),
                                              f"{text!r} ends before it starts"))
                spans.append((start, end, r_index))
            spans.sort()
            for (_, end_a, _), (start_b, _, r_index) in pairwise(spans):
                if start_b < end_a:
                    problems.append(f.problem(("calendars", index, "working_hours", day, r_index),
                                              f"working hours on {day} overlap"))
        for c_index, closure in enumerate(raw.get("closures", [])):
            if "from" in closure and closure["from"] > closure["to"]:
                problems.append(f.problem(("calendars", index, "closures", c_index, "to"),
                                          f"closure ends ({closure['to']}) before it starts ({closure['from']})"))
    return problems


def check_sla(pieces: Pieces, files: Files) -> list[Problem]:
    if "sla" not in files:
        return []
    f = files["sla"]
    types, priorities = _known(pieces, "types"), _known(pieces, "priorities")
    calendars, chains = _known(pieces, "calendars"), _known(pieces, "chains")
    defaults = f.spec["defaults"]
    problems = _unknown(f, ("defaults", "calendar"), defaults["calendar"], calendars, "calendar")
    problems += _unknown(f, ("defaults", "escalation_chain"), defaults["escalation_chain"], chains, "escalation chain")
    problems += _threshold(f, ("defaults", "warning_at"), defaults["warning_at"])
    for type_id, row in f.spec["matrix"].items():
        problems += _unknown(f, ("matrix", type_id), type_id, types, "work item type")
        problems += _unknown(f, ("matrix", type_id, "calendar"), row.get("calendar"), calendars, "calendar")
        problems += _unknown(f, ("matrix", type_id, "escalation_chain"), row.get("escalation_chain"), chains,
                             "escalation chain")
        if "warning_at" in row:
            problems += _threshold(f, ("matrix", type_id, "warning_at"), row["warning_at"])
        cells = {k: v for k, v in row.items() if k not in ("calendar", "escalation_chain", "warning_at")}
        for priority, cell in cells.items():
            path = ("matrix", type_id, priority)
            problems += _unknown(f, path, priority, priorities, "priority")
            if "warning_at" in cell:
                problems += _threshold(f, path + ("warning_at",), cell["warning_at"])
            problems += _duration(f, path + ("response",), cell["response"])
            problems += _duration(f, path + ("resolution",), cell["resolution"])
            if minutes(cell["resolution"]) == 0:
                problems.append(f.problem(path + ("resolution",), "resolution time must be longer than zero"))
            elif minutes(cell["response"]) > minutes(cell["resolution"]):
                problems.append(f.problem(path + ("response",), "response time is longer than resolution time"))
        if priorities is not None:
            missing = [p for p in pieces["work_items"][1] if p not in cells]
            if missing:
                problems.append(f.problem(("matrix", type_id), f"SLA matrix gap: no target for priority "
                                                                 f"{', '.join(missing)} of type {type_id!r}"))
    if types is not None:
        for missing in [t.id for t in pieces["work_items"][0] if t.id not in f.spec["matrix"]]:
            problems.append(f.problem(("matrix",), f"SLA matrix gap: work item type {missing!r} has no row"))
    return problems


def _threshold(f: PolicyFile, path: tuple, text: str) -> list[Problem]:
    value = float(text.rstrip("%"))
    if not 0 < value < 100:
        return [f.problem(path, f"warning threshold {text} is outside (0%, 100%): it must warn before the deadline")]
    return []


def check_rules(pieces: Pieces, files: Files) -> list[Problem]:
    if "assignment_rules" not in pieces:
        return []
    f = files["assignment_rules"]
    rules, aging = pieces["assignment_rules"]
    raw_by_id = {raw["id"]: i for i, raw in reversed(list(enumerate(f.spec["rules"])))}
    known = {k: _known(pieces, k) for k in ("units", "skills", "types", "priorities", "levels")}
    problems = _unknown(f, ("queue", "aging", "max_priority"), aging.max_priority, known["priorities"], "priority")
    problems += _duration(f, ("queue", "aging", "raise_every"), f.spec["queue"]["aging"]["raise_every"])
    if aging.raise_every_minutes == 0:
        problems.append(f.problem(("queue", "aging", "raise_every"), "queue aging must wait longer than zero"))
    for rule in rules:
        i = raw_by_id[rule.id]
        problems += _unknown(f, ("rules", i, "target", "unit"), rule.target_unit_id, known["units"], "unit")
        problems += _unknown(f, ("rules", i, "min_proficiency"), rule.min_proficiency, known["levels"],
                             "proficiency level")
        for field, label in (("types", "work item type"), ("priorities", "priority"), ("skills_any", "skill")):
            for j, value in enumerate(getattr(rule, field) or ()):
                known_set = known["skills" if field == "skills_any" else field]
                problems += _unknown(f, ("rules", i, "match", field, j), value, known_set, label)
    # Equal precedence that can match the same item: the winner would depend on file order.
    by_precedence = defaultdict(list)
    rules = tuple(rule for rule in rules if not rule.retired)      # a retired rule never matches
    for rule in sorted(rules, key=lambda r: raw_by_id[r.id]):      # file order: report the later one
        by_precedence[rule.precedence].append(rule)
    for precedence, group in by_precedence.items():
        for a_index, a in enumerate(group):
            for b in group[a_index + 1:]:
                if _overlap(a, b):
                    problems.append(f.problem(("rules", raw_by_id[b.id], "precedence"),
                                              f"rules {a.id!r} and {b.id!r} share precedence {precedence} and can "
                                              f"match the same item; give them different precedence"))
    # A rule after a broader one (same or wider on every condition) can never fire.
    for later_index, later in enumerate(rules):
        for earlier in rules[:later_index]:
            if earlier.precedence < later.precedence and _covers(earlier, later):
                what = "catch-all rule" if earlier.is_catch_all else "broader rule"
                problems.append(f.problem(("rules", raw_by_id[later.id]),
                                          f"rule {later.id!r} is shadowed by the earlier {what} {earlier.id!r} "
                                          f"(precedence {earlier.precedence}) and can never match"))
                break
    return problems


def _overlap(a: AssignmentRule, b: AssignmentRule) -> bool:
    return all(x is None or y is None or set(x) & set(y)
               for x, y in zip(a.conditions.values(), b.conditions.values(), strict=True))


def _covers(broad: AssignmentRule, narrow: AssignmentRule) -> bool:
    return all(x is None or (y is not None and set(y) <= set(x))
               for x, y in zip(broad.conditions.values(), narrow.conditions.values(), strict=True))


def check_escalation(pieces: Pieces, files: Files) -> list[Problem]:
    if "escalation" not in pieces:
        return []
    f = files["escalation"]
    problems = []
    for i, chain in enumerate(pieces["escalation"]):
        previous = 0.0
        for j, level in enumerate(chain.levels):
            if level.at_percent > MAX_LEVEL_PERCENT:
                problems.append(f.problem(("chains", i, "levels", j, "at"),
                                          f"{level.at_percent:.15g}% is past {MAX_LEVEL_PERCENT:g}%, the latest level "
                                          f"rulesctl accepts"))
            if level.at_percent <= previous:
                problems.append(f.problem(("chains", i, "levels", j, "at"),
                                          f"escalation levels out of order: {level.at_percent:g}% comes after "
                                          f"{previous:g}%; list levels in rising order"))
            if level.reason == "sla_warning" and level.at_percent >= 100:
                problems.append(f.problem(("chains", i, "levels", j, "reason"),
                                          f"a warning at {level.at_percent:g}% is at or past the deadline; "
                                          "use sla_breach"))
            if level.reason == "sla_breach" and level.at_percent < 100:
                problems.append(f.problem(("chains", i, "levels", j, "reason"),
                                          f"a breach at {level.at_percent:g}% is before the deadline; use sla_warning"))
            previous = max(previous, level.at_percent)
    return problems


def check_leave(pieces: Pieces, files: Files) -> list[Problem]:
    if "leave" not in pieces:
        return []
    f = files["leave"]
    leave = pieces["leave"]
    priorities = _known(pieces, "priorities")
    problems = []
    for field in ("reassign", "flag_for_review"):
        for j, value in enumerate(getattr(leave, field)):
            problems += _unknown(f, ("leave", field, j), value, priorities, "priority")
    counts = Counter(leave.reassign + leave.flag_for_review)
    for priority, count in counts.items():
        if count > 1:
            problems.append(f.problem(("leave",), f"priority {priority!r} is both reassigned and flagged; pick one"))
    if priorities is not None:
        for missing in [p for p in pieces["work_items"][1] if p not in counts]:
            problems.append(f.problem(("leave",), f"priority {missing!r} is neither reassigned nor flagged on leave"))
    return problems


def check_jobs(pieces: Pieces, files: Files) -> list[Problem]:
    if "jobs" not in pieces:
        return []
    f = files["jobs"]
    problems = []
    for i, job in enumerate(pieces["jobs"]):
        if job.function not in JOB_FUNCTIONS:
            problems.append(f.problem(("jobs", i, "function"), f"unknown job function {job.function!r}; "
                                                               f"known: {', '.join(sorted(JOB_FUNCTIONS))}"))
        if job.batch is not None and job.function not in BATCHED_JOB_FUNCTIONS:
            problems.append(f.problem(("jobs", i, "batch"), f"{job.function} does not run in batches; `batch` "
                                                             f"suits {', '.join(BATCHED_JOB_FUNCTIONS)}"))
        if job.function == "cleanup_escalation_events" and not job.retention:
            problems.append(f.problem(("jobs", i), "the escalation clean-up needs a `retention` such as '90 days'"))
        if job.retention:
            amount, unit = job.retention.split()
            if int(amount) * (24 if unit.startswith("day") else 1) > MAX_RETENTION_HOURS:
                problems.append(f.problem(("jobs", i, "retention"), f"{job.retention!r} is longer than "
                                                                     f"{MAX_RETENTION_HOURS // 24} days"))
        problems += [f.problem(("jobs", i, "schedule"), what) for what in schedule_problems(job.schedule)]
    return problems


def schedule_problems(schedule: str) -> list[str]:
    text = schedule.strip()
    if not _CRON_CHARACTERS.fullmatch(text):
        return [f"{schedule!r} is not a schedule pg_cron runs: use five cron fields "
                "(minute hour day month weekday) or 'N seconds' with N from 1 to 59"]
    if _SECONDS_SCHEDULE.fullmatch(text):
        return []
    fields = text.split()
    if len(fields) == 6:
        return [f"{schedule!r} has six fields; pg_cron accepts it and then never runs it. "
                "Use five fields (minute hour day month weekday) or 'N seconds'"]
    if len(fields) != 5 or not croniter.is_valid(text):
        return [f"{schedule!r} is not a schedule pg_cron runs: use five cron fields "
                "(minute hour day month weekday) or 'N seconds' with N from 1 to 59"]
    return []
