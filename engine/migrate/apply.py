"""Apply a plan. Input: a database URL and either the policy (apply re-plans under its lock)
or a saved plan (applied exactly; refused if it was edited, if the database moved since, or if
its steps are not what rulesctl plans now). Output: an `ApplyResult`, and one ledger row in
rulesctl.applies whatever happened: an apply that runs steps commits it as 'started' before the
first step, so even a killed one leaves its trace (the next apply marks it 'interrupted').

Approval: `confirm` (when given) sees a plan with steps and no blocked hazard, before anything
runs; False, or an ApplyRefused it raises (the CLI's "no terminal to confirm on"), refuses the
apply and records a 'refused' row with the reason. An in-sync database is never asked about.

Under a session advisory lock (a second apply waits a bounded time, then fails clearly):
enum values are added in their own committed transaction first (PostgreSQL cannot use a new
enum value in the transaction that added it); every other step runs in one transaction with
lock and statement timeouts, together with the ledger row and the record of what rulesctl now
owns. A failure rolls that transaction back and is recorded as such.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from engine.compiler.objects import SqlObject
from engine.database.connect import connect, query_text
from engine.errors import ApplyRefused, DatabaseError, HazardsBlocked
from engine.migrate.fetch import fetch_value
from engine.migrate.hazards import Hazard
from engine.migrate.ledger import LedgerWriter, git_dirty, require_ledger_access
from engine.migrate.model import ENUM_SEGMENT, Action, Step
from engine.migrate.plan import Plan, build_plan, fingerprint_of, live_state
from engine.policy.model import Policy
from engine.project import DEFAULT_TEMPLATES

__all__ = ["APPLY_LOCK_KEY", "ApplyResult", "HazardsBlocked", "apply", "git_commit"]

# pg_advisory_lock key: the first 8 bytes of sha256("rulesctl apply"), fixed forever.
APPLY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"rulesctl apply").digest()[:8], "big", signed=True)


@dataclass
class ApplyResult:
    outcome: str                                        # applied | no_change
    message: str
    plan: Plan
    ledger_id: int | None = None
    done: Counter[str] = field(default_factory=Counter)  # steps run, by action
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)      # what the SQL said for the operator (pg_cron ...)


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def apply(url: str, objects: list[SqlObject], policy: Policy, templates_dir: Path = DEFAULT_TEMPLATES, *,
          saved_plan: Plan | None = None, allowed: Collection[Hazard] = frozenset(), rules_dir: Path = Path("rules"),
          lock_timeout_s: float = 30.0, statement_timeout: str = "5min",
          confirm: Callable[[Plan], bool] | None = None,
          progress: Callable[[int, int, Step], None] | None = None) -> ApplyResult:
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    notes: list[str] = []
    try:
        with connect(url, autocommit=True) as conn:
            # Rendered SQL speaks to the operator through NOTICEs prefixed "rulesctl: ".
            conn.add_notice_handler(lambda diag: notes.append((diag.message_primary or "").removeprefix("rulesctl: "))
                                    if (diag.message_primary or "").startswith("rulesctl: ") else None)
            _watch_client(conn)
            _take_lock(conn, lock_timeout_s)
            try:
                require_ledger_access(conn, write=True)
                conn.execute(query_text("ledger.sql"))
                ledger = LedgerWriter(conn, url, started, policy.policy_hash, git_commit(rules_dir),
                                      git_dirty(rules_dir))
                interrupted = ledger.mark_interrupted()
                notes += [f"apply #{number} was interrupted before it finished (its session is gone); the ledger "
                          "now says so" for number in interrupted]
                replan = lambda: _plan_under_lock(conn, url, policy, objects, templates_dir)   # noqa: E731
                if saved_plan is not None:
                    _check_saved_plan(conn, saved_plan, policy, ledger, replan)
                plan = saved_plan or replan()
                result = _run(conn, plan, ledger, allowed, statement_timeout, confirm, progress)
            finally:
                try:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK_KEY,))
                except psycopg.Error:
                    pass                # the connection is gone, and the session lock with it
    except psycopg.Error as exc:
        raise DatabaseError(f"the database refused a rulesctl query: {str(exc).strip()}") from None
    result.seconds = time.monotonic() - clock
    result.notes = _merge_notes(notes, result.plan.notes)
    return result


def _merge_notes(notices: list[str], plan_notes: list[str]) -> list[str]:
    """What the SQL said while running, plus the plan's notes on jobs the run did not touch."""
    said = " ".join(notices)
    return notices + [note for note in plan_notes
                      if not (note.startswith("job ") and f"job {note.split()[1].rstrip(':')} " in said)]


