"""`rulesctl status` as one screen of text. Input: a `Status`. Output: the lines."""

from __future__ import annotations

from datetime import datetime

from engine.operations.status import Status


def as_text(status: Status) -> str:
    now = status.checked_at
    lines = [f"rulesctl status at {now:%Y-%m-%d %H:%M:%S %Z}"
             + ("" if abs((status.engine_now - now).total_seconds()) < 1
                else f" (engine clock {status.engine_now:%Y-%m-%d %H:%M:%S %Z})"), ""]
    lines += _jobs(status)
    lines += ["", "Units:", f"  {'unit':<24} {'staff':>6} {'avail':>6} {'load/capacity':>14} {'util':>6} "
                            f"{'queued':>7} {'oldest queued':>14} {'late':>5}"]
    for unit in status.units:
        lines.append(f"  {unit.unit_id[:24]:<24} {unit.staff:>6,} {unit.available:>6,} "
                     f"{f'{unit.load:,}/{unit.capacity:,}':>14} "
                     f"{'-' if unit.utilisation is None else f'{unit.utilisation:.0f}%':>6} {unit.queue_depth:>7,} "
                     f"{_ago(unit.oldest_queued_at, status.engine_now):>14} {unit.queued_overdue:>5,}"
                     + ("  (retired)" if unit.retired else ""))
    totals = status.totals()
    utilisation = f"{100 * totals['load'] / totals['capacity']:.0f}%" if totals["capacity"] else "-"
    load = f"{totals['load']:,}/{totals['capacity']:,}"
    lines.append(f"  {'all units':<24} {totals['staff']:>6,} {totals['available']:>6,} {load:>14} {utilisation:>6} "
                 f"{totals['queue_depth']:>7,}")
    escalations = ", ".join(f"{reason} {count:,}" for reason, count in status.escalations_24h.items())
    lines += ["", f"SLA: {status.sla['breaches_24h']:,} breach(es) in the last 24 h; {status.sla['at_risk']:,} "
                  f"running item(s) at risk; {status.sla['overdue']:,} overdue now",
              f"Escalations in the last 24 h: {sum(status.escalations_24h.values()):,}"
              + (f" ({escalations})" if escalations else "")]
    lines += ["", _drift(status), _last_apply(status)]
    return "\n".join(lines)


def _jobs(status: Status) -> list[str]:
    if status.jobs is None:
        return [f"Jobs: {status.cron_note}"]
    if not status.jobs:
        return [f"Jobs ({status.cron_note}): none scheduled in this database"]
    lines = [f"Jobs ({status.cron_note}):",
             f"  {'job':<26} {'schedule':<14} {'last run':>10} {'took':>8} {'result':<10} {'runs 24h':>8} "
             f"{'failed':>6}"]
    for job in status.jobs:
        took = "-" if job.last_seconds is None else f"{job.last_seconds:.2f}s"
        result = (job.last_status or "never") + ("" if job.active else " (inactive)")
        lines.append(f"  {job.name[:26]:<26} {job.schedule[:14]:<14} {_ago(job.last_start, status.checked_at):>10} "
                     f"{took:>8} {result:<10} {job.runs_24h:>8,} {job.failures_24h:>6,}")
        if job.failures_24h and job.last_failure:
            lines.append(f"    last failure: {' '.join(job.last_failure.split())[:100]}")
    return lines


def _drift(status: Status) -> str:
    if status.drift is None:
        return "Drift: unknown (nothing installed by rulesctl in this database)"
    if not status.drift:
        return f"Drift: no ({status.managed:,} managed objects as rulesctl installed them)"
    shown = ", ".join(status.drifted[:5]) + (f" and {len(status.drifted) - 5} more" if len(status.drifted) > 5 else "")
    return f"Drift: YES, {len(status.drifted)} object(s) changed outside rulesctl: {shown} (see `rulesctl drift`)"


def _last_apply(status: Status) -> str:
    last = status.last_apply
    if last is None:
        return "Last apply: none recorded"
    line = (f"Last apply: #{last['id']} {last['outcome']} at {last['at']:%Y-%m-%d %H:%M:%S %Z} by "
            f"{last['applied_by']}, policy {last['policy_hash'][:12]}"
            + (f", git {last['git_commit'][:12]}" if last["git_commit"] else "") + f": {last['message'][:80]}")
    if last["outcome"] != "applied" and last["last_applied_id"]:
        line += f" (last successful: #{last['last_applied_id']})"
    return line


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
