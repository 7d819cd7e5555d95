"""A simulation as a short Markdown table for a pull-request comment (and under `plan --simulate`'s
Impact section): the headline figures, baseline → proposed, the changes that matter in bold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.simulate.report.figures import rows

if TYPE_CHECKING:
    from engine.simulate.run import Simulation

MARK = {"worse": "🔺 worse", "better": "✅ better", "": ""}


def as_markdown(simulation: Simulation, heading: str = "### Simulation") -> str:
    s = simulation.summary
    w = s["workload"]
    policies = s["policies"]
    lines = [heading, "",
             f"{w['items']:,} arrivals over {w['days']} days ({w['source']} workload, {w.get('staff', '?')} staff, "
             f"seed {s['seed']}), replayed on the real engine in virtual time.", ""]
    if len(policies) == 2:
        lines += ["| figure | baseline | proposed | change | |", "|---|---:|---:|---:|---|"]
        for label, (before, after), change, verdict in rows(policies):
            if verdict:
                change = f"**{change}**"
            lines.append(f"| {label} | {before} | {after} | {change} | {MARK[verdict]} |")
    else:
        (name,) = policies
        lines += [f"| figure | {name} |", "|---|---:|"]
        lines += [f"| {label} | {values[0]} |" for label, values, _, _ in rows(policies)]
    broken = sorted({k for found in simulation.violations.values() for k, v in found.items() if v})
    if broken:
        lines += ["", "**Invariants broken at the end:** " + ", ".join(broken)]
    return "\n".join(lines) + "\n"
