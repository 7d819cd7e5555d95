"""Synthetic but realistic data for the benchmark.

Units come from the installed policy (organizational_units). Staff are spread over them by a
fixed share per unit, each with 2-4 skills of their unit's trade at basic/proficient/expert,
a role (supervisors ~8%, one unit head per unit), availability (88% available, 5% busy, 4% on
leave, 3% offline) and the unit's WIP limit (15% carry a personal limit near it). Arriving
work follows a type and priority mix (bench.item_mix) that the shipped rules route to their
units; ~30% of items require one skill.

Small staff sets arrive through the engine's own `upsert_staff_profile`; large ones are bulk
inserted with generate_series (staff are data, not policy). Preloaded active assignments are
bulk inserted with `session_replication_role = replica` (no triggers), then every person's
counter is set from the real count in one UPDATE. Their SLA deadlines and next_check_at come
from the engine's own calendar functions (per half hour of arrival), so most next checks lie in
the future and the SLA sweep is measured in its steady state. ANALYZE after every load.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from .database import RUNTIME_TABLES

ACTIVE = ("assigned", "in_progress", "on_hold")
SMALL_STAFF = 200           # up to this many staff arrive through upsert_staff_profile
STAFF_BATCH = 10_000
ASSIGNMENT_BATCH = 100_000
ARRIVAL_SPAN = timedelta(days=3)   # preloaded active work arrived within the last 3 days
QUEUE_SPAN = timedelta(hours=6)    # queued work arrived within the last 6 hours (aging applies)

# Share of staff (weight), skills held, and the work preloaded for each unit of the shipped
# policy. Units the table does not know get weight 1 and every skill.
UNIT_PROFILE = {
    "unit-gastat": (2, ["skill-arabic", "skill-english"], "ticket", "unit-gastat"),
    "unit-operations": (4, ["skill-sampling", "skill-census", "skill-field-interviewing"], "survey_task", None),
    "unit-corporate": (2, ["skill-arabic", "skill-english"], "ticket", "unit-corporate"),
    "unit-dissemination": (5, ["skill-disclosure-control", "skill-sql", "skill-english"], "data_request", None),
    "unit-field-survey": (24, ["skill-field-interviewing", "skill-census", "skill-gis", "skill-arabic"],
                          "survey_task", None),
    "unit-data-processing": (12, ["skill-data-cleaning", "skill-sql", "skill-census"], "survey_task", None),
    "unit-methodology": (6, ["skill-sampling", "skill-disclosure-control", "skill-census"], "survey_task", None),
    "unit-it-support": (15, ["skill-network", "skill-desktop-support", "skill-security", "skill-english"],
                        "ticket", None),
    "unit-hr": (5, ["skill-arabic", "skill-english"], "ticket", "unit-hr"),
    "unit-translation": (10, ["skill-arabic", "skill-english", "skill-french", "skill-legal-translation"],
                         "translation_request", None),
    "unit-data-requests": (15, ["skill-sql", "skill-data-cleaning", "skill-disclosure-control", "skill-english"],
                           "data_request", None),
}

# Arriving work: (per-mille share, type, explicit target, skills an item may require, share
# of items requiring one, in per mille). Priorities: 20% low, 50% normal, 22% high, 8% urgent.
ITEM_MIXES = {
    "standard": [
        (380, "ticket", None, ["skill-network", "skill-desktop-support", "skill-security"], 300),
        (110, "translation_request", None, ["skill-arabic", "skill-english", "skill-french"], 400),
        (10, "translation_request", None, ["skill-legal-translation"], 1000),
        (200, "data_request", None, ["skill-sql", "skill-disclosure-control"], 250),
        (260, "survey_task", None, ["skill-field-interviewing", "skill-census", "skill-gis", "skill-sampling"], 300),
        (40, "ticket", "unit-hr", [], 0),
    ],
    # Only the service desk: with 3 people on shift there, that is the hot spot.
    "hotspot": [
        (1000, "ticket", None, [], 0),
    ],
}


@dataclass(frozen=True)
class Dataset:
    """What a workload runs against. Equal datasets are not reloaded between read-only workloads."""
    staff: int
    wip: int | None = None           # everyone's personal WIP limit; None = the realistic mix
    load: float = 0.5                # share of each available/busy person's capacity preloaded...
    active: int | None = None        # ...or exactly this many active assignments, spread evenly
    queued: int = 0
    hotspot_staff: int = 0           # if set, unit-it-support has exactly this many (available) staff
    mix: str = "standard"

    def describe(self) -> str:
        parts = [f"{self.staff:,} staff"]
        if self.hotspot_staff:
            parts.append(f"{self.hotspot_staff} on the service desk")
        if self.wip is not None:
            parts.append(f"WIP {self.wip} each")
        return ", ".join(parts)


@dataclass
class Loaded:
    dataset: Dataset
    staff: int
    hot_range: tuple[int, int] | None     # staff numbers of the hot spot's people
    now: datetime                         # the clock the data was laid out against
    seconds: float


class Loader:
    def __init__(self, url: str, log=print):
        self.url = url
        self.log = log
        self.current: Loaded | None = None
        self.dirty = True

    def ensure(self, dataset: Dataset, *, fresh: bool = False) -> Loaded:
        if not fresh and not self.dirty and self.current is not None and self.current.dataset == dataset:
            return self.current
        self.current = self.load(dataset)
        self.dirty = False
        return self.current

    def load(self, ds: Dataset) -> Loaded:
        clock = time.monotonic()
        with psycopg.connect(self.url, autocommit=True) as conn:
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
            now = conn.execute("SELECT date_trunc('second', now())").fetchone()[0]
            self._reset(conn, ds)
            hot_range = self._staff(conn, ds)
            self._roles(conn)
            plan = self._plan_load(conn, ds)
            if plan or ds.queued:
                self._due_table(conn, now)
            if plan:
                self._assignments(conn, plan, now, superuser)
            if ds.queued:
                self._queue(conn, ds, now)
            self._pick_cases(conn, ds)
            self.log("  ANALYZE")
            conn.execute("ANALYZE")
            if superuser:
                conn.execute("CHECKPOINT")
        seconds = time.monotonic() - clock
        self.log(f"  loaded in {seconds:.1f} s")
        return Loaded(ds, ds.staff + ds.hotspot_staff, hot_range, now, seconds)

    # -- steps ---------------------------------------------------------------------------

    def _reset(self, conn, ds: Dataset) -> None:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(
            sql.Identifier("public", t) for t in RUNTIME_TABLES)))
        conn.execute("TRUNCATE bench.units, bench.item_mix, bench.load_plan, bench.due, bench.pick_cases")
        units = [row[0] for row in conn.execute("SELECT id FROM organizational_units ORDER BY id")]
        weights = {}
        for unit in units:
            weight = UNIT_PROFILE.get(unit, (1,))[0]
            if ds.hotspot_staff and unit == "unit-it-support":
                weight = 0
            weights[unit] = weight
        total = sum(weights.values())
        low = 0
        all_skills = [row[0] for row in conn.execute("SELECT id FROM skills ORDER BY id")]
        for index, unit in enumerate(units):
            share = round(1000 * weights[unit] / total) if index < len(units) - 1 else 1000 - low
            profile = UNIT_PROFILE.get(unit, (1, all_skills, "ticket", unit))
            skills = [s for s in profile[1] if s in all_skills] or all_skills
            # A unit with no share gets an empty range (lo > hi).
            conn.execute("INSERT INTO bench.units VALUES (%s, %s, %s, %s, %s, %s)",
                         (unit, low, low + share - 1, skills, profile[2], profile[3]))
            low += share
        for mix, rows in ITEM_MIXES.items():
            low = 1
            for share, work_type, target, skills, skill_share in rows:
                conn.execute("INSERT INTO bench.item_mix"
                             " (mix, lo, hi, work_item_type, target_unit_id, skills, skill_share)"
                             " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                             (mix, low, low + share - 1, work_type, target, skills, skill_share))
                low += share

    def _staff(self, conn, ds: Dataset) -> tuple[int, int] | None:
        if ds.staff <= SMALL_STAFF:
            self.log(f"  {ds.staff:,} staff through upsert_staff_profile")
            conn.execute("""
                SELECT count(upsert_staff_profile(jsonb_strip_nulls(jsonb_build_object(
                  'id', id, 'unit_id', unit_id, 'full_name', full_name, 'email', email, 'role', role,
                  'availability_status', availability_status, 'wip_limit', wip_limit, 'skills', skills))))
                FROM bench.staff_spec(1, %s, %s)""", (ds.staff, ds.wip))
        else:
            done = 0
            while done < ds.staff:
                upto = min(ds.staff, done + STAFF_BATCH)
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS spec AS SELECT * FROM bench.staff_spec(1, 0, NULL)")
                conn.execute("TRUNCATE spec")
                conn.execute("INSERT INTO spec SELECT * FROM bench.staff_spec(%s, %s, %s)", (done + 1, upto, ds.wip))
                conn.execute("""
                    INSERT INTO staff_profiles (id, unit_id, full_name, email, role, availability_status, wip_limit)
                    SELECT id, unit_id, full_name, email, role, availability_status::availability_status, wip_limit
                    FROM spec""")
                conn.execute("""
                    INSERT INTO staff_skills (staff_id, skill_id, proficiency)
                    SELECT s.id, e.key, e.value #>> '{}' FROM spec s, jsonb_each(s.skills) e""")
                done = upto
                self.log(f"  staff {done:,}/{ds.staff:,}")
        if not ds.hotspot_staff:
            return None
        first = ds.staff + 1
        last = ds.staff + ds.hotspot_staff
        conn.execute("""
            SELECT count(upsert_staff_profile(jsonb_build_object(
              'id', bench.staff_id(g), 'unit_id', 'unit-it-support', 'full_name', 'Service Desk ' || g,
              'role', 'staff', 'availability_status', 'available',
              'skills', '{"skill-network": "proficient", "skill-desktop-support": "expert"}'::jsonb)))
            FROM generate_series(%s::bigint, %s::bigint) g""", (first, last))
        self.log(f"  {ds.hotspot_staff} service desk staff through upsert_staff_profile")
        return first, last

    def _roles(self, conn) -> None:
        # One unit head per unit (its first available person), an admin at the top.
        conn.execute("""
            UPDATE staff_profiles s SET role = 'unit_head'
            FROM (SELECT DISTINCT ON (unit_id) id FROM staff_profiles WHERE availability_status = 'available'
                  ORDER BY unit_id, id) h
            WHERE s.id = h.id AND s.role <> 'unit_head'""")
        conn.execute("""
            UPDATE staff_profiles s SET role = 'admin'
            WHERE s.id = (SELECT id FROM staff_profiles WHERE unit_id = 'unit-gastat' AND role = 'staff'
                          AND availability_status = 'available' ORDER BY id LIMIT 1)""")

    def _plan_load(self, conn, ds: Dataset) -> list[tuple[int, object, str, int, int]]:
        """How many active assignments each available or busy person holds: the same share of
        everyone's capacity (ds.load), or exactly ds.active spread evenly."""
        rows = conn.execute("""
            SELECT s.id, s.unit_id, coalesce(s.wip_limit, u.default_wip_limit)
            FROM staff_profiles s JOIN organizational_units u ON u.id = s.unit_id
            WHERE s.availability_status IN ('available', 'busy')
            ORDER BY s.id""").fetchall()
        capacity = sum(r[2] for r in rows)
        wanted = None
        share = ds.load
        if ds.active is not None:
            wanted = ds.active
            if wanted > capacity:
                raise ValueError(f"{wanted:,} active assignments do not fit in {capacity:,} WIP slots")
            share = wanted / capacity if capacity else 0
        counts = [min(cap, math.floor(cap * share)) for _, _, cap in rows]
        if wanted is not None:
            missing = wanted - sum(counts)
            index = 0
            while missing > 0:
                if counts[index] < rows[index][2]:
                    counts[index] += 1
                    missing -= 1
                index = (index + 1) % len(rows)
        plan = []
        first = 1
        for seq, ((staff_id, unit, _), n) in enumerate(zip(rows, counts, strict=True), start=1):
            if n:
                plan.append((seq, staff_id, unit, first, n))
                first += n
        with conn.cursor().copy("COPY bench.load_plan (seq, staff_id, unit_id, first_row, n) FROM STDIN") as copy:
            for row in plan:
                copy.write_row(row)
        return plan

    def _due_table(self, conn, now) -> None:
        self.log("  SLA due times per half hour of arrival (engine calendar functions)")
        conn.execute("""
            INSERT INTO bench.due (work_item_type, priority, bucket, deadline, dues)
            SELECT c.work_item_type::text, c.priority::text, b.bucket,
                   calculate_sla_deadline_fn(c.work_item_type, c.priority, b.bucket),
                   ARRAY(SELECT sla_level_due_at(c.work_item_type, c.priority, b.bucket, 0, l.level)
                         FROM escalation_levels l WHERE l.chain_id = c.escalation_chain_id ORDER BY l.level)
            FROM sla_configs c
            CROSS JOIN generate_series(bench.bucket(%(now)s - %(span)s), bench.bucket(%(now)s),
                                       '30 minutes') b(bucket)""",
                     {"now": now, "span": max(ARRIVAL_SPAN, QUEUE_SPAN)})

    def _assignments(self, conn, plan, now, superuser: bool) -> None:
        total = sum(p[4] for p in plan)
        if superuser:
            conn.execute("SET session_replication_role = replica")
        else:
            self.log("  (not a superuser: preloading with triggers on, slower)")
        batches, low, rows = [], plan[0][0], 0
        for seq, _, _, _, n in plan:
            rows += n
            if rows >= ASSIGNMENT_BATCH:
                batches.append((low, seq))
                low, rows = seq + 1, 0
        if rows:
            batches.append((low, plan[-1][0]))
        levels = conn.execute("SELECT coalesce(max(level), 0) FROM escalation_levels").fetchone()[0]
        statement = preload_sql(levels)
        clock = time.monotonic()
        done = 0
        for low, high in batches:
            cur = conn.execute(statement, {"lo": low, "hi": high, "now": now,
                                           "span_s": ARRIVAL_SPAN.total_seconds()})
            done += cur.rowcount
            rate = done / max(time.monotonic() - clock, 1e-9)
            self.log(f"  active assignments {done:,}/{total:,} ({rate:,.0f} rows/s)")
        conn.execute("RESET session_replication_role")
        conn.execute("""
            UPDATE staff_profiles s SET current_assignment_count = c.load, last_assigned_at = c.last
            FROM (SELECT assignee_id, sum(capacity_weight) AS load, max(assigned_at) AS last
                  FROM assignments WHERE status IN ('assigned', 'in_progress', 'on_hold')
                  GROUP BY assignee_id) c
            WHERE s.id = c.assignee_id""")
        self.log("  staff counters set from the real active counts")

    def _queue(self, conn, ds: Dataset, now) -> None:
        done = 0
        while done < ds.queued:
            upto = min(ds.queued, done + ASSIGNMENT_BATCH)
            conn.execute(QUEUE_SQL, {"from": done + 1, "to": upto, "total": ds.queued, "mix": ds.mix,
                                     "now": now, "span": QUEUE_SPAN})
            done = upto
            self.log(f"  queued items {done:,}/{ds.queued:,}")

    def _pick_cases(self, conn, ds: Dataset) -> None:
        conn.execute("""
            INSERT INTO bench.pick_cases (id, unit_ids, skills, min_rank, weight, strategy)
            SELECT i, unit_ids_for_target(coalesce(r ->> 'target_unit_id', m.target_unit_id),
                                          r ->> 'target_unit_id' IS NULL AND m.include_subtree),
                   s.skills, m.min_proficiency_rank, m.capacity_weight, m.strategy
            FROM generate_series(1, 200) i
            CROSS JOIN LATERAL (SELECT bench.item(%s, 1 + bench.h(i, 50), 1 + bench.h(i, 51),
                                                  1 + bench.h(i, 52)) AS r) q
            CROSS JOIN LATERAL (SELECT coalesce(array_agg(e ORDER BY e), '{}') AS skills
                                FROM jsonb_array_elements_text(coalesce(r -> 'required_skills', '[]')) e) s
            CROSS JOIN LATERAL match_assignment_rule((r ->> 'work_item_type')::work_item_type,
                                                     (r ->> 'priority')::priority_level, s.skills) m""", (ds.mix,))


