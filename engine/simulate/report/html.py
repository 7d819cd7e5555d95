"""A simulation as one self-contained HTML page (no scripts, no network): the headline table and
inline SVG charts (engine/charts.py) — queue depth and utilisation over virtual time per unit, the
wait and resolution distributions, breaches by type × priority — each policy in its own column,
side by side."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from engine.charts import PALETTE, bar_chart, line_chart
from engine.simulate.report.figures import rows

if TYPE_CHECKING:
    from engine.simulate.run import Simulation

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
    colour = {u: PALETTE[i % len(PALETTE)] for i, u in enumerate(units)}
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
            parts.append(_figure(name, line_chart(lines, colour, top, key == "utilisation")))
        parts.append("</div>")
    for title, key in (("Wait before assignment", "wait_histogram"), ("Resolution time", "resolution_histogram")):
        parts.append(f"<h2>{title} (items per band, minutes)</h2><div class=\"pair\">")
        top = max([1] + [max(simulation.series[name][key]) for name in names])
        for name in names:
            edges = simulation.series[name]["edges"]
            labels = [f"{a}–{b}" for a, b in zip(edges, edges[1:], strict=False)] + [f"{edges[-1]}+"]
            parts.append(_figure(name, bar_chart(labels, simulation.series[name][key], top)))
        parts.append("</div>")
    parts.append("<h2>Breaches by type × priority</h2><div class=\"pair\">")
    keys = sorted({k for name in names for k in policies[name]["by_type_priority"]})
    top = max([1] + [policies[name]["by_type_priority"].get(k, {}).get("breached", 0) for name in names for k in keys])
    for name in names:
        values = [policies[name]["by_type_priority"].get(k, {}).get("breached", 0) for k in keys]
        parts.append(_figure(name, bar_chart(keys, values, top)))
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
