"""Plan reports. Input: a `Plan`. Output: text for a terminal, JSON for machines, or Markdown
for a pull-request comment. Each starts with what the plan does to the work (the Impact:
capacity, people over a new limit, where recent arrivals would go), then the summary line
("Plan: 3 to add, 2 to change, 0 to destroy"), hazards, and each step marked `+ ~ - ->` with its
reason and detail (a replaced function's diff, a seed row's `column: old -> new`). Text is
coloured on a terminal only: never when piped or with NO_COLOR set."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import IO, TYPE_CHECKING

from engine.migrate.impact import Impact, Unstaffed
from engine.migrate.model import Action, Step
from engine.migrate.plan import Plan

if TYPE_CHECKING:
    from engine.simulate.run import Simulation

ADD = {Action.CREATE, Action.INSERT, Action.ADD_VALUE, Action.SCHEDULE}
DESTROY = {Action.DROP, Action.DELETE, Action.REMOVE_VALUE, Action.REVOKE, Action.UNSCHEDULE}
RENAME = "rename"                                # an action other work adds; counted by its text
MARKERS = {"add": "+", "change": "~", "destroy": "-", "rename": "->"}
COLOURS = {"add": "32", "change": "33", "destroy": "31", "rename": "36", "hazard": "1;31", "heading": "1"}
DIFF_LINES = 60                                  # of a function's diff in text, before "… N more"
ROUTE_ROWS = 20


def group(step: Step) -> str:
    """add, change, destroy or rename: what the summary line counts and the marker shows."""
    if str(step.action) == RENAME:
        return "rename"
    if step.action in ADD:
        return "add"
    if step.action in DESTROY:
        return "destroy"
    return "change"


def marker(step: Step) -> str:
    return MARKERS[group(step)]


def summary(plan: Plan) -> str:
    if not plan.steps:
        return "No changes: the database matches the policy."
    counts = Counter(step.action for step in plan.steps)
    drift = sum(step.drift for step in plan.steps)
    parts = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    return f"{len(plan.steps)} step(s): {parts}" + (f"; {drift} of them undo drift" if drift else "")


def plan_line(plan: Plan) -> str:
    """Terraform's line: `Plan: 3 to add, 2 to change, 0 to destroy` (`, 1 rename` when any)."""
    counts = Counter(group(step) for step in plan.steps)
    line = f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy"
    return line + (f", {counts['rename']} rename" if counts["rename"] else "")


def use_colour(stream: IO[str] | None = None) -> bool:
    """Colour on a terminal; none when piped or when NO_COLOR is set (https://no-color.org)."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR", "") != "":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Paint:
    def __init__(self, on: bool):
        self.on = on

    def __call__(self, text: str, what: str) -> str:
        return f"\x1b[{COLOURS[what]}m{text}\x1b[0m" if self.on and what in COLOURS else text

    def diff(self, line: str) -> str:
        if line.startswith(("+++", "---")):
            return self(line, "heading")
        if line.startswith("+"):
            return self(line, "add")
        if line.startswith("-"):
            return self(line, "destroy")
        if line.startswith("@@"):
            return self(line, "rename")
        return line


# -- impact -----------------------------------------------------------------------------------

def reschedule_reason(plan: Plan) -> str | None:
    """The SLA step's reason (it says how many deadlines move), when the plan has one."""
    return next((step.reason for step in plan.steps if step.action is Action.RUN and step.kind == "reschedule"),
                None)


def impact_lines(plan: Plan) -> list[str]:
    """The Impact section in text, indented; empty when the plan touches no work."""
    impact, deadlines = plan.impact, reschedule_reason(plan)
    if impact.empty and not deadlines:
        return []
    lines = ["Impact:"]
    if impact.capacity:
        lines.append("  Capacity (sum of WIP limits of available staff):")
        lines += [f"    {c.unit_id}: WIP limit {c.limit_before} -> {c.limit_after}; capacity {c.capacity_before} -> "
                  f"{c.capacity_after} ({c.staff} available staff)" for c in impact.capacity]
    if impact.over_limit:
        lines.append("  Over the new limit (current assignments > limit):")
        lines += [f"    {o.full_name} ({o.staff_id}), {o.unit_id}: {o.load} assigned, new limit {o.limit_after}"
                  for o in impact.over_limit]
    if impact.routing_changed:
        lines += _routing_lines(impact)
    lines += _notified_lines(impact)
    if deadlines:
        lines.append(f"  SLA deadlines: {deadlines}")
    return lines


def _notified_lines(impact: Impact) -> list[str]:
    lines = []
    if impact.notified:
        lines.append("  Who would now be notified (running items, by recipient before -> after):")
        lines += [f"    {n.change}: {n.notify_before} -> {n.notify_after}: {n.recipient_before} -> "
                  f"{n.recipient_after}  {n.items}" for n in impact.notified]
    if impact.leave_actions:
        lines.append("  When an assignee goes on leave (active items of that priority today):")
        lines += [f"    {a.priority}: {a.before} -> {a.after}  {a.items}" for a in impact.leave_actions]
    return lines


