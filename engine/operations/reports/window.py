"""The time a report covers. Input: the `--since` text (`30d`, `12h`, `90m`, `2w`, a date
`2026-11-01` or a timestamp `2026-11-01T08:00+03:00`). Output: a `Since`, turned into a
window [since, until) once the database's clock (engine_now(), so a moved engine clock moves
the report too) gives `until`. A date without a zone is midnight UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.errors import RulesctlError

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)\s*([mhdw])")
EXPECTED = "a duration such as 30d, 12h, 90m or 2w, or a date such as 2026-11-01 (UTC) or 2026-11-01T08:00+03:00"


class ReportError(RulesctlError):
    """A report was asked for with an option it cannot use (the message names the option)."""


@dataclass(frozen=True)
class Since:
    """Either a span back from the report's end or a fixed start."""

    text: str
    back: timedelta | None = None
    start: datetime | None = None

    def window(self, until: datetime) -> Window:
        since = until - self.back if self.back is not None else self.start
        assert since is not None
        if since >= until:
            raise ReportError(f"--since {self.text}: starts at {since.isoformat()}, not before the report's end "
                              f"{until.isoformat()} (the database's clock)")
        return Window(since, until)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime


def parse_since(text: str) -> Since:
    value = text.strip()
    duration = _DURATION.fullmatch(value.lower())
    if duration:
        amount = int(duration.group(1))
        if amount == 0:
            raise ReportError(f"--since {text}: a duration must be longer than zero; expected {EXPECTED}")
        return Since(text, back=timedelta(**{_UNITS[duration.group(2)]: amount}))
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise ReportError(f"--since {text!r}: not understood; expected {EXPECTED}") from None
    return Since(text, start=start if start.tzinfo else start.replace(tzinfo=UTC))
