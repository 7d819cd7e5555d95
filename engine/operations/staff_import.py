"""`rulesctl staff import`: a roster CSV into staff_profiles and staff_skills, in one transaction.
Input: a database URL, the CSV path, dry_run, what to do with leavers. Output: an
`ImportResult` (adds, changes field by field, leavers, people left over their WIP limit, and
what the engine did after: leave policy, queued work taken) or a `RosterError` carrying every
bad line and field, with nothing written.

Set-based (statements in staff_import_sql.py): the records are COPYed into a temp table,
checked in SQL against the live units, skills and proficiency levels, compared with the
staff as they are, and merged with one INSERT ... ON CONFLICT; staff_skills is replaced for
the people whose skills changed. The counter current_assignment_count is never written.
The unit staff counts and the skills array, which two row triggers keep one statement per
row, are kept set-based in the same transaction when rulesctl owns the tables (the triggers
are disabled inside it and enabled again before commit); otherwise the triggers do it, slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from engine.database.connect import connect
from engine.errors import DatabaseError, RulesctlError
from engine.operations import staff_import_sql as q
from engine.operations.roster import COLUMNS, Roster, RosterError, RowProblem

LEAVERS = ("keep", "offline")
Progress = Callable[[str, int, float], None]          # stage, rows done, seconds so far


@dataclass(frozen=True)
class Change:
    line: int
    staff_id: str
    field: str
    old: str | None
    new: str | None


@dataclass
class ImportResult:
    path: str
    rows: int
    dry_run: bool
    leavers_policy: str
    added: list[tuple[int, str, str, str]] = field(default_factory=list)     # line, id, full name, unit
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    leavers: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # id, name, unit, availability, load
    over_limit: list[tuple[int, str, int, int]] = field(default_factory=list)    # line, id, load, new limit
    leave_policy: dict[str, int] = field(default_factory=dict)
    assigned_from_queue: int = 0
    set_based: bool = True                 # False: the row triggers kept the derived data (not the owner)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return len({change.staff_id for change in self.changes})

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "rows": self.rows, "dry_run": self.dry_run, "leavers_policy": self.leavers_policy,
                "counts": {"added": len(self.added), "changed": self.changed, "unchanged": self.unchanged,
                           "leavers": len(self.leavers), "over_wip_limit": len(self.over_limit)},
                "added": [{"line": line, "id": id_, "full_name": name, "unit": unit}
                          for line, id_, name, unit in self.added],
                "changes": [{"line": c.line, "id": c.staff_id, "field": c.field, "old": c.old, "new": c.new}
                            for c in self.changes],
                "leavers": [{"id": id_, "full_name": name, "unit": unit, "availability": availability,
                             "active_load": load} for id_, name, unit, availability, load in self.leavers],
                "over_wip_limit": [{"line": line, "id": id_, "load": load, "wip_limit": limit}
                                   for line, id_, load, limit in self.over_limit],
                "leave_policy": self.leave_policy, "assigned_from_queue": self.assigned_from_queue,
                "seconds": round(self.seconds, 3)}


def import_staff(url: str, path: Path, *, dry_run: bool = False, leavers: str = "keep",
                 progress: Progress | None = None, shown_path: str | None = None) -> ImportResult:
    """Check the whole roster, then (unless dry_run) merge it in one transaction."""
    with connect(url) as conn:
        return import_staff_on(conn, path, dry_run=dry_run, leavers=leavers, progress=progress,
                               shown_path=shown_path)


def import_staff_on(conn: psycopg.Connection[Any], path: Path, *, dry_run: bool = False, leavers: str = "keep",
                    progress: Progress | None = None, shown_path: str | None = None) -> ImportResult:
    """import_staff on an open connection that is in no transaction (the benchmark's)."""
    if leavers not in LEAVERS:
        raise RulesctlError(f"--leavers: unknown choice {leavers!r}; known: {', '.join(LEAVERS)}")
    name = shown_path or str(path)
    clock = time.perf_counter()

    def report(stage: str, rows: int) -> None:
        if progress:
            progress(stage, rows, time.perf_counter() - clock)

    try:
        try:
            result = _run(conn, Roster(path), name, dry_run, leavers, report)
        except BaseException:
            conn.rollback()
            raise
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
    except psycopg.Error as exc:
        raise DatabaseError(f"staff import failed, nothing was written: {str(exc).strip()}") from None
    result.seconds = time.perf_counter() - clock
    report("done", result.rows)
    return result


def _run(conn: psycopg.Connection[Any], roster: Roster, name: str, dry_run: bool, leavers: str,
         report: Callable[[str, int], None]) -> ImportResult:
    conn.execute("SET LOCAL lock_timeout = '30s'")
    conn.execute(q.STAGE)
    rows = 0
    with conn.cursor().copy(q.COPY) as copy:
        for record in roster.records(lambda done: report("reading", done)):
            copy.write_row((record.line, *record.values))
            rows += 1
    report("read", roster.records_read)
    if roster.problems and not roster.columns:               # no usable header: nothing else to check
        raise RosterError(name, roster.problems)
    conn.execute(q.SKILLS)
    seen = {(problem.line, problem.field) for problem in roster.problems}
    problems = [RowProblem(*row) for row in conn.execute(
        q.PROBLEMS, {"roles": list(q.ROLES), "availability": list(q.AVAILABILITY)}) if (row[0], row[1]) not in seen]
    if roster.problems or problems:
        raise RosterError(name, roster.problems + problems)
    report("checked", rows)
    if not dry_run:
        _lock(conn)
    has = {column: column in roster.columns for column in ("role", "skills", "wip_limit")}
    conn.execute(q.PLAN, {"has_role": has["role"], "has_skills": has["skills"], "has_wip": has["wip_limit"]})
    result = _compare(conn, name, rows, dry_run, leavers)
    report("compared", rows)
    if not dry_run:
        _merge(conn, result, leavers)
        report("merged", rows)
    return result


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute(q.LOCK_UNITS)
    conn.execute(q.LOCK_TABLES)


def _compare(conn: psycopg.Connection[Any], name: str, rows: int, dry_run: bool, leavers: str) -> ImportResult:
    result = ImportResult(name, rows, dry_run, leavers)
    result.added = [tuple(row) for row in conn.execute(q.ADDS)]            # type: ignore[misc]
    result.changes = [Change(*row) for row in conn.execute(q.CHANGES)]
    result.leavers = [tuple(row) for row in conn.execute(q.LEAVERS)]       # type: ignore[misc]
    result.over_limit = [tuple(row) for row in conn.execute(q.OVER_LIMIT)]  # type: ignore[misc]
    result.unchanged = rows - len(result.added) - result.changed
    return result


def _merge(conn: psycopg.Connection[Any], result: ImportResult, leavers: str) -> None:
    owner = bool(conn.execute(q.OWNS_STAFF_TABLES).fetchone()[0])           # type: ignore[index]
    result.set_based = owner
    if owner:
        _row_triggers(conn, "DISABLE")
    conn.execute(q.MERGE)
    if leavers == "offline":
        conn.execute(q.LEAVERS_OFFLINE)
    conn.execute(q.UNIT_COUNTS)
    if owner:
        _row_triggers(conn, "ENABLE")
    reassigned, queued, flagged = conn.execute(q.LEAVE).fetchone()         # type: ignore[misc]
    if reassigned or queued or flagged:
        result.leave_policy = {"reassigned": reassigned, "queued": queued, "flagged_for_review": flagged}
    result.assigned_from_queue = int(conn.execute(q.QUEUE).fetchone()[0])  # type: ignore[index]


def _row_triggers(conn: psycopg.Connection[Any], action: str) -> None:
    for table, trigger in q.ROW_TRIGGERS:
        conn.execute(sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
            sql.Identifier(table), sql.SQL(action), sql.Identifier(trigger)))