def _routing_lines(impact: Impact) -> list[str]:
    lines = [f"  Routing of the last {impact.days} days' {impact.arrivals} arrival(s) under the new rules: "
             f"{impact.moved} would go elsewhere"]
    if impact.routes:
        rows = [(f"{r.from_rule} / {r.from_unit}", f"{r.to_rule} / {r.to_unit}", r.count, r.moves)
                for r in impact.routes]
        width = max(len("from (rule / unit)"), *(len(row[0]) for row in rows))
        lines.append(f"    {'from (rule / unit)':<{width}}  ->  to (rule / unit)  count")
        for source, target, count, moves in rows[:ROUTE_ROWS]:
            lines.append(f"    {source:<{width}}  ->  {target}  {count}" + ("" if moves else "  (unchanged)"))
        if len(rows) > ROUTE_ROWS:
            lines.append(f"    … and {len(rows) - ROUTE_ROWS} more")
    if impact.shadowed:
        lines.append("  Rules that can never match:")
        lines += [f"    {s.rule_id}: every item it matches is taken first by {', '.join(s.by)}"
                  for s in impact.shadowed]
    if impact.unstaffed:
        lines.append("  Rule targets with no available staff:")
        lines += [f"    {u.rule_id} -> {u.unit_id}: {_staffing(u)}" for u in impact.unstaffed]
    return lines


def _staffing(unstaffed: Unstaffed) -> str:
    return "no staff" if not unstaffed.staff else f"{unstaffed.staff} staff, none available"


# -- text -------------------------------------------------------------------------------------

def as_text(plan: Plan, show_sql: bool = False, colour: bool | None = None,
            simulation: Simulation | None = None) -> str:
    """`colour` None: decide from stdout and NO_COLOR (see `use_colour`). `simulation` (plan
    --simulate) goes under the Impact section."""
    paint = _Paint(use_colour() if colour is None else colour)
    lines = [paint(line, "heading") if line == "Impact:" else line for line in impact_lines(plan)]
    if simulation is not None:
        from engine.simulate.report.text import headline_lines
        lines += ["", paint("Simulation:", "heading"), *("  " + line for line in headline_lines(simulation))]
    if lines:
        lines.append("")
    lines.append(summary(plan))
    if plan.steps:
        lines.append(paint(plan_line(plan), "heading"))
    hazards = sorted(plan.hazards, key=lambda h: h.slug)
    if hazards:
        lines.append("")
        lines.append(paint("Hazards:", "hazard"))
        for hazard in hazards:
            steps = [s.key for s in plan.steps if hazard in s.hazards]
            lines.append(f"  {hazard.slug}: {hazard.message} — {len(steps)} step(s), e.g. {steps[0]}")
    if plan.steps:
        lines.append("")
        for number, step in enumerate(plan.steps, start=1):
            marks = "".join(f" [{h.slug}]" for h in step.hazards)
            head = f"{number:3d}. {marker(step):>2} {step.action:<10} {step.key}"
            lines.append(paint(head, group(step)) + paint(marks, "hazard"))
            lines.append(f"     {step.reason}")
            detail = _detail(plan, step)
            shown = detail if show_sql else detail[:DIFF_LINES]
            lines.extend("       " + paint.diff(line) for line in shown)
            if len(shown) < len(detail):
                lines.append(f"       … {len(detail) - len(shown)} more line(s) (--show-sql shows them)")
            if show_sql:
                lines.extend("       " + line for line in step.sql.rstrip().splitlines())
    for note in plan.notes:
        lines.append(f"note: {note}")
    if plan.foreign:
        lines.append(f"not managed by rulesctl (left alone): {', '.join(plan.foreign)}")
    return "\n".join(lines)


def _detail(plan: Plan, step: Step) -> list[str]:
    """The lines under a step; a seed row's `column: old -> new` only when its reason does not
    already say each in full (it shortens long values)."""
    detail = plan.impact.details.get(str(step.key), [])
    if step.kind == "seed" and all(line.replace(": ", " ", 1).replace(" -> ", " → ") in step.reason for line in detail):
        return []
    return detail


# -- JSON -------------------------------------------------------------------------------------

def as_json(plan: Plan, simulation: Simulation | None = None) -> str:
    data = plan.as_dict()
    if simulation is not None:
        data["simulation"] = simulation.summary
    data["summary"] = summary(plan)
    data["plan_line"] = plan_line(plan)
    data["hazards"] = sorted(h.slug for h in plan.hazards)
    data["impact"]["sla_deadlines"] = reschedule_reason(plan)
    return json.dumps(data, indent=2)