def _plan_under_lock(conn: psycopg.Connection[Any], url: str, policy: Policy, objects: list[SqlObject],
                     templates_dir: Path) -> Plan:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        return build_plan(url, policy, objects, templates_dir, conn=conn)
    finally:
        conn.isolation_level = None


def _watch_client(conn: psycopg.Connection[Any]) -> None:
    """Have the server check every second, while a statement runs or waits for a lock, that this
    client is still there (PostgreSQL 14+): a killed rulesctl then ends its backend, rolling
    back and releasing the apply lock, instead of holding both until the wait is over."""
    if conn.info.server_version >= 140000:
        conn.execute("SET client_connection_check_interval = '1s'")


def _take_lock(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not fetch_value(conn, "SELECT pg_try_advisory_lock(%s)", (APPLY_LOCK_KEY,)):
        if time.monotonic() > deadline:
            holder = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                                  "AND (classid::bigint << 32 | objid::bigint) = %s", (APPLY_LOCK_KEY,)).fetchone()
            who = f" (backend pid {holder[0]})" if holder else ""
            raise ApplyRefused(f"another rulesctl apply holds the apply lock{who}; "
                               f"waited {timeout_s:g}s, changed nothing")
        time.sleep(0.2)


def _check_saved_plan(conn: psycopg.Connection[Any], plan: Plan, policy: Policy, ledger: LedgerWriter,
                      replan: Callable[[], Plan]) -> None:
    """A saved plan runs only if it is intact, the database has not moved since, and its steps
    are exactly what rulesctl plans now from this policy for this database (so an edited
    plan.json, its hashes recomputed or not, runs nothing)."""
    def refuse(message: str) -> None:
        ledger.write("refused", plan, message)
        raise ApplyRefused(message)

    if plan.saved_fingerprint != plan.fingerprint:
        refuse("the saved plan was edited after it was made: its steps or the state they were planned against "
               "do not match its fingerprint; plan again. Nothing was changed")
    _check_not_moved(conn, plan, ledger)
    if plan.policy_hash != policy.policy_hash:
        refuse(f"the saved plan was made from another policy ({plan.policy_hash[:12]}; the rules here are "
               f"{policy.policy_hash[:12]}); plan again. Nothing was changed")
    now = replan()
    if now.steps_hash != plan.steps_hash:
        saved_names = {f"{s.action} {s.key}" for s in plan.steps}
        now_names = {f"{s.action} {s.key}" for s in now.steps}
        # the same steps by name: the first whose text, hazards or segment differ (strict=False: the
        # lists are only compared to name a difference, never assumed to be of equal length)
        differ = sorted(saved_names ^ now_names) or \
            [f"{a.action} {a.key}" for a, b in zip(plan.steps, now.steps, strict=False)
             if (a.sql, a.hazards, a.segment) != (b.sql, b.hazards, b.segment)]
        refuse("the saved plan's steps are not what rulesctl plans from this policy for this database"
               + (f" (first difference: {differ[0]})" if differ else "")
               + (f"; it was made by rulesctl {plan.tool_version}" if plan.tool_version != now.tool_version else "")
               + "; the plan file was edited or is stale: plan again. Nothing was changed")


def _check_not_moved(conn: psycopg.Connection[Any], plan: Plan, ledger: LedgerWriter) -> None:
    with conn.transaction(force_rollback=True):
        now = live_state(conn, set(plan.live_hashes) | set(plan.desired_hashes))
    if fingerprint_of(now) == plan.live_fingerprint:
        return
    moved = sorted(key for key in now.keys() | plan.live_hashes.keys() if now.get(key) != plan.live_hashes.get(key))
    message = (f"the database changed since the plan was made ({plan.created_at}): {', '.join(moved[:10])}"
               + (f" and {len(moved) - 10} more" if len(moved) > 10 else "") + "; plan again. Nothing was changed")
    ledger.write("refused", plan, message)
    raise ApplyRefused(message)


