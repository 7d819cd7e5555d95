"""Public holidays for a calendar, expanded by the `holidays` library (dates, not rules,
reach the database, so the rendered seed rows show exactly which days are off)."""

from __future__ import annotations

import datetime as dt

import holidays


def expand_public_holidays(spec: dict) -> list[tuple[dt.date, str]]:
    """{'country': 'SA', 'years': [2026]} -> [(date, name), ...]; LookupError for an unknown country."""
    try:
        calendar = holidays.country_holidays(spec["country"], subdiv=spec.get("subdivision"),
                                             years=spec["years"], language="en_US")
    except NotImplementedError:
        raise LookupError(f"no public-holiday calendar is known for country {spec['country']!r}") from None
    return sorted(calendar.items())
