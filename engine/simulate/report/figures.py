"""The headline figures every view shows, in one order, with how to read a change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# (label, path into M, worse when it goes up?, unit)
HEADLINE: tuple[tuple[str, tuple[str, ...], bool | None, str], ...] = (
    ("items", ("items",), None, ""),
    ("assigned", ("assigned",), False, ""),
    ("completed", ("completed",), False, ""),
    ("queued at end", ("queued_at_end",), True, ""),
    ("breached", ("breached",), True, ""),
    ("breach rate", ("breach_rate",), True, "%"),
    ("escalations", ("escalations",), True, ""),
    ("wait p50", ("wait_minutes", "p50"), True, "min"),
    ("wait p95", ("wait_minutes", "p95"), True, "min"),
    ("wait max", ("wait_minutes", "max"), True, "min"),
    ("resolution p50", ("resolution_minutes", "p50"), True, "min"),
    ("resolution p95", ("resolution_minutes", "p95"), True, "min"),
    ("rejected", ("rejected",), True, ""),
    ("staff over WIP", ("over_wip",), True, ""),
)
# A change matters when it moves a figure by at least this share (and by more than a rounding).
MATTERS = 0.05


def pick(m: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        m = m.get(key) if isinstance(m, dict) else None  # type: ignore[assignment]
    return m


def show(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "min":
        return f"{value:,.1f} min"
    return f"{value:,}"


def show_change(before: Any, after: Any, unit: str) -> str:
    if before is None or after is None:
        return ""
    change = after - before
    if unit == "%":
        return f"{change * 100:+.1f} pt"
    if unit == "min":
        return f"{change:+,.1f} min"
    return f"{change:+,}"


def verdict(before: Any, after: Any, worse_up: bool | None) -> str:
    """'worse', 'better' or '' for a change that does not matter."""
    if worse_up is None or before is None or after is None or before == after:
        return ""
    base = max(abs(before), 1e-9)
    if abs(after - before) / base < MATTERS and before != 0:
        return ""
    return "worse" if (after > before) == worse_up else "better"


def rows(policies: dict[str, dict[str, Any]]) -> Iterator[tuple[str, list[Any], str, str]]:
    """(label, shown values per policy, change text, verdict) for each headline figure."""
    labels = list(policies)
    for label, path, worse_up, unit in HEADLINE:
        values = [pick(policies[name], path) for name in labels]
        if len(values) == 2:
            before, after = values
            shown = [show(v, unit) for v in values]
            yield label, shown, show_change(before, after, unit), verdict(before, after, worse_up)
        else:
            yield label, [show(v, unit) for v in values], "", ""
