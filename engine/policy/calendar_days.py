"""Public holidays for a calendar, expanded by the `holidays` library (dates, not rules,
reach the database, so the rendered seed rows show exactly which days are off). An
expansion is kept in the user cache: importing `holidays` loads every country (~0.1 s of
each `rulesctl plan`), and the dates depend only on the request and the library's version."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from importlib.metadata import version

from engine.cache import cache_dir


def expand_public_holidays(spec: dict) -> list[tuple[dt.date, str]]:
    """{'country': 'SA', 'years': [2026]} -> [(date, name), ...]; LookupError for an unknown country."""
    request = [spec["country"], spec.get("subdivision"), sorted(spec["years"]), version("holidays")]
    directory = cache_dir("holidays")
    path = directory / f"{hashlib.sha256(json.dumps(request).encode()).hexdigest()[:24]}.json" if directory else None
    if path is not None:
        try:
            return [(dt.date.fromisoformat(day), name) for day, name in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            pass                                  # not cached yet (or unreadable): expand it
    days = _expand(spec)
    if path is not None:
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps([(day.isoformat(), name) for day, name in days]))
            temporary.replace(path)
        except OSError:
            pass
    return days


def _expand(spec: dict) -> list[tuple[dt.date, str]]:
    import holidays

    try:
        calendar = holidays.country_holidays(spec["country"], subdiv=spec.get("subdivision"),
                                             years=spec["years"], language="en_US")
    except NotImplementedError:
        raise LookupError(f"no public-holiday calendar is known for country {spec['country']!r}") from None
    return sorted(calendar.items())
