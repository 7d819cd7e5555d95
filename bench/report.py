"""The figures table (Markdown, so it pastes into the README), the JSON and the growth plot."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OPS = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Row:
    workload: str                      # the outcome it reads
    label: str
    figure: Callable[[dict], str]
    target: str
    checks: tuple[tuple[str, str, float], ...] = ()
    guide: str = ""                    # the original deployment guide's target, where it has one
    when: Callable[[dict], bool] = lambda values: True


def _n(value, digits=0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f} ms" if value < 100 else f"{value:,.0f} ms"


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:+.0f}%"


SWEEP_TARGETS = {10_000: 20, 100_000: 50, 1_000_000: 200}


def rows_for(outcomes: dict) -> list[Row]:
    rows = [
        Row("plan", "`rulesctl plan`, shipped policy, in sync",
            lambda v: (f"{_ms(v['cli_wall_ms'])} wall; in process {_ms(v['total_ms'])} = validate+render "
                       f"{_ms(v['validate_render_ms'])} / introspect {_ms(v['introspect_ms'])} / desired state "
                       f"{_ms(v['desired_ms'])} / diff {_ms(v['diff_ms'])}"),
            "≤ 1 s, split into introspect / render / diff", (("cli_wall_ms", "<=", 1000),)),
        Row("pick", "eligible-staff pick",
            lambda v: f"p99 {_ms(v['p99_ms'])} (p50 {_ms(v['p50_ms'])}, {_n(v['rate'])}/s)",
            "p99 ≤ 2 ms", (("p99_ms", "<=", 2),), guide="< 500 ms (auto-assign, 500 staff)"),
        Row("assign", "`auto_assign` alone",
            lambda v: f"{_n(v['rate'])}/s, p99 {_ms(v['p99_ms'])} (p50 {_ms(v['p50_ms'])})",
            "≥ 5,000/s, p99 ≤ 10 ms", (("rate", ">=", 5000), ("p99_ms", "<=", 10))),
        Row("floor", "floor: the barest assignment the tables allow (`bench.floor_assign`)",
            lambda v: (f"{_n(v['assignments_per_s'])} assignments/s ({_n(v['rate'])} calls/s), p99 {_ms(v['p99_ms'])} "
                       f"(p50 {_ms(v['p50_ms'])})"),
            "(reference for the rows around it)"),
        Row("mix", "assign + complete mix",
            lambda v: (f"{_n(v['assignments_per_s'])} assignments/s, {_n(v['completions_per_s'])} completions/s, "
                       f"p99 {_ms(v['p99_ms'])} "
                       f"(assign {_ms(v['assign_p99_ms'])}, complete {_ms(v['complete_p99_ms'])})"),
            "≥ 2,500 assignments/s with as many completions, p99 ≤ 15 ms",
            (("assignments_per_s", ">=", 2500), ("completions_per_s", ">=", 2500), ("p99_ms", "<=", 15))),
        Row("hotspot", "hot spot: only 3 eligible staff",
            lambda v: (f"{_n(v['calls_per_s'])} calls/s ({_n(v['assignments_per_s'])} assignments/s), "
                       f"p99 {_ms(v['p99_ms'])}; nobody over WIP (invariants)"),
            "≥ 1,000/s, p99 ≤ 50 ms, nobody over WIP", (("calls_per_s", ">=", 1000), ("p99_ms", "<=", 50))),
        Row("saturated", "saturated: everyone at WIP, queue ≥ 5,000, completions drain",
            lambda v: (f"{_n(v['dequeues_per_s'])} dequeues/s, p99 {_ms(v['complete_p99_ms'])} per completion+dequeue "
                       f"(arrivals p99 {_ms(v['assign_p99_ms'])})"),
            "≥ 2,000 dequeues/s, p99 ≤ 15 ms", (("dequeues_per_s", ">=", 2000), ("complete_p99_ms", "<=", 15))),
        Row("queue_read", "queue read, top 50 of one unit's queue (`queue_head(unit, 50)`)",
            lambda v: f"p99 {_ms(v['p99_ms'])} (p50 {_ms(v['p50_ms'])}, {_n(v['rate'])}/s)",
            "p99 ≤ 5 ms", (("p99_ms", "<=", 5),), guide="< 1 s"),
        Row("queue_read", "queue read, top 50 of the whole queue (`queue_head(NULL, 50)`)",
            lambda v: f"p99 {_ms(v['whole_p99_ms'])} (p50 {_ms(v['whole_p50_ms'])}, {_n(v['whole_rate'])}/s)",
            "p99 ≤ 5 ms", (("whole_p99_ms", "<=", 5),), guide="< 1 s"),
    ]
    sweep = outcomes.get("sweep")
    sweep_active = sorted(int(k.rsplit("_", 1)[1]) for k in (sweep.values if sweep else {})
                          if k.startswith("median_ms_"))
    for active in sweep_active:
        limit = SWEEP_TARGETS.get(active)
        rows.append(Row(
            "sweep", f"`sla_check_and_escalate()` steady state, {active:,} active",
            lambda v, a=active: (f"{_ms(v[f'median_ms_{a}'])} median, {_n(v[f'rows_due_{a}'])} rows due per call; "
                                 f"calls 30 s apart: {_ms(v[f'natural_median_ms_{a}'])} median "
                                 f"({_n(v[f'natural_rows_due_{a}'])} rows due)"),
            f"≤ {limit} ms" if limit else "(curve only)",
            ((f"median_ms_{active}", "<=", limit),) if limit else (),
            guide="< 5 s" if active == 10_000 else ""))
    rows.append(Row(
        "backlog", "SLA sweep of a backlog (20,000 assignments due at full scale) while the mix runs",
        lambda v: (f"{_n(v['escalations_per_s'])} escalations/s ({_n(v['escalations'])} escalations of "
                   f"{_n(v.get('rows_due'))} due assignments in {v['sweep_s']:.2f} s); "
                   f"mix p99 {_ms(v['mix_p99_baseline_ms'])} → {_ms(v['mix_p99_during_ms'])} during it "
                   f"({_pct(v['mix_p99_raise'])})"
                   + ("; the sweep outlasted the mix run" if v.get("sweep_outlasted_mix") else "")
                   + (f"; alone (nothing beside it): {_n(v['alone_escalations_per_s'])} escalations/s"
                      if v.get("alone_escalations_per_s") else "")),
        "≥ 20,000 escalations/s; mix p99 raised ≤ 20%",
        (("escalations_per_s", ">=", 20000), ("mix_p99_raise", "<=", 0.20))))
    growth = outcomes.get("growth")
    growth_staff = sorted(int(k.rsplit("_", 1)[1]) for k in (growth.values if growth else {})
                          if k.startswith("p99_ms_"))
    for staff in growth_staff:
        clients = growth.conditions.get("clients")
        rows.append(Row(
            "growth", f"growth: `auto_assign` with {staff:,} staff",
            lambda v, s=staff, c=clients: (f"{c} clients: p50 {_ms(v[f'p50_ms_{s}'])}, p99 {_ms(v[f'p99_ms_{s}'])}, "
                                           f"{_n(v[f'rate_{s}'])}/s; 1 client: p50 {_ms(v[f'one_client_p50_ms_{s}'])}, "
                                           f"p99 {_ms(v[f'one_client_p99_ms_{s}'])}"),
            "(curve)" if staff != 500 else "guide: < 500 ms",
            (("one_client_p99_ms_500", "<=", 500),) if staff == 500 else (),
            guide="< 500 ms" if staff == 500 else ""))
    return rows


def evaluate(row: Row, values: dict) -> tuple[bool | None, list[str]]:
    if not row.checks:
        return None, []
    misses = []
    for key, op, limit in row.checks:
        value = values.get(key)
        if value is None or not OPS[op](value, limit):
            misses.append(f"{key} {'-' if value is None else round(value, 3)} (wanted {op} {limit:g})")
    return not misses, misses


def conditions_text(workload: str, outcome) -> str:
    text = _conditions_text(workload, outcome)
    other = outcome.conditions.get("other_cpu") or {}
    if other.get("other_cpu_share") is not None and other.get("server_counted_as_ours"):
        text += f"; other processes used {other['other_cpu_share'] * 100:.0f}% of the CPUs"
    if outcome.values.get("select1_per_s"):
        text += f"; machine: SELECT 1 at {outcome.values['select1_per_s']:,.0f}/s"
    return text


def _conditions_text(workload: str, outcome) -> str:
    c = outcome.conditions
    if workload == "plan":
        return f"{c.get('runs')} runs in process, {c.get('cli_runs')} CLI runs, {c.get('objects')} objects, median"
    if workload == "sweep":
        staff = c.get("staff", {})
        return (f"1 client; engine clock moved to the next {c.get('due_per_call')} due rows per call; "
                f"{c.get('calls')} calls per size, median; staff "
                + ", ".join(f"{s:,}" for s in staff.values()))
    if workload == "growth":
        return (f"{c.get('clients')} clients (and 1), {c.get('duration_s'):g} s per size; WIP raised so items are "
                "assigned, not queued")
    parts = []
    if "staff" in c:
        parts.append(f"{c['staff']:,} staff")
    if "active_before" in c:
        parts.append(f"{c['active_before']:,}→{c['active_after']:,} active")
    if "queued_before" in c:
        parts.append(f"{c['queued_before']:,}→{c['queued_after']:,} queued")
    if "clients" in c:
        parts.append(f"{c['clients']} clients, {c['duration_s']:g} s")
    if workload == "backlog":
        parts.append(f"monitor clock +{c.get('monitor_clock_ahead')}")
    if workload == "assign":
        parts.append("WIP raised: assign path only")
    return "; ".join(parts)


def table(outcomes: dict, evaluate_targets: bool) -> tuple[str, list[dict]]:
    lines = ["| workload | figure | target | met? | conditions |", "|---|---|---|---|---|"]
    records = []
    for row in rows_for(outcomes):
        outcome = outcomes.get(row.workload)
        if outcome is None or outcome.skipped or not outcome.values:
            continue
        try:
            figure = row.figure(outcome.values)
        except (KeyError, TypeError):
            continue
        met, misses = evaluate(row, outcome.values) if evaluate_targets else (None, [])
        mark = "n/a (smoke)" if not evaluate_targets else ("—" if met is None else ("yes" if met else "**NO**"))
        lines.append(f"| {row.label} | {figure} | {row.target} | {mark} | {conditions_text(row.workload, outcome)} |")
        records.append({"workload": row.workload, "label": row.label, "figure": figure, "target": row.target,
                        "guide_target": row.guide or None, "met": met, "misses": misses})
    return "\n".join(lines), records


def footer(server: dict, git: dict) -> str:
    parts = [f"PostgreSQL {server.get('server_version')}", f"shared_buffers {server.get('shared_buffers')}",
             f"synchronous_commit {server.get('synchronous_commit')}", f"jit {server.get('jit')}",
             f"max_connections {server.get('max_connections')}", f"fsync {server.get('fsync')}",
             f"{server.get('cpu_count')} CPUs"]
    if git.get("commit"):
        parts.append(f"commit {git['commit'][:10]}{' + local changes' if git.get('dirty') else ''}")
    return "Conditions: " + " · ".join(parts)


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def plot(path: Path, outcomes: dict) -> str | None:
    """A small PNG of the growth curves; None (and no file) without matplotlib or data."""
    growth = outcomes.get("growth")
    sweep = outcomes.get("sweep")
    auto = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in (growth.values if growth else {}).items()
                  if k.startswith("p99_ms_") and v is not None)
    auto50 = {int(k.rsplit("_", 1)[1]): v for k, v in (growth.values if growth else {}).items()
              if k.startswith("p50_ms_") and v is not None}
    one = {int(k.rsplit("_", 1)[1]): v for k, v in (growth.values if growth else {}).items()
           if k.startswith("one_client_p50_ms_") and v is not None}
    sweeps = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in (sweep.values if sweep else {}).items()
                    if k.startswith("median_ms_"))
    if not auto and not sweeps:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    clients = growth.conditions.get("clients", 16) if growth else 16
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    if auto:
        xs = [x for x, _ in auto]
        axes[0].plot(xs, [y for _, y in auto], "o-", label=f"p99, {clients} clients")
        axes[0].plot(xs, [auto50.get(x) for x in xs], "s--", label=f"p50, {clients} clients")
        if one:
            axes[0].plot(xs, [one.get(x) for x in xs], "^:", label="p50, 1 client")
        axes[0].set_xscale("log")
        axes[0].set_yscale("log")
        axes[0].set_xlabel("staff")
        axes[0].set_ylabel("ms")
        axes[0].set_title("auto_assign latency")
        axes[0].legend(fontsize=7)
    if sweeps:
        axes[1].plot([x for x, _ in sweeps], [y for _, y in sweeps], "o-", color="tab:red")
        for x, limit in SWEEP_TARGETS.items():
            axes[1].plot([x], [limit], "k_", markersize=14)
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("active assignments")
        axes[1].set_ylabel("ms per sweep (median)")
        axes[1].set_title("SLA sweep, steady state (— target)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