# -- Markdown ---------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def impact_markdown(plan: Plan) -> list[str]:
    impact, deadlines = plan.impact, reschedule_reason(plan)
    if impact.empty and not deadlines:
        return []
    lines = ["### Impact", ""]
    if impact.capacity:
        lines += ["| unit | WIP limit | capacity (available staff) |", "|---|---|---|"]
        lines += [f"| `{c.unit_id}` | {c.limit_before} → {c.limit_after} | {c.capacity_before} → {c.capacity_after} "
                  f"({c.staff} staff) |" for c in impact.capacity]
        lines.append("")
    if impact.over_limit:
        lines.append("**Over the new limit:**")
        lines += [f"- {_cell(o.full_name)} (`{o.staff_id}`, `{o.unit_id}`): {o.load} assigned, "
                  f"new limit {o.limit_after}" for o in impact.over_limit]
        lines.append("")
    if impact.routing_changed:
        lines.append(f"**Routing** of the last {impact.days} days' {impact.arrivals} arrival(s) under the new rules: "
                     f"{impact.moved} would go elsewhere")
        lines.append("")
        if impact.routes:
            lines += ["| from (rule / unit) | to (rule / unit) | count |", "|---|---|---|"]
            for r in impact.routes[:ROUTE_ROWS]:
                same = "" if r.moves else " (unchanged)"
                lines.append(f"| `{r.from_rule}` / `{r.from_unit}` | `{r.to_rule}` / `{r.to_unit}`{same} | {r.count} |")
            if len(impact.routes) > ROUTE_ROWS:
                lines.append(f"| … and {len(impact.routes) - ROUTE_ROWS} more | | |")
            lines.append("")
        lines += [f"- ⚠️ rule `{s.rule_id}` can never match: every item it matches is taken first by "
                  + ", ".join(f"`{rule}`" for rule in s.by) for s in impact.shadowed]
        lines += [f"- ⚠️ rule `{u.rule_id}` targets `{u.unit_id}`: {_staffing(u)}" for u in impact.unstaffed]
        if impact.shadowed or impact.unstaffed:
            lines.append("")
    lines += _notified_markdown(impact)
    if deadlines:
        lines += [f"**SLA deadlines:** {_cell(deadlines)}", ""]
    return lines


def _notified_markdown(impact: Impact) -> list[str]:
    lines = []
    if impact.notified:
        lines += ["**Who would now be notified** (running items):", "",
                  "| change | notify | recipient before → after | items |", "|---|---|---|---|"]
        lines += [f"| {_cell(n.change)} | {n.notify_before} → {n.notify_after} | {_cell(n.recipient_before)} → "
                  f"{_cell(n.recipient_after)} | {n.items} |" for n in impact.notified]
        lines.append("")
    if impact.leave_actions:
        lines.append("**When an assignee goes on leave:**")
        lines += [f"- `{a.priority}`: {a.before} → {a.after} ({a.items} active item(s) today)"
                  for a in impact.leave_actions]
        lines.append("")
    return lines


def as_markdown(plan: Plan, simulation: Simulation | None = None) -> str:
    lines = ["## rulesctl plan", "", f"**{summary(plan)}**", ""]
    if plan.steps:
        lines += [f"`{plan_line(plan)}`", ""]
    lines += impact_markdown(plan)
    if simulation is not None:
        from engine.simulate.report.markdown import as_markdown as simulation_markdown
        lines += [simulation_markdown(simulation, heading="### Impact: simulation"), ""]
    hazards = sorted(plan.hazards, key=lambda h: h.slug)
    if hazards:
        lines += ["### ⚠️ Hazards", ""]
        for hazard in hazards:
            steps = [s for s in plan.steps if hazard in s.hazards]
            lines.append(f"- **{hazard.slug}** — {hazard.message} ({len(steps)} step(s))")
            lines += [f"  - `{s.key}`: {s.reason}" for s in steps]
        lines.append("")
    if plan.steps:
        lines += ["### Steps", "", "| # | | action | object | why | origin |", "|---|---|---|---|---|---|"]
        for number, step in enumerate(plan.steps, start=1):
            reason = _cell(step.reason)
            detail = _detail(plan, step) if step.kind == "seed" else []
            if detail:
                reason += "<br>" + "<br>".join(f"`{_cell(line)}`" for line in detail)
            lines.append(f"| {number} | `{marker(step)}` | {step.action} | `{step.key}` | {reason} "
                         f"| {step.origin or ''} |")
        diffs = [(n, s) for n, s in enumerate(plan.steps, start=1)
                 if s.kind == "function" and str(s.key) in plan.impact.details]
        if diffs:
            lines += ["", "<details><summary>Changed function bodies (diff)</summary>", ""]
            for number, step in diffs:
                lines += [f"**{number}. {step.key}**", "", "```diff", *plan.impact.details[str(step.key)], "```", ""]
            lines.append("</details>")
        lines += ["", "<details><summary>SQL of every step</summary>", ""]
        for number, step in enumerate(plan.steps, start=1):
            lines += [f"**{number}. {step.key}**", "", "```sql", step.sql.rstrip(), "```", ""]
        lines.append("</details>")
    if plan.notes:
        lines += [""] + [f"> {note}" for note in plan.notes]
    if plan.foreign:
        lines += ["", f"Not managed by rulesctl (left alone): {', '.join(f'`{k}`' for k in plan.foreign)}"]
    lines += ["", f"<sub>rulesctl {plan.tool_version} · policy `{plan.policy_hash[:12]}` · "
                  f"live state `{plan.live_fingerprint[:12]}` · fingerprint `{plan.fingerprint[:12]}`</sub>"]
    return "\n".join(lines) + "\n"
