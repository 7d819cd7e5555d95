-- The replay driver, installed into a scratch database next to the engine (schema rulesctl_sim).
-- It only moves the clock and calls the engine's own functions in virtual-time order:
-- completions (complete_assignment), leave changes (set_staff_availability), arrivals
-- (auto_assign), the SLA sweep and the other jobs (sla_check_and_escalate,
-- process_stale_queue_items, capture_capacity_snapshot) and hourly samples (capacity_check).
-- Nothing here decides who gets what. The active statuses below are the engine's list
-- (catalog.ACTIVE_STATUSES), quoted in by scratch.replay_sql().
CREATE SCHEMA rulesctl_sim;

CREATE TABLE rulesctl_sim.arrivals (
  seq integer PRIMARY KEY,
  at timestamptz NOT NULL,
  request jsonb NOT NULL
);

-- How long each item takes once someone holds it (elapsed time to completion).
CREATE TABLE rulesctl_sim.items (
  work_item_id text PRIMARY KEY,
  handling interval NOT NULL CHECK (handling > interval '0')
);

-- Availability changes (leave periods): set_staff_availability at `at`.
CREATE TABLE rulesctl_sim.availability (
  seq integer PRIMARY KEY,
  at timestamptz NOT NULL,
  request jsonb NOT NULL
);

-- Assignments in hand and when their holder finishes; filled by a trigger on assignments, so
-- work the engine takes from the queue on its own (a completion, a return from leave) is seen.
-- Rows stay once done until the end of the call (one DELETE then, not one per completion): the
-- driver completes the rows due at each instant it visits and goes on past them
-- (state.done_through). No row can fall behind that mark: an assignment is made at the engine's
-- now and handling is above zero, so it is due strictly later.
CREATE TABLE rulesctl_sim.running (
  assignment_id uuid PRIMARY KEY,
  work_item_id text NOT NULL,
  due_at timestamptz NOT NULL
);
CREATE INDEX ON rulesctl_sim.running (due_at, work_item_id);

CREATE TABLE rulesctl_sim.samples (
  at timestamptz NOT NULL,
  unit_id text NOT NULL,
  capacity jsonb NOT NULL,
  PRIMARY KEY (at, unit_id)
);

-- Arrivals the engine refused (auto_assign raised): kept with the error, never silently lost.
CREATE TABLE rulesctl_sim.rejected (
  work_item_id text PRIMARY KEY,
  sqlstate text NOT NULL,
  message text NOT NULL
);

-- Where the replay stands between calls (one row).
CREATE TABLE rulesctl_sim.state (
  next_arrival integer NOT NULL DEFAULT 1,
  next_availability integer NOT NULL DEFAULT 1,
  next_sample_at timestamptz NOT NULL,
  sample_every interval NOT NULL,
  sweep_every_s double precision NOT NULL,
  next_fallback_at timestamptz NOT NULL,
  fallback_every interval NOT NULL,
  next_snapshot_at timestamptz NOT NULL,
  commit_every integer NOT NULL,
  events bigint NOT NULL DEFAULT 0,
  done_through timestamptz NOT NULL DEFAULT '-infinity'      -- every running row due by then is handled
);

-- It also keeps the replay's next completion (setting rulesctl_sim.next_done, which replay_until
-- sets from the table when it starts and after each instant's completions): a new row due sooner
-- moves it, so the driver need not look at the table at every instant. And replay_until holds the
-- next rows in hand (all those due before rulesctl_sim.cached_before): a new row due before that
-- bound drops them ('' = none held). Settings, not variables, as they must roll back with the row
-- when an arrival is refused.
CREATE FUNCTION rulesctl_sim.track_assignment() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_due timestamptz;
BEGIN
  INSERT INTO rulesctl_sim.running (assignment_id, work_item_id, due_at)
  SELECT NEW.id, NEW.work_item_id, NEW.assigned_at + i.handling
  FROM rulesctl_sim.items i WHERE i.work_item_id = NEW.work_item_id
  RETURNING due_at INTO v_due;
  IF v_due < nullif(current_setting('rulesctl_sim.next_done', true), '')::timestamptz THEN
    PERFORM set_config('rulesctl_sim.next_done', v_due::text, false);
  END IF;
  IF v_due < nullif(current_setting('rulesctl_sim.cached_before', true), '')::timestamptz THEN
    PERFORM set_config('rulesctl_sim.cached_before', '', false);   -- the driver's next rows: one is missing
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER zz_rulesctl_sim_track AFTER INSERT ON public.assignments
  FOR EACH ROW EXECUTE FUNCTION rulesctl_sim.track_assignment();

