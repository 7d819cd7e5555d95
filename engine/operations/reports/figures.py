"""How report figures are rounded: percentages to one decimal, halves up (16.25 -> 16.3, as a
reader rounding by hand expects; Python's round() would give 16.2)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def one_decimal(value: float) -> float:
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def share(part: int, whole: int) -> float | None:
    """part of whole in percent, one decimal; None when whole is 0."""
    return float((Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)) \
        if whole else None
