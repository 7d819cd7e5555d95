"""Plan reports. Input: a `Plan`. Output: text for a terminal, JSON for machines, or Markdown
for a pull-request comment (summary counts, hazards first, then each step with its SQL folded)."""

from __future__ import annotations

import json
from collections import Counter

from engine.migrate.plan import Plan


def summary(plan: Plan) -> str:
    if not plan.steps:
        return "No changes: the database matches the policy."
    counts = Counter(step.action for step in plan.steps)
    drift = sum(step.drift for step in plan.steps)
    parts = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    return f"{len(plan.steps)} step(s): {parts}" + (f"; {drift} of them undo drift" if drift else "")


def as_text(plan: Plan, show_sql: bool = False) -> str:
    lines = [summary(plan)]
    hazards = sorted(plan.hazards, key=lambda h: h.slug)
    if hazards:
        lines.append("")
        lines.append("Hazards:")
        for hazard in hazards:
            steps = [s.key for s in plan.steps if hazard in s.hazards]
            lines.append(f"  {hazard.slug}: {hazard.message} — {len(steps)} step(s), e.g. {steps[0]}")
    if plan.steps:
        lines.append("")
        for number, step in enumerate(plan.steps, start=1):
            marks = "".join(f" [{h.slug}]" for h in step.hazards)
            lines.append(f"{number:3d}. {step.action:<10} {step.key}{marks}")
            lines.append(f"     {step.reason}")
            if show_sql:
                lines.extend("       " + line for line in step.sql.rstrip().splitlines())
    for note in plan.notes:
        lines.append(f"note: {note}")
    if plan.foreign:
        lines.append(f"not managed by rulesctl (left alone): {', '.join(plan.foreign)}")
    return "\n".join(lines)


def as_json(plan: Plan) -> str:
    data = plan.as_dict()
    data["summary"] = summary(plan)
    data["hazards"] = sorted(h.slug for h in plan.hazards)
    return json.dumps(data, indent=2)


def as_markdown(plan: Plan) -> str:
    lines = ["## rulesctl plan", "", f"**{summary(plan)}**", ""]
    hazards = sorted(plan.hazards, key=lambda h: h.slug)
    if hazards:
        lines += ["### ⚠️ Hazards", ""]
        for hazard in hazards:
            steps = [s for s in plan.steps if hazard in s.hazards]
            lines.append(f"- **{hazard.slug}** — {hazard.message} ({len(steps)} step(s))")
            lines += [f"  - `{s.key}`: {s.reason}" for s in steps]
        lines.append("")
    if plan.steps:
        lines += ["### Steps", "", "| # | action | object | why | origin |", "|---|---|---|---|---|"]
        for number, step in enumerate(plan.steps, start=1):
            reason = step.reason.replace("|", "\\|")
            lines.append(f"| {number} | {step.action} | `{step.key}` | {reason} | {step.origin or ''} |")
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
