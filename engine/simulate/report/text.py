"""A simulation for the terminal: the headline figures side by side, then each unit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.simulate.report.figures import rows, show

if TYPE_CHECKING:
    from engine.simulate.run import Simulation


def headline_lines(simulation: Simulation) -> list[str]:
    """What was replayed and the headline figures side by side (also under `plan --simulate`)."""
    s = simulation.summary
    policies = s["policies"]
    w = s["workload"]
    lines = [f"Simulated {w['items']:,} arrivals over {w['days']} days ({w['source']} workload, "
             f"{w.get('staff', '?')} staff, seed {s['seed']})", ""]
    header = ["", *policies] + (["change", ""] if len(policies) == 2 else [])
    table = [header] + [[label, *values] + ([change, verdict] if len(values) == 2 else [])
                        for label, values, change, verdict in rows(policies)]
    return lines + _columns(table)


def as_text(simulation: Simulation) -> str:
    s = simulation.summary
    policies = s["policies"]
    lines = headline_lines(simulation)
    for name, m in policies.items():
        lines += ["", f"{name}: by unit", ""]
        unit_rows = [["unit", "items", "breached", "wait p50", "wait p95", "utilisation"]]
        for unit, u in m["by_unit"].items():
            waits = u["wait_minutes"]
            unit_rows.append([unit, show(u["items"], ""), show(u["breached"], ""), show(waits["p50"], "min"),
                              show(waits["p95"], "min"), show(u["utilisation"], "%")])
        lines += _columns(unit_rows)
    for name, found in simulation.violations.items():
        broken = {k: v for k, v in found.items() if v}
        if broken:
            listed = ", ".join(f"{k} ({v})" for k, v in broken.items())
            lines += ["", f"{name}: invariants broken at the end: {listed}"]
    t = s["timings"]
    rates = ", ".join(f"{n} {t[n]['replay_s']:.1f} s at {t[n]['arrivals_per_s']} arrivals/s" for n in policies)
    lines += ["", f"took {t['total_s']:.1f} s (install {t['install_s']:.1f} s; replay {rates})"]
    return "\n".join(lines) + "\n"


def _columns(table: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    return ["  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                      for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip() for row in table]
