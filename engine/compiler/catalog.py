"""The engine's schema, declared: which objects exist, which template renders each, and what
each must come after. Order is declared here, never guessed from SQL text.

Names are contract (the deployment guide's): tables, enums, helper functions and the three
named indexes keep exactly these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.compiler.sqltext import literal_list

SCHEMA = "public"

HELPER_FUNCTIONS = ("engine_now", "increment_version_column", "update_updated_at_column")

# Enum values that are engine vocabulary, not policy. work_item_type and priority_level
# come from rules/work_items.yaml.
FIXED_ENUMS = {
    "availability_status": ("available", "busy", "on_leave", "offline"),
    "assignment_status": ("assigned", "in_progress", "on_hold", "completed", "cancelled", "reassigned"),
    "escalation_reason": ("sla_warning", "sla_breach", "manual", "staff_unavailable", "no_capacity",
                          "response_breach"),
}
ACTIVE_STATUSES = ("assigned", "in_progress", "on_hold")


@dataclass(frozen=True)
class Table:
    name: str
    pk: tuple[str, ...] = ("id",)        # the primary key: seed rows are identified by it
    after: tuple[str, ...] = ()          # tables and enums (by name) it references
    versioned: bool = False              # version column + increment_version_column trigger
    updated_at: bool = False             # updated_at column + update_updated_at_column trigger
    # seed rows: FK column -> referenced table, so a seed row comes after the row it points at
    seed_refs: tuple[tuple[str, str], ...] = ()
    seeded: bool = False                 # its rows are policy (rendered from rules/, diffed by key)
    readable: bool = True                # the API roles may SELECT it (through row level security)
    # an identity column added to it later numbers the rows already there in this order (an
    # ORDER BY list; empty: by primary key)
    numbered_by: str = ""


TABLES = (
    Table("business_calendars", seeded=True),
    Table("calendar_working_hours", pk=("calendar_id", "weekday", "start_minute"), after=("business_calendars",),
          seed_refs=(("calendar_id", "business_calendars"),), seeded=True),
    Table("calendar_days_off", pk=("calendar_id", "day"), after=("business_calendars",),
          seed_refs=(("calendar_id", "business_calendars"),), seeded=True),
    Table("organizational_units", after=("business_calendars",), versioned=True, updated_at=True,
          seed_refs=(("parent_id", "organizational_units"), ("calendar_id", "business_calendars")), seeded=True),
    Table("proficiency_levels", seeded=True),
    Table("skills", seeded=True),
    Table("organizational_unit_tree", pk=("ancestor_id", "unit_id"), after=("organizational_units",),
          seed_refs=(("ancestor_id", "organizational_units"), ("unit_id", "organizational_units")), seeded=True),
    Table("escalation_chains", seeded=True),
    Table("escalation_levels", pk=("chain_id", "level"), after=("escalation_chains", "escalation_reason"),
          seed_refs=(("chain_id", "escalation_chains"),), seeded=True),
    Table("sla_configs", pk=("work_item_type", "priority"),
          after=("work_item_type", "priority_level", "assignment_status", "business_calendars", "escalation_chains"),
          seed_refs=(("calendar_id", "business_calendars"), ("escalation_chain_id", "escalation_chains")), seeded=True),
    Table("assignment_rules", after=("work_item_type", "priority_level", "organizational_units", "proficiency_levels"),
          seed_refs=(("target_unit_id", "organizational_units"), ("min_proficiency", "proficiency_levels")),
          seeded=True),
    Table("leave_policy", pk=("priority",), after=("priority_level",), seeded=True),
    Table("engine_settings", pk=("key",), seeded=True),
    Table("staff_profiles", after=("organizational_units", "availability_status"), versioned=True, updated_at=True),
    Table("staff_skills", pk=("staff_id", "skill_id"), after=("staff_profiles", "skills", "proficiency_levels")),
    Table("unit_staff_counts", pk=("unit_id",), after=("organizational_units", "staff_profiles"), readable=False),
    Table("assignments", after=("staff_profiles", "organizational_units", "assignment_rules", "work_item_type",
                                "priority_level", "assignment_status"), versioned=True, updated_at=True),
    Table("assignment_queue", after=("organizational_units", "assignment_rules", "work_item_type", "priority_level"),
          updated_at=True, numbered_by="created_at, id"),     # seq: the order the queue served them in
    Table("escalation_events", after=("assignments", "staff_profiles", "escalation_reason")),
    Table("assignment_audit", after=("assignments",)),
    Table("capacity_snapshots", pk=("unit_id", "snapshot_date"), after=("organizational_units",)),
    Table("engine_events", readable=False),
)
TABLES_BY_NAME = {table.name: table for table in TABLES}


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: str                         # the column list as SQL (engine text, not policy text)
    unique: bool = False
    include: str | None = None
    where: str | None = None
    why: str = ""


_ACTIVE = f"status IN ({literal_list(ACTIVE_STATUSES)})"

INDEXES = (
    Index("idx_assignments_assignee_status_sla", "assignments", "assignee_id, status, sla_deadline",
          why="an assignee's work by status and deadline (my-assignments, leave reassignment)"),
    Index("idx_assignments_status_sla_covering", "assignments", "status, sla_deadline",
          include="assignee_id, priority, work_item_type", why="SLA reports without touching the heap"),
    Index("idx_assignments_sla_partial", "assignments", "sla_deadline", where="status IN ('assigned', 'in_progress')",
          why="only running clocks are scanned for deadlines"),
    Index("idx_assignments_active_work_item", "assignments", "work_item_id", unique=True, where=_ACTIVE,
          why="one active assignment per work item, enforced by the database"),
    Index("idx_assignments_next_check", "assignments", "next_check_at", where="next_check_at IS NOT NULL",
          why="the SLA monitor reads only assignments whose next escalation level has fallen due"),
    Index("idx_assignments_sla_warned", "assignments", "sla_deadline",
          where="escalation_level > 0 AND status IN ('assigned', 'in_progress')",
          why="work at risk (`rulesctl status`): running work past a warning level, counted from the index alone"),
    Index("idx_assignment_queue_target_priority", "assignment_queue", "target_unit_id, priority DESC, created_at, seq",
          why="the head of each (unit, priority) queue: aging keeps a priority's items in arrival order"),
    Index("idx_assignment_queue_priority_head", "assignment_queue", "priority DESC, created_at, seq",
          why="the head of each priority across the whole queue (queue_head without a unit)"),
    Index("idx_assignment_queue_skill_head", "assignment_queue",
          "target_unit_id, priority DESC, (coalesce(required_skills[1], '')), created_at, seq",
          why="the head of each (unit, priority, first required skill) queue: a person freeing capacity probes "
              "only the items whose first skill they hold, never walking past work they cannot take"),
    Index("idx_assignment_queue_subtree_head", "assignment_queue", "target_unit_id, priority DESC, created_at, seq",
          where="include_subtree",
          why="the whole-subtree items of an ancestor's queue, which staff of every unit below may take"),
    Index("idx_escalation_events_assignment_level", "escalation_events", "assignment_id, level", unique=True,
          why="one escalation event per assignment per chain level"),
    Index("idx_escalation_events_escalated_at", "escalation_events", "escalated_at", include="reason",
          why="escalations of the last 24 h by reason (`rulesctl status`) without reading every event"),
    Index("idx_escalation_events_response_breach", "escalation_events", "assignment_id", unique=True,
          where="reason = 'response_breach'", why="one response breach per assignment, however often the sweep looks"),
    Index("idx_escalation_events_queue", "escalation_events", "queue_id", unique=True, where="queue_id IS NOT NULL",
          why="one no-capacity escalation per queued item, found again when the item is assigned"),
    Index("idx_staff_profiles_unit", "staff_profiles", "unit_id",
          why="a unit's staff, for decision records and reports"),
    Index("idx_staff_profiles_unit_role", "staff_profiles", "unit_id, role, id",
          where="availability_status = 'available'",
          why="escalation recipients: a unit's available supervisors and heads without reading its staff"),
    Index("idx_staff_profiles_leave_until", "staff_profiles", "available_until",
          where="availability_status = 'on_leave' AND available_until IS NOT NULL",
          why="the leave-return job: people whose leave ends, without reading everyone"),
    Index("idx_staff_profiles_pick_least_loaded", "staff_profiles",
          "unit_id, current_assignment_count, last_assigned_at NULLS FIRST, id",
          where="availability_status = 'available' AND has_room",
          why="least-loaded pick: the best candidate of a unit is the first index entry with room"),
    Index("idx_staff_profiles_pick_round_robin", "staff_profiles", "unit_id, last_assigned_at NULLS FIRST, id",
          where="availability_status = 'available' AND has_room",
          why="round-robin pick: the least recently assigned of a unit first"),
    Index("idx_staff_skills_skill", "staff_skills", "skill_id, staff_id", why="staff holding a skill"),
    Index("idx_organizational_units_parent", "organizational_units", "parent_id", why="walking the unit tree"),
)


# What the runtime's functions are about; each is a folder of templates/functions/runtime/
# (shared Jinja macros sit in its _macros/).
RUNTIME_DOMAINS = {
    "api": "the SQL API: entry points callers execute, and the api_* request readers",
    "assignment": "matching a rule, finding eligible staff and picking one, creating the assignment",
    "capacity": "keeping staff load and unit counts in step (trigger functions), capacity snapshots",
    "queue": "queue order and position, the unit locks, dequeuing when capacity frees",
    "sla": "business calendars, deadlines, the SLA clock and monitor, escalation recipients",
    "security": "who the caller is: current_user_id and the caller_* permission predicates",
    "jobs": "running pg_cron jobs in batches and more often than once a minute",
    "events": "the notification outbox and its relay",
}


@dataclass(frozen=True)
class Function:
    """A runtime function: templates/functions/runtime/<domain>/<name>.sql.j2, identified by its
    signature."""
    name: str
    args: str = ""                       # argument types as PostgreSQL prints them (oidvectortypes)
    after: tuple[str, ...] = ()          # other runtime functions a LANGUAGE sql body calls
    domain: str = field(kw_only=True)    # a key of RUNTIME_DOMAINS: the template's folder

    def __post_init__(self) -> None:
        if self.domain not in RUNTIME_DOMAINS:
            raise ValueError(f"runtime function {self.name}: unknown domain {self.domain!r}")

    @property
    def template(self) -> str:
        """The template's path under templates/."""
        return f"functions/runtime/{self.domain}/{self.name}.sql.j2"