-- The earliest next_check_at of all assignments, where the SLA sweep's next instant comes from:
-- setting rulesctl_sim.next_check, '' while not known (replay_until then reads the table and sets
-- it). A change to below it sets it; a change to the row holding it (done, escalated, moved) makes
-- it unknown. The WHEN clauses leave every other change (most) without a call.
CREATE FUNCTION rulesctl_sim.track_next_check() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM set_config('rulesctl_sim.next_check', '', false);
  ELSIF NEW.next_check_at < nullif(current_setting('rulesctl_sim.next_check'), '')::timestamptz THEN
    PERFORM set_config('rulesctl_sim.next_check', NEW.next_check_at::text, false);
  ELSE
    PERFORM set_config('rulesctl_sim.next_check', '', false);
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER zz_rulesctl_sim_next_check_insert AFTER INSERT ON public.assignments FOR EACH ROW
  WHEN (NEW.next_check_at < nullif(current_setting('rulesctl_sim.next_check', true), '')::timestamptz)
  EXECUTE FUNCTION rulesctl_sim.track_next_check();
CREATE TRIGGER zz_rulesctl_sim_next_check_update AFTER UPDATE ON public.assignments FOR EACH ROW
  WHEN (NEW.next_check_at < nullif(current_setting('rulesctl_sim.next_check', true), '')::timestamptz
        OR OLD.next_check_at = nullif(current_setting('rulesctl_sim.next_check', true), '')::timestamptz)
  EXECUTE FUNCTION rulesctl_sim.track_next_check();
CREATE TRIGGER zz_rulesctl_sim_next_check_delete AFTER DELETE ON public.assignments FOR EACH ROW
  WHEN (OLD.next_check_at = nullif(current_setting('rulesctl_sim.next_check', true), '')::timestamptz)
  EXECUTE FUNCTION rulesctl_sim.track_next_check();

-- How many items wait in the queue (setting rulesctl_sim.queued, counted by replay_until when it
-- starts): the stale-queue job runs only while some do, and few arrivals are queued.
CREATE FUNCTION rulesctl_sim.count_queued() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM set_config('rulesctl_sim.queued', (current_setting('rulesctl_sim.queued')::integer
                                              + CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END)::text, false);
  RETURN NULL;
END
$fn$;

CREATE TRIGGER zz_rulesctl_sim_queued AFTER INSERT OR DELETE ON public.assignment_queue FOR EACH ROW
  WHEN (nullif(current_setting('rulesctl_sim.queued', true), '') IS NOT NULL)
  EXECUTE FUNCTION rulesctl_sim.count_queued();

-- The first instant on the sweep's schedule at or after p_at. STABLE as its body is (epoch of a
-- timestamptz): declared IMMUTABLE it was never inlined, a function call per event.
CREATE FUNCTION rulesctl_sim.on_schedule(p_at timestamptz, p_every_s double precision) RETURNS timestamptz
LANGUAGE sql STABLE AS $fn$
  SELECT to_timestamp(ceil(extract(epoch FROM p_at) / p_every_s) * p_every_s)
$fn$;

-- Arrivals from p_from on in seq order (seq follows time), a batch at a time: one read per batch,
-- not per arrival.
CREATE FUNCTION rulesctl_sim.arrival_batch(p_from integer, OUT at timestamptz[], OUT request jsonb[])
LANGUAGE sql STABLE AS $fn$
  SELECT array_agg(a.at ORDER BY a.seq), array_agg(a.request ORDER BY a.seq)
  FROM rulesctl_sim.arrivals a WHERE a.seq >= p_from AND a.seq < p_from + 256
$fn$;

-- Replay every event up to p_until, committing every commit_every events; returns nothing,
-- leaves its place in rulesctl_sim.state. Unguarded (the default) an arrival the engine refuses
-- aborts the call back to its last commit: replay.py then replays that stretch again guarded, each
-- arrival in a subtransaction that records a refusal in rulesctl_sim.rejected. Refusals are rare
-- and a subtransaction that writes costs every arrival (its own xid, a MultiXact on each row it
-- locks); either way the same events run in the same order.
CREATE PROCEDURE rulesctl_sim.replay_until(p_until timestamptz, p_guarded boolean DEFAULT false)
LANGUAGE plpgsql AS $fn$
DECLARE
  s rulesctl_sim.state;
  v_t timestamptz;
  v_arrival timestamptz;
  v_arrival_request jsonb;
  v_change_request jsonb;
  v_done timestamptz;
  v_sweep timestamptz;
  v_change timestamptz;
  v_due uuid[];
  v_next timestamptz;
  v_pending integer := 0;
  v_id uuid;
  v_state text;
  v_message text;
  v_setting text;
  v_result jsonb;
  v_batch_from integer;
  v_batch_at timestamptz[];
  v_batch_request jsonb[];
  v_cached_due timestamptz[];
  v_cached_id uuid[];
  v_cached integer;
  v_bound timestamptz;