__all__ = ["COLUMNS", "LEAVERS", "Change", "ImportResult", "RosterError", "import_staff"]


def as_text(result: ImportResult, limit: int = 20) -> str:
    """The report: counts first, then the first `limit` of each list."""
    kept = "set offline" if result.leavers_policy == "offline" else "kept as they are"
    lines = [f"{result.path}: {result.rows:,} rows: {len(result.added):,} to add, {result.changed:,} to change, "
             f"{result.unchanged:,} unchanged; {len(result.leavers):,} leaver(s) ({kept})"
             + (" -- dry run, nothing written" if result.dry_run else "")]
    lines += _section(f"Add ({len(result.added):,})", [f"line {line}: {id_} {name} ({unit})"
                                                        for line, id_, name, unit in result.added], limit)
    by_person: dict[tuple[int, str], list[Change]] = {}
    for change in result.changes:
        by_person.setdefault((change.line, change.staff_id), []).append(change)
    lines += _section(f"Change ({result.changed:,} {'person' if result.changed == 1 else 'people'})", [
        f"line {line}: {id_} " + "; ".join(f"{c.field}: {_value(c.field, c.old)} → {_value(c.field, c.new)}"
                                          for c in changes)
        for (line, id_), changes in by_person.items()], limit)
    lines += _section(f"Leavers ({len(result.leavers):,}: in the database, not in the file; {kept})", [
        f"{id_} {name} ({unit}, {availability})" + (f", holds {load} active item(s)" if load else "")
        for id_, name, unit, availability, load in result.leavers], limit)
    lines += _section(f"WIP limit below current load ({len(result.over_limit):,}: allowed; they take no new "
                      f"work until below it)", [f"line {line}: {id_} holds {load}, limit {wip}"
                                                for line, id_, load, wip in result.over_limit], limit)
    if not result.dry_run:
        rate = result.rows / result.seconds if result.seconds else 0.0
        lines.append(f"imported in {result.seconds:.2f} s ({rate:,.0f} rows/s), one transaction"
                     + ("" if result.set_based else "; the staff tables' row triggers kept the derived data "
                        "(the importing role does not own them: slower)"))
        if result.leave_policy:
            lines.append("leave policy for people put on leave: " + ", ".join(
                f"{count} {what.replace('_', ' ')}" for what, count in result.leave_policy.items()))
        if result.assigned_from_queue:
            lines.append(f"queued work taken by people with new room: {result.assigned_from_queue}")
    else:
        lines.append(f"checked in {result.seconds:.2f} s; run again without --dry-run to import")
    return "\n".join(lines)


def _section(title: str, items: list[str], limit: int) -> list[str]:
    if not items:
        return []
    shown = [title + ":"] + [f"  {item}" for item in items[:limit]]
    return shown + ([f"  … and {len(items) - limit:,} more"] if len(items) > limit else [])


def _value(column: str, value: str | None) -> str:
    if value is None:
        return "unit default" if column == "wip_limit" else "-"
    return value if value else "(none)"