# Order among these only matters for LANGUAGE sql bodies, which PostgreSQL checks at creation;
# every runtime function comes after every table and enum.
RUNTIME_FUNCTIONS = (
    Function("current_user_id", domain="security"),
    Function("api_invalid", "text, text", domain="api"),
    Function("api_text", "jsonb, text, boolean", after=("api_invalid",), domain="api"),
    Function("api_uuid", "jsonb, text, boolean", after=("api_text",), domain="api"),
    Function("api_conflict", "text, text", domain="api"),
    Function("api_version", "jsonb", domain="api"),
    Function("api_assignment", "uuid, text, text", domain="api"),
    Function("priority_rank", "{schema}.priority_level", domain="queue"),
    Function("queue_effective_rank", "{schema}.priority_level, timestamp with time zone, timestamp with time zone",
             after=("priority_rank",), domain="queue"),
    Function("match_assignment_rule", "{schema}.work_item_type, {schema}.priority_level, text[]", domain="assignment"),
    Function("unit_ids_for_target", "text, boolean", domain="assignment"),
    Function("lock_units", "text[], boolean", domain="queue"),
    Function("lock_units_to_queue", "text[]", domain="queue"),
    Function("try_lock_unit_shared", "text", domain="queue"),
    Function("calculate_sla_deadline_fn", "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone",
             domain="sla"),
    Function("staff_has_skills", "uuid, text[], integer", domain="assignment"),
    Function("find_eligible_staff_for_assignment", "text[], text[], integer, integer, text, integer",
             domain="assignment"),
    Function("pick_staff_with_ranking", "text[], text[], integer, integer, text, boolean", domain="assignment"),
    Function("pick_staff_for_assignment", "text[], text[], integer, integer, text, boolean", domain="assignment"),
    Function("explain_assignment_candidates", "text[], text[], integer, integer, text, integer, jsonb",
             domain="assignment"),
    Function("assignment_tie_break", "jsonb, text", domain="assignment"),
    Function("update_staff_assignment_count", "uuid, integer", domain="capacity"),
    Function("get_unit_recipient", "text, text, uuid", domain="sla"),
    Function("get_escalation_recipient", "uuid, text", domain="sla"),
    Function("caller_is_trusted", domain="security"),
    Function("caller_visible_units", after=("current_user_id",), domain="security"),
    # Permission predicates: each returns a boolean that is never NULL (a NULL is a refusal).
    Function("caller_is_known", domain="security"),
    Function("caller_is_admin", domain="security"),
    Function("caller_may_supervise", domain="security"),
    Function("caller_supervises_unit", "text", domain="security"),
    Function("caller_may_read_unit", "text", domain="security"),
    Function("caller_may_act_for", "uuid", domain="security"),
    Function("create_assignment", "{schema}.assignment_queue, uuid, jsonb, timestamp with time zone, "
             "timestamp with time zone", domain="assignment"),
    Function("queue_items_ahead", "text, {schema}.priority_level, timestamp with time zone, uuid", domain="queue"),
    Function("queue_position", "uuid", domain="queue"),
    Function("queue_head", "text, integer", domain="queue"),
    Function("process_queue_on_capacity_change", "uuid", domain="queue"),
    Function("escalate_no_capacity", "{schema}.assignment_queue", domain="queue"),
    Function("sync_assignment_capacity", domain="capacity"),
    Function("sync_staff_skills", domain="capacity"),
    Function("count_unit_staff", domain="capacity"),
    Function("staff_room", domain="capacity"),
    Function("unit_wip_limit_changed", domain="capacity"),
    Function("assignment_freed_capacity", domain="capacity"),
    Function("auto_assign_decision", "{schema}.assignment_queue, boolean, text[], text, jsonb, uuid",
             domain="assignment"),
    Function("auto_assign", "jsonb", domain="api"),
    Function("complete_assignment", "uuid", domain="api"),
    Function("auto_assign_many", "jsonb[]", domain="api"),
    Function("complete_assignments_many", "jsonb[]", domain="api"),
    Function("reassign_or_requeue", "uuid, text, uuid", domain="assignment"),
    Function("apply_leave_policy", "uuid, text, timestamp with time zone", domain="assignment"),
    Function("change_staff_availability", "uuid, {schema}.availability_status, timestamp with time zone, text, integer",
             domain="capacity"),
    Function("return_staff_from_leave", "integer", domain="capacity"),
    Function("set_staff_availability", "jsonb", domain="api"),
    Function("review_assignment", "jsonb", domain="api"),
    Function("upsert_staff_profile", "jsonb", domain="api"),
    Function("manual_override", "jsonb", domain="api"),
    Function("capacity_check", "text", domain="api"),
    Function("my_assignments", domain="api"),
    Function("process_stale_queue_items", "integer", domain="queue"),
    # SLA: business calendars, deadlines, the monitor and escalation, jobs, health
    Function("calendar_definition", "text", domain="sla"),
    Function("calendar_add_working_times", "text, timestamp with time zone, numeric[]", domain="sla"),
    Function("calendar_add_working_time", "text, timestamp with time zone, numeric", domain="sla"),
    Function("calendar_working_minutes_between", "text, timestamp with time zone, timestamp with time zone",
             domain="sla"),
    Function("sla_deadline_for",
             "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone, numeric", domain="sla"),
    Function("sla_budget_minutes", "text, timestamp with time zone, timestamp with time zone, numeric", domain="sla"),
    Function("sla_share_due_at", "text, timestamp with time zone, numeric, numeric, numeric", domain="sla"),
    Function("sla_status_at", "text, timestamp with time zone, numeric, timestamp with time zone, "
             "timestamp with time zone, numeric, timestamp with time zone", domain="sla"),
    Function("sla_state", "{schema}.assignments, timestamp with time zone", domain="sla"),
    Function("sla_response_deadline_for",
             "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone, numeric", domain="sla"),
    Function("sla_response_check_at", "timestamp with time zone, timestamp with time zone, timestamp with time zone",
             domain="sla"),
    Function("sla_response_state", "{schema}.assignments, timestamp with time zone", domain="sla"),
    Function("sla_next_level_due_at", "{schema}.assignments", domain="sla"),
    Function("sla_response_clock", domain="sla"),
    Function("sla_schedule_for", "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone, "
             "numeric, boolean, boolean, timestamp with time zone, integer, numeric", domain="sla"),
    Function("sla_level_due_at",
             "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone, numeric, integer",
             domain="sla"),
    Function("sla_start_instants", "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone, "
             "numeric, timestamp with time zone", domain="sla"),
    Function("sla_arrival_instants", "{schema}.work_item_type, {schema}.priority_level, timestamp with time zone",
             domain="sla"),
    Function("sla_clock_on_status_change", domain="sla"),
    Function("sla_reschedule_checks", domain="sla"),
    Function("sla_check_and_escalate", "integer", domain="sla"),
    Function("escalate_assignment", "jsonb", domain="api"),
    Function("respond_assignment", "jsonb", domain="api"),
    Function("cleanup_escalation_events", domain="sla"),
    Function("capture_capacity_snapshot", domain="capacity"),
    Function("notify_assignment_change", domain="events"),
    Function("relay_engine_events", "integer", domain="events"),
    Function("run_batches", "text, integer, integer", domain="jobs"),
    Function("run_every_seconds", "text, integer, integer", domain="jobs"),
    Function("engine_health", domain="api"),
)

