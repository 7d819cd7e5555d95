"""A simulation as text, JSON, Markdown (a pull-request comment) or HTML (one self-contained page).
Input: a `Simulation`. Output: a string. JSON is the contract; the others are views of it (the
HTML page adds the hourly series and the distributions behind the figures)."""

from __future__ import annotations

import json
from collections.abc import Callable

from engine.simulate.report.html import as_html
from engine.simulate.report.markdown import as_markdown
from engine.simulate.report.text import as_text
from engine.simulate.run import Simulation

FORMATS = ("text", "json", "markdown", "html")


def as_json(simulation: Simulation) -> str:
    """Sorted keys: the same inputs and seed give the same bytes (timings aside)."""
    return json.dumps(simulation.summary, indent=2, sort_keys=True) + "\n"


def render(simulation: Simulation, fmt: str) -> str:
    views: dict[str, Callable[[Simulation], str]] = {"text": as_text, "json": as_json, "markdown": as_markdown,
                                                     "html": as_html}
    return views[fmt](simulation)