# Preloaded active work of the people in load_plan seq lo..hi: the work their unit does
# (weight-1 rules only, so the counter is the row count), arrival within ARRIVAL_SPAN, SLA
# deadline and escalation state as the engine would have them now: levels already passed are
# recorded in escalation_level and next_check_at is the next level still ahead. Each was answered
# when it was assigned (first_response_at), so the response clock adds no check to the steady state.
PRELOAD_SQL = """
WITH rules AS MATERIALIZED (
  SELECT t.t::text AS work_item_type, p.p::text AS priority, m.*
  FROM unnest(enum_range(NULL::work_item_type)) t(t)
  CROSS JOIN unnest(enum_range(NULL::priority_level)) p(p)
  CROSS JOIN LATERAL match_assignment_rule(t.t, p.p, '{}') m
), rows AS MATERIALIZED (
  SELECT x, lp.staff_id, lp.unit_id, u.load_type, u.load_target,
         CASE WHEN u.load_type = 'ticket' THEN CASE WHEN bench.h(x, 30) < 300 THEN 'low' ELSE 'normal' END
              WHEN bench.h(x, 30) < 200 THEN 'low' WHEN bench.h(x, 30) < 700 THEN 'normal'
              WHEN bench.h(x, 30) < 920 THEN 'high' ELSE 'urgent' END AS priority,
         %(now)s - make_interval(secs => %(span_s)s
                                         * ((bench.h(x, 31) * 1000 + bench.h(x, 34))::float8 / 1e6) ^ 2) AS arrived
  FROM bench.load_plan lp
  JOIN bench.units u ON u.unit_id = lp.unit_id
  CROSS JOIN LATERAL generate_series(lp.first_row, lp.first_row + lp.n - 1) x
  WHERE lp.seq BETWEEN %(lo)s AND %(hi)s
), timed AS MATERIALIZED (
  SELECT r.*, bench.bucket(r.arrived) AS bucket, r.arrived - bench.bucket(r.arrived) AS jitter,
         %(now)s - (r.arrived - bench.bucket(r.arrived)) AS horizon,     -- a level is passed when due <= horizon
         least(r.arrived + (bench.h(r.x, 33) %% 20) * interval '1 minute', %(now)s) AS assigned
  FROM rows r
)
INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id, unit_id, rule_id, target_unit_id,
                         include_subtree, status, arrived_at, assigned_at, first_response_at, sla_deadline,
                         next_check_at, escalation_level, decision, created_at, updated_at)
SELECT 'load-' || t.x, t.load_type::work_item_type, t.priority::priority_level, t.staff_id, t.unit_id,
       m.rule_id, coalesce(t.load_target, m.target_unit_id), m.include_subtree AND t.load_target IS NULL,
       CASE WHEN bench.h(t.x, 32) < 700 THEN 'assigned' ELSE 'in_progress' END::assignment_status,
       t.arrived, t.assigned, t.assigned,
       d.deadline + t.jitter, @NEXT_CHECK@ + t.jitter, @LEVEL@,
       jsonb_build_object('source', 'bench-load', 'rule_id', m.rule_id), t.arrived, t.arrived
FROM timed t
JOIN rules m ON m.work_item_type = t.load_type AND m.priority = t.priority
JOIN bench.due d ON d.work_item_type = t.load_type AND d.priority = t.priority AND d.bucket = t.bucket
"""