def _run(conn: psycopg.Connection[Any], plan: Plan, ledger: LedgerWriter, allowed: Collection[Hazard],
         statement_timeout: str, confirm: Callable[[Plan], bool] | None,
         progress: Callable[[int, int, Step], None] | None) -> ApplyResult:
    blocked = plan.blocked_by(set(allowed))
    if blocked:
        hazards = {h for step in blocked for h in step.hazards}
        names = sorted(h.slug for h in hazards - set(allowed) if h.allowable)
        never = sorted(h.slug for h in hazards if not h.allowable)
        parts = [f"hazards not allowed: {', '.join(names)}"] if names else []
        parts += [f"hazards that can never be allowed: {', '.join(never)}"] if never else []
        advice = ("Allow them by name with --allow-hazard" if not never
                  else "Change the policy (retire instead of removing, or move the data first)")
        message = (f"{len(blocked)} step(s) have {'; '.join(parts)} "
                   f"(first: {blocked[0].reason}). {advice}; nothing was changed")
        ledger.write("refused", plan, message)
        raise HazardsBlocked(message)
    if not plan.steps:
        with conn.transaction():
            ledger_id = ledger.write("no_change", plan, "in sync: the database matches the policy; nothing to do")
            _record_owned(conn, plan, ledger_id)
        return ApplyResult("no_change", "in sync: the database matches the policy; nothing to do", plan, ledger_id)
    if confirm is not None:
        try:
            approved = confirm(plan)
        except ApplyRefused as refusal:         # no one to ask (no terminal): refused, and recorded so
            ledger.write("refused", plan, str(refusal))
            raise
        if not approved:
            ledger.write("refused", plan, "not approved at the prompt; nothing was changed")
            raise ApplyRefused("not approved; nothing was changed")

    ledger_id = ledger.start(plan)              # committed now: a killed apply still leaves its trace
    done: Counter[str] = Counter()
    segments = [[s for s in plan.steps if s.segment == ENUM_SEGMENT],
                [s for s in plan.steps if s.segment != ENUM_SEGMENT]]
    committed = 0
    position = 0
    try:
        for index, segment in enumerate(segments):
            if not segment:
                continue
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '10s'")
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (statement_timeout,))
                for step in segment:
                    position += 1
                    if progress:
                        progress(position, len(plan.steps), step)
                    if step.action is Action.REMOVE_VALUE:
                        done["kept (rulesctl never removes enum values)"] += 1
                        continue
                    try:
                        conn.execute(step.sql)  # type: ignore[arg-type]     # the plan's SQL, quoted when rendered
                    except psycopg.Error as exc:
                        raise _StepFailed(step, exc) from None
                    done[step.action] += 1
                if index == len(segments) - 1:
                    summary = ", ".join(f"{count} {action}" for action, count in sorted(done.items()))
                    message = f"ran {len(plan.steps)} steps ({summary})"
                    ledger.finish("applied", message)
                    _record_owned(conn, plan, ledger_id)
            committed += 1
    except _StepFailed as failure:
        detail = str(failure.error).strip().splitlines()[0]
        origin = f" (from {failure.step.origin})" if failure.step.origin else ""
        kept = (" The enum values of the first segment were committed before it and stay (harmless: unused)."
                if committed and segments[0] else "")
        message = (f"step {failure.step.key}{origin} failed: {detail}. Its transaction was rolled back; "
                   f"the database is as it was.{kept}")
        _finish_failed(conn, ledger, message)
        raise DatabaseError(message) from None
    except BaseException as exc:                # the ledger row must not stay 'started' while we live
        outcome = "failed" if isinstance(exc, Exception) else "interrupted"
        _finish_failed(conn, ledger, f"{outcome}: {type(exc).__name__}: {str(exc).strip()[:300]}. Its open "
                                     "transaction was rolled back", outcome)
        raise
    return ApplyResult("applied", message, plan, ledger_id, done)


def _finish_failed(conn: psycopg.Connection[Any], ledger: LedgerWriter, message: str, outcome: str = "failed") -> None:
    """Record the failure on the started row: on the apply's connection, or on a new one when
    that was killed (pg_terminate_backend, a network cut). If neither works the row stays
    'started' and the next apply marks it interrupted."""
    try:
        ledger.finish(outcome, message)
    except psycopg.Error:
        ledger.finish_elsewhere(outcome, message + " (recorded after its connection was lost)")


def _record_owned(conn: psycopg.Connection[Any], plan: Plan, apply_id: int) -> None:
    """Record what rulesctl now owns, as installed. An enum whose value removal was allowed but
    not done (rulesctl never removes values) is recorded as it really is, so it is not drift."""
    kept = {step.key for step in plan.steps if step.action is Action.REMOVE_VALUE}
    rows = [(key, plan.live_hashes.get(key, digest) if key in kept else digest, apply_id)
            for key, digest in plan.desired_hashes.items()]
    conn.execute("DELETE FROM rulesctl.managed_objects")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO rulesctl.managed_objects (key, definition_hash, apply_id) VALUES (%s, %s, %s)",
                        rows)


class _StepFailed(Exception):
    def __init__(self, step: Step, error: psycopg.Error) -> None:
        self.step, self.error = step, error
