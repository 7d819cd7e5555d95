"""The plan. Input: a database URL, the policy and its rendered objects. Output: a `Plan`:
ordered steps (SQL, reason, hazards, origin), what is reported but not touched, a fingerprint
of the managed live state, and timings of each stage.

Everything is read in one REPEATABLE READ transaction that is rolled back: the live state,
the ledger's record of what rulesctl owns, and the desired state installed into a scratch
schema. Nothing the plan does outlives it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from engine import __version__
from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.order import topological
from engine.compiler.render import job_commands, seconds_of
from engine.database.connect import connect
from engine.errors import DatabaseError
from engine.migrate.cron_owners import mark_held_jobs, read_job_holders
from engine.migrate.desired import cron_unavailable_reason, cron_version, desired_state
from engine.migrate.diff import diff
from engine.migrate.fetch import fetch_value
from engine.migrate.hazards import Hazard
from engine.migrate.impact import DEFAULT_DAYS, Impact, measure, step_details
from engine.migrate.introspect import introspect, scratch_schema_name
from engine.migrate.kinds import kind_of
from engine.migrate.kinds.policy import table_and_policy
from engine.migrate.kinds.seed import Seed
from engine.migrate.ledger import require_ledger_access
from engine.migrate.model import DRIFT_REASON, ENUM_SEGMENT, LiveObject, Step
from engine.migrate.privileges import mark_refused, membership_notes
from engine.migrate.rename import after_renames, find_renames, rename_steps, with_renames
from engine.migrate.sla_moves import measure_sla_moves
from engine.migrate.steps import StepBuilder
from engine.migrate.usage import with_usage
from engine.policy.model import Policy


@dataclass
class Plan:
    steps: list[Step]
    foreign: list[str]                         # live objects rulesctl does not own: reported only
    live_hashes: dict[str, str]                # per managed key, to name what moved later
    desired_hashes: dict[str, str]             # what managed_objects records after the apply
    policy_hash: str
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    tool_version: str = __version__
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    saved_fingerprint: str | None = None       # as a saved plan file states it (checked against `fingerprint`)
    impact: Impact = field(default_factory=Impact)   # consequences for the work; not part of the fingerprint

    @property
    def live_fingerprint(self) -> str:
        """Of the managed live state the plan was made against."""
        return fingerprint_of(self.live_hashes)

    @property
    def steps_hash(self) -> str:
        """Of what the steps do: action, object, SQL, hazards, segment (not the prose)."""
        return steps_hash(self.steps)

    @property
    def fingerprint(self) -> str:
        """Binds the steps to the live state: editing either in a saved plan changes it."""
        return hashlib.sha256(f"{self.live_fingerprint}:{self.steps_hash}".encode()).hexdigest()

    @property
    def hazards(self) -> set[Hazard]:
        return {hazard for step in self.steps for hazard in step.hazards}

    def blocked_by(self, allowed: set[Hazard]) -> list[Step]:
        allowed = {hazard for hazard in allowed if hazard.allowable}     # referenced-removal never runs
        return [step for step in self.steps if set(step.hazards) - allowed]

    def as_dict(self) -> dict[str, Any]:
        return {"tool_version": self.tool_version, "created_at": self.created_at, "policy_hash": self.policy_hash,
                "fingerprint": self.fingerprint, "steps_hash": self.steps_hash, "live_hashes": self.live_hashes,
                "desired_hashes": self.desired_hashes, "notes": self.notes, "foreign": self.foreign,
                "timings": self.timings, "steps": [step.as_dict() for step in self.steps],
                "impact": self.impact.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        steps = [Step.from_dict(s) for s in data["steps"]]
        return cls(steps, data["foreign"], data["live_hashes"], data["desired_hashes"], data["policy_hash"],
                   data["notes"], data.get("timings", {}), data["tool_version"], data["created_at"],
                   saved_fingerprint=data["fingerprint"],
                   impact=Impact.from_dict(data["impact"]) if "impact" in data else Impact())


def object_hash(obj: LiveObject) -> str:
    return hashlib.sha256(json.dumps(obj.definition, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint_of(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def steps_hash(steps: list[Step]) -> str:
    what = [[s.action, s.key, s.sql, [h.slug for h in s.hazards], s.segment] for s in steps]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def read_owned(conn: psycopg.Connection[Any]) -> dict[ObjectKey, str]:
    """Keys rulesctl installed and the hash of each as installed (empty before the first apply)."""
    require_ledger_access(conn)
    if fetch_value(conn, "SELECT to_regclass('rulesctl.managed_objects')") is None:
        return {}
    rows = conn.execute("SELECT key, definition_hash FROM rulesctl.managed_objects").fetchall()
    return {ObjectKey(key): digest for key, digest in rows}


def live_state(conn: psycopg.Connection[Any], managed_keys: Collection[str]) -> dict[str, str]:
    """The hashes of the managed keys as they are live now (for fingerprints)."""
    live = introspect(conn)
    return {key: object_hash(live[ObjectKey(key)]) for key in sorted(managed_keys) if key in live}


def build_plan(url: str, policy: Policy, objects: list[SqlObject], templates_dir: Path,
               conn: psycopg.Connection[Any] | None = None, impact_days: int = DEFAULT_DAYS,
               pg_cron_version: tuple[int, ...] | None = None) -> Plan:
    """Plan on a fresh connection, or on `conn` (apply's, under its lock) when given. The impact
    looks back over `impact_days` days of arrivals. `pg_cron_version` plans as if the database's
    pg_cron were that version (what a pg_cron upgrade would change; the tests' 1.5+ path), where
    pg_cron can run this database's jobs at all."""
    if conn is not None:
        return _plan(conn, policy, objects, templates_dir, impact_days, pg_cron_version)
    try:
        with connect(url) as own:
            own.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            return _plan(own, policy, objects, templates_dir, impact_days, pg_cron_version)
    except psycopg.Error as exc:
        raise DatabaseError(f"planning failed: {str(exc).strip()}") from None


def _plan(conn: psycopg.Connection[Any], policy: Policy, objects: list[SqlObject], templates_dir: Path,
          impact_days: int = DEFAULT_DAYS, pg_cron_version: tuple[int, ...] | None = None) -> Plan:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    try:
        with conn.transaction(force_rollback=True):
            live = introspect(conn)
            owned = read_owned(conn)
            timings["introspect"] = time.perf_counter() - clock
            clock = time.perf_counter()
            scratch = scratch_schema_name()
            cron_problem = cron_unavailable_reason(conn)
            pg_cron = None if cron_problem else (pg_cron_version or cron_version(conn))
            desired = desired_state(conn, policy, objects, templates_dir, scratch, pg_cron)
            live = with_usage(conn, catalog.SCHEMA, live, desired)        # counts for what it takes away
            sla_moves = measure_sla_moves(conn, live, desired, scratch)     # new deadlines, from the scratch install
            membership = membership_notes(conn)
            job_holders = read_job_holders(conn)       # whose pg_cron jobs: cron.job and the ledger
            timings["render"] = time.perf_counter() - clock
            clock = time.perf_counter()
            impact = measure(conn, policy, impact_days)
            timings["impact"] = time.perf_counter() - clock
    except psycopg.Error as exc:
        raise DatabaseError(f"planning failed: {str(exc).strip()}") from None
    clock = time.perf_counter()
    produced = {obj.key for obj in objects}
    hand_made = hand_made_policies(live, desired, produced)
    managed = set(owned) | (produced & live.keys()) | hand_made
    renames = find_renames(policy, live)
    renamed = after_renames(live, renames)          # live as the rename steps leave it: what the rest changes
    result = diff(desired, renamed, set(owned) | produced | hand_made)
    builder = StepBuilder(objects, templates_dir, renamed)
    steps = [step for change in result.changes for step in builder.steps(change)]
    steps = _mark_drift(steps, desired, live, owned, hand_made)
    ordered = with_renames(order_steps(steps, objects, renamed), rename_steps(builder.context, renames))
    ordered += builder.reschedule_steps(ordered, sla_moves)
    ordered, job_notes = mark_held_jobs(ordered, job_holders)     # another role's job: never a second copy
    try:
        ordered = mark_refused(conn, ordered)       # what this role may not run, tried and rolled back
    except psycopg.Error as exc:
        raise DatabaseError(f"planning failed: {str(exc).strip()}") from None
    timings["diff"] = time.perf_counter() - clock
    impact.details = step_details(ordered, live, desired)
    impact.sla_moves = sla_moves if any(step.kind == "reschedule" for step in ordered) else None
    live_hashes: dict[str, str] = {key: object_hash(live[key])
                                   for key in sorted(managed | desired.keys()) if key in live}
    notes = _notes(policy, cron_problem, pg_cron, desired) + job_notes + membership + _identity_note(desired)
    return Plan(ordered, list(result.foreign), live_hashes,
                {key: object_hash(obj) for key, obj in sorted(desired.items())}, policy.policy_hash, notes, timings,
                impact=impact)


def hand_made_policies(live: Mapping[ObjectKey, LiveObject], desired: Mapping[ObjectKey, LiveObject],
                       produced: Collection[str]) -> set[ObjectKey]:
    """Row level security policies on a table rulesctl manages that rulesctl did not make. The
    table's access rules are rulesctl's: an extra permissive policy (USING (true)) would open
    every row, so it is drift to undo, never "not managed, left alone"."""
    found = set()
    for obj in live.values():
        if obj.kind != "policy" or obj.key in desired:
            continue
        if f"table:{obj.key.schema}.{table_and_policy(obj.key)[0]}" in produced:
            found.add(obj.key)
    return found


def _mark_drift(steps: list[Step], desired: Mapping[ObjectKey, LiveObject], live: Mapping[ObjectKey, LiveObject],
                owned: Mapping[ObjectKey, str], hand_made: Collection[str] = frozenset()) -> list[Step]:
    """A step is drift when the live object no longer matches what rulesctl installed while the
    policy still wants what it installed, or is an access rule added by hand to a table rulesctl
    manages: someone changed it by hand."""
    marked = []
    for step in steps:
        if step.key in hand_made:
            table, policy = table_and_policy(step.key)
            marked.append(Step(step.action, step.key, step.sql,
                               f"drift: changed outside rulesctl: policy {policy} was made by hand "
                               f"on {step.key.schema}.{table}, whose access rules rulesctl manages; drop it",
                               step.hazards, step.origin, step.segment, True, step.after))
            continue
        base = step.key.whole if step.kind == "enum" else step.key
        installed = owned.get(base)
        live_hash = object_hash(live[base]) if base in live else None
        desired_hash = object_hash(desired[base]) if base in desired else None
        if installed and live_hash != installed and desired_hash in (installed, None):
            step = Step(step.action, step.key, step.sql, DRIFT_REASON + step.reason,
                        step.hazards, step.origin, step.segment, True, step.after)
        marked.append(step)
    return marked


def order_steps(steps: list[Step], objects: list[SqlObject], live: Mapping[ObjectKey, LiveObject]) -> list[Step]:
    """Enum values first (their own segment), then creates and changes in dependency order
    (ties by each kind's `rank`), then drops and deletes, dependents before what they depend on
    (each kind's `drop_rank`)."""
    by_key = {obj.key: obj for obj in objects}
    position = {obj.key: index for index, obj in enumerate(objects)}
    forward = [s for s in steps if not s.action.removes]
    backward = [s for s in steps if s.action.removes]
    enum_values = [s for s in forward if s.segment == ENUM_SEGMENT]
    rest = [s for s in forward if s.segment != ENUM_SEGMENT]
    step_keys = {s.key for s in rest}
    graph = {s.key: [d for d in by_key[s.key].dependencies if d in step_keys] if s.key in by_key else [] for s in rest}
    rank = {s.key: (kind_of(s.kind).rank, position.get(s.key, 0)) for s in rest}
    ordered_keys = topological(graph, rank)
    by_step_key = {s.key: s for s in rest}
    backward_keys = {s.key: s for s in backward}
    # a deleted seed row that points at another deleted row goes first
    seed_edges: dict[ObjectKey, list[ObjectKey]] = {key: [] for key in backward_keys}
    for key, step in backward_keys.items():
        kind = kind_of(step.kind)
        if not isinstance(kind, Seed):
            continue
        for target in kind.references(key, live[key].definition):
            if target in backward_keys and target != key:
                seed_edges[target].append(key)        # the referenced row is deleted after this one
    drop_rank = {key: (_drop_rank(s), key) for key, s in backward_keys.items()}
    backward_ordered = topological(seed_edges, drop_rank)
    return enum_values + [by_step_key[k] for k in ordered_keys] + [backward_keys[k] for k in backward_ordered]


def _drop_rank(step: Step) -> int:
    rank = kind_of(step.kind).drop_rank
    return 99 if rank is None else rank


def _notes(policy: Policy, cron_problem: str | None, pg_cron: tuple[int, ...] | None,
           desired: Mapping[ObjectKey, LiveObject]) -> list[str]:
    """Where the jobs run, and for each 'N seconds' job which form pg_cron gets, and why."""
    if cron_problem or pg_cron is None:
        return ([cron_problem] if cron_problem else []) + [
            f"job {job.name} not scheduled (no pg_cron in this database); run it yourself: "
            f"{job_commands(job, catalog.SCHEMA)[0]}" for job in policy.jobs]
    version = ".".join(map(str, pg_cron))
    notes = []
    for job in policy.jobs:
        definition = desired[ObjectKey.of("cron_job", job.name)].definition
        if definition["schedule"] != job.schedule:
            notes.append(f"job {job.name}: '{job.schedule}' needs pg_cron 1.5+; this pg_cron ({version}) runs it "
                         f"every minute, repeating within the minute ({definition['command']})")
        elif seconds_of(job.schedule):
            notes.append(f"job {job.name}: scheduled as the interval '{job.schedule}' (pg_cron {version} takes "
                         f"interval schedules; 1.4 would get a per-minute loop)")
    return notes


def _identity_note(desired: Mapping[ObjectKey, LiveObject]) -> list[str]:
    """Say so when current_user_id() reads Supabase's auth.uid() (its template decides at install)."""
    identity = desired.get(ObjectKey(f"function:{catalog.SCHEMA}.current_user_id()"))
    if identity is None or "auth.uid()" not in json.dumps(identity.definition):
        return []
    return ["current_user_id() delegates to auth.uid(): Supabase's auth schema is here and the owner, "
            "authenticated and service_role may call it"]