# What the SLA schedule (deadline, level passed, next check) of running and queued work is
# computed from. A plan that changes any of these ends with a call to sla_reschedule_checks().
SLA_SCHEDULE_SEEDS = ("sla_configs", "escalation_levels")
SLA_SCHEDULE_FUNCTIONS = ("calendar_definition", "calendar_add_working_times", "calendar_add_working_time",
                          "calendar_working_minutes_between",
                          "sla_level_due_at", "sla_deadline_for", "sla_budget_minutes", "sla_share_due_at",
                          "sla_schedule_for", "sla_response_deadline_for")

# The most rows one queue_head call returns (its bad-limit error, and the HTTP queue endpoint's
# choice of reading through it, both follow this).
QUEUE_HEAD_MAX = 10_000

# Views over the runtime tables: (name, functions they call)
VIEWS = (("assignment_queue_ordered", ("queue_effective_rank", "engine_now")),)

# Triggers of the runtime: (trigger, table, function). Template: triggers/<trigger>.sql.j2,
# which reads all three from its context (name, table, function), never retyping them.
RUNTIME_TRIGGERS = (
    ("assignment_capacity_trigger", "assignments", "sync_assignment_capacity"),
    ("staff_skills_sync_trigger", "staff_skills", "sync_staff_skills"),
    ("staff_unit_count_trigger", "staff_profiles", "count_unit_staff"),
    ("staff_unit_count_truncate_trigger", "staff_profiles", "count_unit_staff"),
    ("staff_room_trigger", "staff_profiles", "staff_room"),
    ("unit_wip_limit_trigger", "organizational_units", "unit_wip_limit_changed"),
    ("assignment_completion_trigger", "assignments", "assignment_freed_capacity"),
    ("assignment_notify_trigger", "assignments", "notify_assignment_change"),
    ("assignment_sla_clock_trigger", "assignments", "sla_clock_on_status_change"),
    ("assignment_sla_response_trigger", "assignments", "sla_response_clock"),
    ("assignment_sla_response_start_trigger", "assignments", "sla_response_clock"),
)