BEGIN
  SELECT * INTO s FROM rulesctl_sim.state;
  -- The next arrival and availability change, with their requests: read again only once used.
  v_batch_from := s.next_arrival;
  SELECT b.at, b.request INTO v_batch_at, v_batch_request FROM rulesctl_sim.arrival_batch(v_batch_from) b;
  v_arrival := v_batch_at[1];
  v_arrival_request := v_batch_request[1];
  SELECT a.at, a.request INTO v_change, v_change_request FROM rulesctl_sim.availability a
  WHERE a.seq = s.next_availability;
  SELECT min(r.due_at) INTO v_next FROM rulesctl_sim.running r WHERE r.due_at > s.done_through;
  v_setting := set_config('rulesctl_sim.next_done', coalesce(v_next, 'infinity')::text, false);
  v_setting := set_config('rulesctl_sim.next_check', '', false);
  v_setting := set_config('rulesctl_sim.cached_before', '', false);
  v_setting := set_config('rulesctl_sim.queued', (SELECT count(*) FROM public.assignment_queue)::text, false);
  LOOP
    -- The next completion and the earliest SLA check are kept by the triggers above; the latter
    -- is read from the table only when the row holding it has changed.
    v_done := current_setting('rulesctl_sim.next_done')::timestamptz;
    v_setting := current_setting('rulesctl_sim.next_check');
    IF v_setting = '' THEN
      SELECT coalesce(min(a.next_check_at)::text, 'infinity') INTO v_setting FROM public.assignments a;
      v_setting := set_config('rulesctl_sim.next_check', v_setting, false);
    END IF;
    v_sweep := rulesctl_sim.on_schedule(v_setting::timestamptz, s.sweep_every_s);
    v_t := least(v_arrival, v_change, v_done, v_sweep, s.next_sample_at, s.next_snapshot_at);
    EXIT WHEN v_t > p_until;
    v_setting := set_config('rulesctl.now', v_t::text, false);

    -- One instant, in a fixed order: work finished frees capacity first, then people come and
    -- go, then new work arrives, then the jobs look at the result.
    -- The rows due now (nothing earlier is left: each instant takes its own) by item, and the
    -- next completion after them, in one statement; then completed one at a time, by key. One
    -- moved on meanwhile (leave) is no longer active and is skipped. (A status filter in the
    -- statement itself made PL/pgSQL plan it anew at most calls.)
    IF v_done = v_t THEN
      -- The next 32 rows (every one due before the last of them) are read at once and used while
      -- no new row comes before that bound (track_assignment): one read for many completions.
      v_bound := nullif(current_setting('rulesctl_sim.cached_before'), '')::timestamptz;
      IF v_bound IS NULL OR v_t >= v_bound THEN
        SELECT array_agg(x.due_at ORDER BY x.due_at, x.work_item_id), array_agg(x.assignment_id ORDER BY x.due_at, x.work_item_id)
        INTO v_cached_due, v_cached_id
        FROM (SELECT r.due_at, r.work_item_id, r.assignment_id FROM rulesctl_sim.running r
              WHERE r.due_at >= v_t ORDER BY r.due_at, r.work_item_id LIMIT 32) x;
        v_cached := 1;
        v_bound := CASE WHEN cardinality(v_cached_due) = 32 THEN v_cached_due[32] ELSE 'infinity' END;
        v_setting := set_config('rulesctl_sim.cached_before', v_bound::text, false);
      END IF;
      IF v_t < v_bound AND v_cached_due[v_cached] = v_t THEN
        v_due := '{}';
        WHILE v_cached_due[v_cached] = v_t LOOP
          v_due := v_due || v_cached_id[v_cached];
          v_cached := v_cached + 1;
        END LOOP;
        v_next := v_cached_due[v_cached];        -- before or at the bound, so the earliest left
      ELSE                                       -- 32 rows due at once (or more): read them all
        SELECT array_agg(r.assignment_id ORDER BY r.work_item_id),
               (SELECT min(n.due_at) FROM rulesctl_sim.running n WHERE n.due_at > v_t)
        INTO v_due, v_next
        FROM rulesctl_sim.running r WHERE r.due_at = v_t;
        v_setting := set_config('rulesctl_sim.cached_before', '', false);
      END IF;
      v_setting := set_config('rulesctl_sim.next_done', coalesce(v_next, 'infinity')::text, false);
      FOREACH v_id IN ARRAY coalesce(v_due, '{}') LOOP
        IF EXISTS (SELECT 1 FROM public.assignments a WHERE a.id = v_id AND a.status IN ({active_statuses})) THEN
          v_result := public.complete_assignment(v_id);
        END IF;
      END LOOP;
      v_pending := v_pending + coalesce(cardinality(v_due), 0);
    END IF;
    -- Availability changes are walked one row at a time by key (seq follows time): a range on seq
    -- filtered by time would read every later row at each instant. Arrivals likewise, from
    -- batches of 256 (arrival_batch).
    WHILE v_change = v_t LOOP
      PERFORM public.set_staff_availability(v_change_request);
      s.next_availability := s.next_availability + 1;
      v_pending := v_pending + 1;
      SELECT a.at, a.request INTO v_change, v_change_request FROM rulesctl_sim.availability a
      WHERE a.seq = s.next_availability;
    END LOOP;
    WHILE v_arrival = v_t LOOP
      IF p_guarded THEN
        BEGIN
          v_result := public.auto_assign(v_arrival_request);
        EXCEPTION WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
          INSERT INTO rulesctl_sim.rejected VALUES (v_arrival_request ->> 'work_item_id', v_state, v_message);
        END;
      ELSE
        v_result := public.auto_assign(v_arrival_request);    -- an assignment: no query of its own
      END IF;
      s.next_arrival := s.next_arrival + 1;
      v_pending := v_pending + 1;
      IF s.next_arrival = v_batch_from + cardinality(v_batch_at) THEN
        v_batch_from := s.next_arrival;
        SELECT b.at, b.request INTO v_batch_at, v_batch_request FROM rulesctl_sim.arrival_batch(v_batch_from) b;
      END IF;
      v_arrival := v_batch_at[s.next_arrival - v_batch_from + 1];
      v_arrival_request := v_batch_request[s.next_arrival - v_batch_from + 1];
    END LOOP;
    IF v_sweep = v_t THEN
      PERFORM public.sla_check_and_escalate();
    END IF;
    -- Every minute, at the instants the replay visits; with nothing queued it has nothing to do.
    IF v_t >= s.next_fallback_at THEN
      IF current_setting('rulesctl_sim.queued')::integer > 0 THEN
        PERFORM public.process_stale_queue_items();
        s.next_fallback_at := date_trunc('minute', v_t) + s.fallback_every;
      END IF;
    END IF;
    IF s.next_snapshot_at = v_t THEN
      PERFORM public.capture_capacity_snapshot();
      s.next_snapshot_at := s.next_snapshot_at + interval '1 day';
    END IF;
    IF s.next_sample_at = v_t THEN
      INSERT INTO rulesctl_sim.samples (at, unit_id, capacity)
      SELECT v_t, u.id, public.capacity_check(u.id) FROM public.organizational_units u WHERE NOT u.retired;
      s.next_sample_at := s.next_sample_at + s.sample_every;
    END IF;
    s.events := s.events + 1;
    IF v_pending >= s.commit_every THEN
      UPDATE rulesctl_sim.state SET next_arrival = s.next_arrival, next_availability = s.next_availability,
        next_sample_at = s.next_sample_at, next_fallback_at = s.next_fallback_at,
        next_snapshot_at = s.next_snapshot_at, events = s.events, done_through = v_t;
      COMMIT;
      v_pending := 0;
    END IF;
  END LOOP;
  -- Every instant up to p_until has been visited, so every row due by then is handled: those rows
  -- go now, in one statement (the table kept to the work in hand keeps the trigger's insert cheap).
  DELETE FROM rulesctl_sim.running r WHERE r.due_at <= p_until;
  UPDATE rulesctl_sim.state SET next_arrival = s.next_arrival, next_availability = s.next_availability,
    next_sample_at = s.next_sample_at, next_fallback_at = s.next_fallback_at,
    next_snapshot_at = s.next_snapshot_at, events = s.events, done_through = p_until;
END
$fn$;
