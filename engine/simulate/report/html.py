"""A simulation as one self-contained HTML page (no scripts, no network): the headline table and
inline SVG charts — queue depth and utilisation over virtual time per unit, the wait and resolution
distributions, breaches by type × priority — each policy in its own column, side by side."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING, Any

from engine.simulate.report.figures import rows

if TYPE_CHECKING:
    from engine.simulate.run import Simulation

WIDTH, HEIGHT, PAD = 460, 220, 40
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 24px; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.worse { color: #b00020; font-weight: bold; } .better { color: #137333; font-weight: bold; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
.legend span { display: inline-block; margin-right: 10px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
"""


def as_html(simulation: Simulation) -> str:
    s = simulation.summary
    w = s["workload"]
    policies = s["policies"]
    names = list(policies)
    units = sorted({u for name in names for u in simulation.series[name]["units"]})
    colour = {u: COLOURS[i % len(COLOURS)] for i, u in enumerate(units)}
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rulesctl simulation</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>Policy simulation</h1>",
             f"<p>{w['items']:,} arrivals over {w['days']} days ({escape(w['source'])} workload, "
             f"{w.get('staff', '?')} staff, seed {s['seed']}), replayed on the real engine in virtual time.</p>",
             _headline(policies)]
    legend = "".join(f"<span><i style=\"background:{colour[u]}\"></i>{escape(u)}</span>" for u in units)
    for title, key, y_max in (("Queue depth per unit", "queue_depth", None),
                              ("Utilisation per unit", "utilisation", 1.0)):
        parts.append(f"<h2>{title}</h2><div class=\"legend\">{legend}</div><div class=\"pair\">")
        top = y_max or max([1] + [max(v for v in series[key] if v is not None) for name in names
                                  for series in simulation.series[name]["units"].values()
                                  if any(v is not None for v in series[key])])
        for name in names:
            lines = {u: (series["at"], series[key]) for u, series in simulation.series[name]["units"].items()}
            parts.append(_figure(name, _line_chart(lines, colour, top, key == "utilisation")))
        parts.append("</div>")
    for title, key in (("Wait before assignment", "wait_histogram"), ("Resolution time", "resolution_histogram")):
        parts.append(f"<h2>{title} (items per band, minutes)</h2><div class=\"pair\">")
        top = max([1] + [max(simulation.series[name][key]) for name in names])
        for name in names:
            edges = simulation.series[name]["edges"]
            labels = [f"{a}–{b}" for a, b in zip(edges, edges[1:], strict=False)] + [f"{edges[-1]}+"]
            parts.append(_figure(name, _bar_chart(labels, simulation.series[name][key], top)))
        parts.append("</div>")
    parts.append("<h2>Breaches by type × priority</h2><div class=\"pair\">")
    keys = sorted({k for name in names for k in policies[name]["by_type_priority"]})
    top = max([1] + [policies[name]["by_type_priority"].get(k, {}).get("breached", 0) for name in names for k in keys])
    for name in names:
        values = [policies[name]["by_type_priority"].get(k, {}).get("breached", 0) for k in keys]
        parts.append(_figure(name, _bar_chart(keys, values, top)))
    parts.append("</div></body></html>")
    return "\n".join(parts) + "\n"


def _headline(policies: dict[str, Any]) -> str:
    names = list(policies)
    head = "".join(f"<th>{escape(n)}</th>" for n in names) + ("<th>change</th>" if len(names) == 2 else "")
    body = []
    for label, values, change, verdict in rows(policies):
        cells = "".join(f"<td>{escape(v)}</td>" for v in values)
        if len(names) == 2:
            cells += f"<td class=\"{verdict}\">{escape(change)}</td>"
        body.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
    return f"<table><tr><th>figure</th>{head}</tr>{''.join(body)}</table>"


def _figure(name: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(name)}</figcaption>{svg}</figure>"


def _line_chart(lines: dict[str, tuple[list[int], list[Any]]], colour: dict[str, str], top: float,
                share: bool) -> str:
    times = [t for xs, _ in lines.values() for t in xs]
    first, last = (min(times), max(times)) if times else (0, 1)
    span = max(last - first, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(t: int) -> float:
        return PAD + (t - first) / span * inner_w

    def y(v: float) -> float:
        return HEIGHT - PAD - min(v, top) / top * inner_h

    parts = [_frame(top, share)]
    for unit, (xs, ys) in sorted(lines.items()):
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(xs, ys, strict=True) if v is not None)
        if points:
            parts.append(f"<polyline fill=\"none\" stroke=\"{colour[unit]}\" stroke-width=\"1.2\" "
                         f"points=\"{points}\"><title>{escape(unit)}</title></polyline>")
    for t in (first, last):
        day = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%d %b %H:%M")
        anchor = "start" if t == first else "end"
        parts.append(f"<text x=\"{x(t):.1f}\" y=\"{HEIGHT - PAD + 16}\" text-anchor=\"{anchor}\">{day} UTC</text>")
    return _svg(parts)


def _bar_chart(labels: list[str], values: list[int], top: float) -> str:
    below = int(max([4] + [len(label) for label in labels]) * 4.6) + 10     # room for the slanted labels
    height = HEIGHT + below - PAD
    inner_w, inner_h = WIDTH - PAD - max(PAD, int(below * 0.7)), height - PAD - below   # slanted labels reach right
    step = inner_w / max(len(values), 1)
    parts = [_frame(top, False, bottom=below, height=height)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = value / top * inner_h
        left = PAD + i * step + 1
        base = height - below
        parts.append(f"<rect class=\"bar\" x=\"{left:.1f}\" y=\"{base - h:.1f}\" width=\"{max(step - 2, 1):.1f}\" "
                     f"height=\"{h:.1f}\" fill=\"#4c78a8\"><title>{escape(label)}: {value:,}</title></rect>")
        parts.append(f"<text transform=\"translate({left + step / 2:.1f},{base + 6}) rotate(45)\">"
                     f"{escape(label)}</text>")
    return _svg(parts, height)


def _frame(top: float, share: bool, bottom: int = PAD, height: int = HEIGHT) -> str:
    label = f"{top * 100:.0f}%" if share else f"{top:,.0f}"
    axis = height - bottom
    return (f"<line x1=\"{PAD}\" y1=\"{axis}\" x2=\"{WIDTH - PAD}\" y2=\"{axis}\" stroke=\"#999\"/>"
            f"<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{axis}\" stroke=\"#999\"/>"
            f"<text x=\"{PAD - 4}\" y=\"{PAD + 4}\" text-anchor=\"end\">{label}</text>"
            f"<text x=\"{PAD - 4}\" y=\"{axis}\" text-anchor=\"end\">0</text>")


def _svg(parts: list[str], height: int = HEIGHT) -> str:
    return (f"<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" "
            f"viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">" + "".join(parts) + "</svg>")
