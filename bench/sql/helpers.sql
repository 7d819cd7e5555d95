-- Benchmark-only helpers, installed into the benchmark database's own `bench` schema by
-- `python -m bench`. Nothing here is part of the engine: the workloads call the engine's SQL
-- API (auto_assign, complete_assignment, find_eligible_staff_for_assignment,
-- sla_check_and_escalate, assignment_queue_ordered); these functions only make the synthetic
-- data and pick the arguments (which item arrives, which active assignment completes).
-- Everything is deterministic: "random" choices are hashes of a row number.

DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
COMMENT ON SCHEMA bench IS 'rulesctl benchmark helpers (python -m bench); the data in this database may be wiped by it';

-- Marks a database the benchmark may wipe (runtime tables are truncated between workloads).
CREATE TABLE bench.marker (created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO bench.marker DEFAULT VALUES;

CREATE SEQUENCE bench.item_seq;

-- 0..999 from (n, salt): the benchmark's deterministic dice.
CREATE FUNCTION bench.h(p_n bigint, p_salt integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8(p_n * 7919 + p_salt) & 2147483647) % 1000 $$;

-- Staff number n -> a stable user id, so a random staff member costs no lookup.
CREATE FUNCTION bench.staff_id(p_n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ('b0000000-0000-4000-8000-' || lpad(to_hex(p_n), 12, '0'))::uuid $$;

-- Where staff work (a per-mille share of staff numbers per unit), which skills they hold,
-- and what kind of work they hold when the benchmark preloads active assignments.
CREATE TABLE bench.units (
  unit_id text PRIMARY KEY,
  lo integer NOT NULL,          -- bench.h(n, 1) in [lo, hi] puts staff n in this unit
  hi integer NOT NULL,
  skills text[] NOT NULL,
  load_type text NOT NULL,      -- work_item_type of preloaded assignments
  load_target text              -- explicit target unit when no rule routes load_type here
);

-- The stream of arriving work items: a per-mille share per (type, target), the skills an
-- item may require (skill_share per mille of them require one), and the priority mix
-- (cumulative per-mille cut-offs for low, normal, high; the rest are urgent).
CREATE TABLE bench.item_mix (
  mix text NOT NULL,
  lo integer NOT NULL,
  hi integer NOT NULL,
  work_item_type text NOT NULL,
  target_unit_id text,
  skills text[] NOT NULL DEFAULT '{}',
  skill_share integer NOT NULL DEFAULT 0,
  p_low integer NOT NULL DEFAULT 200,
  p_normal integer NOT NULL DEFAULT 700,
  p_high integer NOT NULL DEFAULT 920,
  PRIMARY KEY (mix, lo)
);

-- One auto_assign request of the given mix; t, p, s in 1..1000 pick type, priority, skill.
-- PL/pgSQL so its plan is cached per connection (a SQL function would be planned per call,
-- and that client-side cost would count against the engine).
CREATE FUNCTION bench.item(p_mix text, p_t integer, p_p integer, p_s integer) RETURNS jsonb
LANGUAGE plpgsql
AS $$
BEGIN
  RETURN (
    SELECT jsonb_strip_nulls(jsonb_build_object(
      'work_item_id', 'bench-' || nextval('bench.item_seq'),
      'work_item_type', m.work_item_type,
      'priority', CASE WHEN p_p <= m.p_low THEN 'low' WHEN p_p <= m.p_normal THEN 'normal'
                       WHEN p_p <= m.p_high THEN 'high' ELSE 'urgent' END,
      'required_skills', CASE WHEN p_s <= m.skill_share AND cardinality(m.skills) > 0
                              THEN jsonb_build_array(m.skills[1 + p_s % cardinality(m.skills)]) END,
      'target_unit_id', m.target_unit_id))
    FROM bench.item_mix m
    WHERE m.mix = p_mix AND p_t BETWEEN m.lo AND m.hi);
END
$$;

-- Staff numbers p_from..p_to as upsert_staff_profile would receive them. p_wip NULL: the
-- realistic mix (15% carry a personal WIP limit near the unit default); else everyone p_wip.
CREATE FUNCTION bench.staff_spec(p_from bigint, p_to bigint, p_wip integer)
RETURNS TABLE (n bigint, id uuid, unit_id text, full_name text, email text, role text,
               availability_status text, wip_limit integer, skills jsonb)
LANGUAGE sql STABLE
AS $$
  SELECT g, bench.staff_id(g), u.unit_id, 'Bench Staff ' || g, 'staff' || g || '@bench.example',
         CASE WHEN bench.h(g, 2) < 80 THEN 'supervisor' ELSE 'staff' END,
         CASE WHEN bench.h(g, 3) < 880 THEN 'available' WHEN bench.h(g, 3) < 930 THEN 'busy'
              WHEN bench.h(g, 3) < 970 THEN 'on_leave' ELSE 'offline' END,
         CASE WHEN p_wip IS NOT NULL THEN p_wip
              WHEN bench.h(g, 4) < 150 THEN greatest(1, o.default_wip_limit + bench.h(g, 5) % 4 - 1) END,
         (SELECT jsonb_object_agg(k.skill, k.level)
          FROM (SELECT DISTINCT ON (u.skills[1 + bench.h(g, 10 + j) % cardinality(u.skills)])
                       u.skills[1 + bench.h(g, 10 + j) % cardinality(u.skills)] AS skill,
                       CASE WHEN bench.h(g, 20 + j) < 300 THEN 'basic' WHEN bench.h(g, 20 + j) < 800 THEN 'proficient'
                            ELSE 'expert' END AS level
                FROM generate_series(1, 2 + bench.h(g, 6) % 3) j
                ORDER BY 1, j) k)
  FROM generate_series(p_from, p_to) g
  JOIN bench.units u ON bench.h(g, 1) BETWEEN u.lo AND u.hi
  JOIN public.organizational_units o ON o.id = u.unit_id
$$;

-- How many active assignments each person is preloaded with (filled by the harness).
CREATE TABLE bench.load_plan (
  seq integer PRIMARY KEY,      -- batches are seq ranges
  staff_id uuid NOT NULL,
  unit_id text NOT NULL,
  first_row bigint NOT NULL,    -- number of this person's first preloaded row
  n integer NOT NULL
);

-- When each escalation level of an item of (type, priority) arriving at `bucket` falls due
-- (dues[level]) and its SLA deadline: computed once per half hour of arrivals with the
-- engine's own calendar functions; preloaded rows add their offset within the half hour.
CREATE TABLE bench.due (
  work_item_type text NOT NULL,
  priority text NOT NULL,
  bucket timestamptz NOT NULL,
  deadline timestamptz NOT NULL,
  dues timestamptz[] NOT NULL,
  PRIMARY KEY (work_item_type, priority, bucket)
);

CREATE FUNCTION bench.bucket(p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT date_bin('30 minutes', p_at, timestamptz '2000-01-01 00:00+00') $$;

-- Complete one active assignment of a random person among staff numbers p_lo..p_hi,
-- starting at p_start and trying the next people when one holds nothing (or only work that
-- another client is completing right now). Uses idx_assignments_assignee_status_sla.
-- A client claims the assignment with a try-only advisory lock of the benchmark's own
-- (never waits, and the engine never takes it), then calls complete_assignment, which takes
-- its locks in the engine's own order (unit, then row), as any real client's call would.
-- Returns the assignment completed, or NULL when none was found in p_tries people.
CREATE FUNCTION bench.complete_one(p_lo integer, p_hi integer, p_start integer, p_tries integer DEFAULT 32)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
  v_n integer := p_start;
  v_id uuid;
BEGIN
  FOR i IN 1 .. p_tries LOOP
    FOR v_id IN
      SELECT a.id FROM public.assignments a
      WHERE a.assignee_id = bench.staff_id(v_n) AND a.status IN ('assigned', 'in_progress')
      ORDER BY a.status, a.sla_deadline
      LIMIT 8
    LOOP
      CONTINUE WHEN NOT pg_try_advisory_xact_lock(7499, hashtext(v_id::text));
      -- A fresh snapshot: another client may have completed it and committed just before.
      CONTINUE WHEN NOT EXISTS (SELECT 1 FROM public.assignments
                                WHERE id = v_id AND status IN ('assigned', 'in_progress', 'on_hold'));
      PERFORM public.complete_assignment(v_id);
      RETURN v_id;
    END LOOP;
    v_n := CASE WHEN v_n >= p_hi THEN p_lo ELSE v_n + 1 END;
  END LOOP;
  RETURN NULL;
END
$$;

-- Arguments of a find_eligible_staff_for_assignment call for the items of a mix, as
-- auto_assign would derive them: filled once per dataset, read by primary key.
CREATE TABLE bench.pick_cases (
  id integer PRIMARY KEY,
  unit_ids text[] NOT NULL,
  skills text[] NOT NULL,
  min_rank integer NOT NULL,
  weight integer NOT NULL,
  strategy text NOT NULL
);

-- The floor of this schema: the least work an assignment can be on the engine's own tables --
-- the rule's unit, the least-loaded person with room in one statement (SKIP LOCKED), the SLA
-- deadline and first check on the business calendar, one INSERT with the table's indexes,
-- foreign keys and triggers (the load counter, the outbox row). No request checks, no
-- idempotency, no ranking or record of why, no queue, overflow or skills. Not an
-- engine path: the `floor` workload measures it beside `auto_assign` to show what part of the
-- targets the tables alone allow on this machine.
CREATE FUNCTION bench.floor_assign(p jsonb) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
  v_type public.work_item_type := (p ->> 'work_item_type')::public.work_item_type;
  v_priority public.priority_level := (p ->> 'priority')::public.priority_level;
  v_rule record;
  v_unit text;
  v_staff uuid;
  v_now timestamptz := now();
  v_id uuid;
BEGIN
  SELECT * INTO v_rule FROM public.match_assignment_rule(v_type, v_priority, '{}'::text[]);
  v_unit := coalesce(p ->> 'target_unit_id', v_rule.target_unit_id);
  SELECT s.id INTO v_staff FROM public.staff_profiles s
  WHERE s.unit_id = v_unit AND s.availability_status = 'available' AND s.has_room
  ORDER BY s.current_assignment_count, s.last_assigned_at NULLS FIRST, s.id
  LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
  IF v_staff IS NULL THEN               -- nobody in the unit itself (small data): its subtree, sorted
    SELECT s.id, s.unit_id INTO v_staff, v_unit FROM public.staff_profiles s
    WHERE s.unit_id = ANY (public.unit_ids_for_target(v_unit, true)) AND s.availability_status = 'available' AND s.has_room
    ORDER BY s.current_assignment_count, s.last_assigned_at NULLS FIRST, s.id
    LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
  END IF;
  IF v_staff IS NULL THEN
    RETURN NULL;                        -- nobody with room: the floor does not queue
  END IF;
  INSERT INTO public.assignments (work_item_id, work_item_type, priority, assignee_id, unit_id, rule_id, target_unit_id,
                                  arrived_at, assigned_at, sla_deadline, next_check_at)
  VALUES (p ->> 'work_item_id', v_type, v_priority, v_staff, v_unit, v_rule.rule_id, v_unit, v_now, v_now,
          public.calculate_sla_deadline_fn(v_type, v_priority, v_now), public.sla_level_due_at(v_type, v_priority, v_now, 0, 1))
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;
