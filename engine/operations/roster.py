"""Reading a staff roster CSV for `rulesctl staff import`. Input: a file path. Output: the
records (line number and the seven fields, trimmed) and the problems SQL cannot see: the
header, a wrong field count, text PostgreSQL cannot hold (bytes that are not UTF-8, NUL) and a
name that is not one line (such a field reaches SQL empty, and SQL's problem with it is dropped).

Only what SQL cannot hold or check is checked here; units, skills, levels, roles, WIP
limits and duplicates are checked in SQL against the live policy (staff_import.py). A
record's line is the line it starts on (a quoted field may span lines).
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RulesctlError

REQUIRED = ("id", "unit", "full_name")
OPTIONAL = ("role", "skills", "wip_limit", "availability")
COLUMNS = REQUIRED + OPTIONAL
_UNDECODABLE = re.compile("[\udc80-\udcff]")          # bytes that were not UTF-8 (surrogateescape)
_CONTROL = re.compile("[\x00-\x1f\x7f]")


@dataclass(frozen=True, order=True)
class RowProblem:
    """One problem of one line: prints as `roster.csv:17: unit: unknown unit "unit-x"`."""
    line: int
    field: str
    message: str

    def render(self, path: str) -> str:
        return f"{path}:{self.line}: {self.field}: {self.message}"


class RosterError(RulesctlError):
    """The roster has problems; carries every one of them (nothing was written)."""

    def __init__(self, path: str, problems: list[RowProblem]) -> None:
        self.path, self.problems = path, sorted(problems, key=_problem_order)
        super().__init__(f"{path}: {len(problems)} problem(s); nothing was written")


def _problem_order(problem: RowProblem) -> tuple[int, int]:
    """By line, then by column; the order found within a field (a stable sort)."""
    return problem.line, COLUMNS.index(problem.field) if problem.field in COLUMNS else -1


@dataclass(frozen=True)
class Record:
    line: int
    values: tuple[str, ...]                  # in COLUMNS order; '' where empty or not a column


class Roster:
    """The file's header (which optional columns it has) and its records, read lazily."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[RowProblem] = []
        self.columns: tuple[str, ...] = ()
        self.records_read = 0

    def records(self, progress: Callable[[int], None] | None = None) -> Iterator[Record]:
        """The records, a field PostgreSQL cannot hold emptied; problems collect in `self.problems`."""
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        try:
            handle = self.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
        except OSError as exc:
            raise RulesctlError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        with handle:
            reader = csv.reader(handle)
            start = 1
            try:
                for fields in reader:
                    line, start = start, reader.line_num + 1
                    if not any(field.strip() for field in fields):
                        continue                              # blank line
                    if not self.columns and not self.problems:
                        self._header(line, fields)
                        if self.problems:
                            return
                        continue
                    record = self._record(line, fields)
                    self.records_read += 1
                    if progress and self.records_read % 5000 == 0:
                        progress(self.records_read)
                    if record is not None:
                        yield record
            except csv.Error as exc:
                self.problems.append(RowProblem(start, "csv", f"not readable as CSV: {exc}"))
        if not self.columns and not self.problems:
            self.problems.append(RowProblem(1, "header", "the file is empty; expected a header line: "
                                                         + ",".join(COLUMNS)))

    def _header(self, line: int, fields: list[str]) -> None:
        names = [field.strip().lower() for field in fields]
        for name in names:
            if name not in COLUMNS:
                self.problems.append(RowProblem(line, "header", f"unknown column {_shown(name)}; "
                                                                f"known: {', '.join(COLUMNS)}"))
            elif names.count(name) > 1:
                self.problems.append(RowProblem(line, "header", f"column {name} appears more than once"))
        for name in REQUIRED:
            if name not in names:
                self.problems.append(RowProblem(line, "header", f"missing column {name} "
                                                                f"(required: {', '.join(REQUIRED)})"))
        if not self.problems:
            self.columns = tuple(names)

    def _record(self, line: int, fields: list[str]) -> Record | None:
        if len(fields) != len(self.columns):
            self.problems.append(RowProblem(line, "line", f"expected {len(self.columns)} fields "
                                                          f"({','.join(self.columns)}), found {len(fields)}"))
            return None
        by_name = dict(zip(self.columns, (field.strip() for field in fields), strict=True))
        for name, value in by_name.items():
            problem = _text_problem(name, value)
            if problem:
                self.problems.append(RowProblem(line, name, problem))
                by_name[name] = ""               # the rest of the record is still checked in SQL
        return Record(line, tuple(by_name.get(name, "") for name in COLUMNS))


def _text_problem(name: str, value: str) -> str | None:
    """What PostgreSQL text cannot hold (NUL, bytes that are not UTF-8), or a name that is not
    one line of text."""
    if match := _UNDECODABLE.search(value):
        return f"not valid UTF-8 text (byte 0x{ord(match.group()) - 0xDC00:02x})"
    if "\x00" in value:
        return "contains a NUL character"
    if name == "full_name" and (match := _CONTROL.search(value)):
        return f"must be one line of text without control characters (found {match.group()!r})"
    return None


def _shown(value: str, width: int = 80) -> str:
    """A value quoted for a message, control characters escaped, long values cut."""
    cut = value[:width]
    return '"' + cut.encode("unicode_escape", "backslashreplace").decode("ascii").replace('"', '\\"') + '"' + (
        "…" if len(value) > width else "")