# Realtime: the publication Supabase Realtime reads, and the tables it must carry.
PUBLICATION = "supabase_realtime"
REALTIME_TABLES = ("assignments", "assignment_queue", "escalation_events")


# --- security: Supabase's roles, row level security, grants ------------------------------------

# (role, bypasses row level security) -- service_role does on Supabase.
ROLES = (("anon", False), ("authenticated", False), ("service_role", True))
API_ROLES = ("authenticated", "service_role")


@dataclass(frozen=True)
class RlsPolicy:
    name: str
    table: str
    using: str                           # engine SQL text, not policy text
    why: str
    command: str = "SELECT"
    roles: tuple[str, ...] = ("authenticated",)


# {schema} is filled in (quoted) when rendering.
_ME = "(SELECT {schema}.current_user_id())"
_VISIBLE = "(SELECT {schema}.caller_visible_units())::text[]"   # the cast keeps ANY from reading a subquery
RLS_POLICIES = (
    RlsPolicy("staff_profiles_visible", "staff_profiles", f"id = {_ME} OR unit_id = ANY ({_VISIBLE})",
           "staff see themselves; supervisors and unit heads their unit's subtree; admins everyone"),
    RlsPolicy("assignments_visible", "assignments", f"assignee_id = {_ME} OR unit_id = ANY ({_VISIBLE})",
           "staff see their own work; supervisors and unit heads their subtree's; admins all"),
    RlsPolicy("staff_skills_visible", "staff_skills",
           "staff_id IN (SELECT s.id FROM {schema}.staff_profiles s)",
           "a person's skills are seen by whoever may see the person"),
    RlsPolicy("capacity_snapshots_visible", "capacity_snapshots", f"unit_id = ANY ({_VISIBLE})",
           "a unit's capacity history is seen by those who supervise it"),
    RlsPolicy("assignment_queue_visible", "assignment_queue", f"target_unit_id = ANY ({_VISIBLE})",
           "queued work is seen by those who supervise the target unit"),
    RlsPolicy("assignment_audit_visible", "assignment_audit",
           "assignment_id IN (SELECT a.id FROM {schema}.assignments a)",
           "who changed an assignment, and why, is seen by whoever may see the assignment"),
    RlsPolicy("escalation_events_visible", "escalation_events",
           f"recipient_id = {_ME} OR assignment_id IN (SELECT a.id FROM {{schema}}.assignments a)"
           f" OR unit_id = ANY ({_VISIBLE})",
           "an escalation is seen by its recipient, by whoever may see the assignment and, for a queued item "
           "nobody had room for, by those who supervise its target unit"),
)
RLS_TABLES = tuple(dict.fromkeys(policy.table for policy in RLS_POLICIES))

# Of the functions above, the procedures (they commit as they go, so pg_cron CALLs them).
PROCEDURES = ("run_batches", "run_every_seconds")

# Functions callers may execute (everything else is revoked from PUBLIC where rulesctl grants).
# The security-invoker ones (queue_position, queue_head, ...) need what they call granted too.
API_FUNCTIONS = ("auto_assign", "complete_assignment", "manual_override", "set_staff_availability",
                 "auto_assign_many", "complete_assignments_many",
                 "upsert_staff_profile", "capacity_check", "my_assignments", "queue_position", "queue_head",
                 "find_eligible_staff_for_assignment", "current_user_id", "caller_visible_units", "engine_now",
                 "queue_effective_rank", "queue_items_ahead", "priority_rank", "staff_has_skills", "api_invalid",
                 "escalate_assignment", "engine_health", "review_assignment", "respond_assignment")