def preload_sql(levels: int) -> str:
    """PRELOAD_SQL for chains of up to `levels` levels (due times ascend along a chain)."""
    passed = " + ".join(f"coalesce((d.dues[{i}] <= t.horizon)::int, 0)" for i in range(1, levels + 1)) or "0"
    ahead = " ".join(f"WHEN d.dues[{i}] > t.horizon THEN d.dues[{i}]" for i in range(1, levels + 1))
    return (PRELOAD_SQL.replace("@LEVEL@", f"({passed})::smallint")
            .replace("@NEXT_CHECK@", f"(CASE {ahead} END)" if ahead else "NULL::timestamptz"))


# Queued work: the arriving mix, as auto_assign would have queued it (rule, target, weight,
# deadline), arrived evenly over QUEUE_SPAN. Only loaded when nobody eligible has room.
QUEUE_SQL = """
INSERT INTO assignment_queue (work_item_id, work_item_type, priority, required_skills, target_unit_id,
                              include_subtree, rule_id, capacity_weight, min_proficiency_rank, when_no_capacity,
                              decision, sla_deadline, arrived_at, created_at, updated_at)
SELECT r ->> 'work_item_id', (r ->> 'work_item_type')::work_item_type, (r ->> 'priority')::priority_level, s.skills,
       coalesce(r ->> 'target_unit_id', m.target_unit_id), r ->> 'target_unit_id' IS NULL AND m.include_subtree,
       m.rule_id, m.capacity_weight, m.min_proficiency_rank, m.when_no_capacity,
       jsonb_build_object('source', 'bench-load', 'outcome', 'queued: nobody eligible has room'),
       d.deadline + a.jitter, a.arrived, a.arrived, a.arrived
FROM generate_series(%(from)s::bigint, %(to)s::bigint) x
CROSS JOIN LATERAL (SELECT bench.item(%(mix)s, 1 + bench.h(x, 40), 1 + bench.h(x, 41), 1 + bench.h(x, 42)) AS r) q
CROSS JOIN LATERAL (SELECT coalesce(array_agg(e ORDER BY e), '{}') AS skills
                    FROM jsonb_array_elements_text(coalesce(r -> 'required_skills', '[]')) e) s
CROSS JOIN LATERAL (SELECT %(now)s - %(span)s * (1 - x::numeric / %(total)s) AS arrived_raw) t
CROSS JOIN LATERAL (SELECT t.arrived_raw AS arrived, t.arrived_raw - bench.bucket(t.arrived_raw) AS jitter,
                           bench.bucket(t.arrived_raw) AS bucket) a
CROSS JOIN LATERAL match_assignment_rule((r ->> 'work_item_type')::work_item_type,
                                         (r ->> 'priority')::priority_level, s.skills) m
JOIN bench.due d ON d.work_item_type = r ->> 'work_item_type' AND d.priority = r ->> 'priority' AND d.bucket = a.bucket
"""


def counts(conn: psycopg.Connection) -> dict:
    row = conn.execute("""
        SELECT (SELECT count(*) FROM staff_profiles),
               (SELECT count(*) FROM assignments WHERE status IN ('assigned', 'in_progress', 'on_hold')),
               (SELECT count(*) FROM assignment_queue)""").fetchone()
    return {"staff": row[0], "active": row[1], "queued": row[2]}


def with_wip_for(ds: Dataset, calls: int) -> Dataset:
    """A dataset whose WIP limits leave room for `calls` more assignments (auto_assign alone
    measures the assign path; nobody should run out of room and queue)."""
    # The busiest unit (the service desk) takes ~40% of the items with ~13% of the staff.
    wip = max(50, math.ceil(calls * 0.4 * 2.5 / max(1, ds.staff * 0.13 * 0.88)))
    return replace(ds, wip=wip)
