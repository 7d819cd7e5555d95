"""The lean calendar walk (calendar_add_working_times) and the instants a new assignment starts
with (sla_start_instants) give exactly what the engine gave before them, to the microsecond.

The reference is the walk the engine shipped with, kept here as a temporary function: it reads
calendar_definition and visits every period of every day. Both run on calendars chosen for the
awkward cases: daylight-saving changes (Europe/Berlin, Europe/London, America/New_York), several periods a
day with a night shift either side of midnight, public holidays and closures, a 24x7 desk, and
starts and minutes with fractions of a second (paused minutes, millisecond arrivals).
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from engine_calls import invalid, scalar

pytestmark = pytest.mark.db

EXTRA_CALENDARS = """
  - id: berlin-business
    name: Berlin office (Monday to Friday)
    timezone: Europe/Berlin
    working_hours:
      monday:    ["08:00-12:00", "13:00-17:00"]
      tuesday:   ["08:00-12:00", "13:00-17:00"]
      wednesday: ["08:00-12:00", "13:00-17:00"]
      thursday:  ["08:00-12:00", "13:00-17:00"]
      friday:    ["08:00-14:00"]
    public_holidays:
      country: DE
      years: [2026, 2027]
    closures:
      - from: 2027-03-29
        to: 2027-04-02
        reason: Move

  - id: newyork-nights
    name: New York night shift, either side of midnight
    timezone: America/New_York
    working_hours:
      sunday:    ["22:00-24:00"]
      monday:    ["00:00-06:00", "22:00-24:00"]
      tuesday:   ["00:00-06:00", "22:00-24:00"]
      wednesday: ["00:00-06:00", "22:00-24:00"]
      thursday:  ["00:00-06:00", "22:00-24:00"]
      friday:    ["00:00-06:00"]
    closures:
      - date: 2027-03-15
        reason: Training

  - id: london-24x7
    name: London service desk, around the clock
    timezone: Europe/London
    working_hours: {monday: ["00:00-24:00"], tuesday: ["00:00-24:00"], wednesday: ["00:00-24:00"],
                    thursday: ["00:00-24:00"], friday: ["00:00-24:00"], saturday: ["00:00-24:00"],
                    sunday: ["00:00-24:00"]}
"""
CALENDARS = ("riyadh-business", "always-on", "berlin-business", "newyork-nights", "london-24x7")
TYPE_CALENDARS = {"ticket": "london-24x7", "translation_request": "berlin-business", "survey_task": "newyork-nights"}

# The walk and the count of working minutes as the engine shipped them (before the lean walk):
# every period of every day, the calendar read from calendar_definition.
REFERENCE_WALK = """
CREATE FUNCTION pg_temp.reference_walk(p_calendar_id text, p_start timestamptz, p_minutes numeric)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  v_calendar record := calendar_definition(p_calendar_id);
  v_timezone text := v_calendar.timezone;
  v_periods integer[] := v_calendar.periods;
  v_days_off date[] := v_calendar.days_off;
  v_last integer := coalesce(array_length(v_periods, 1), 0);
  v_remaining numeric := p_minutes;
  v_day date := (p_start AT TIME ZONE v_timezone)::date;
  v_weekday integer := extract(isodow FROM v_day)::integer;
  v_from timestamptz;
  v_to timestamptz;
  v_length numeric;
BEGIN
  IF p_minutes <= 0 THEN
    RETURN p_start;
  END IF;
  FOR n IN 0..3660 LOOP
    IF NOT v_day = ANY (v_days_off) THEN
      FOR i IN 1 .. v_last BY 3 LOOP
        CONTINUE WHEN v_periods[i] <> v_weekday;
        v_from := greatest((v_day + make_interval(mins => v_periods[i + 1])) AT TIME ZONE v_timezone, p_start);
        v_to := (v_day + make_interval(mins => v_periods[i + 2])) AT TIME ZONE v_timezone;
        CONTINUE WHEN v_from >= v_to;
        v_length := extract(epoch FROM v_to - v_from) / 60;
        IF v_length >= v_remaining THEN
          RETURN v_from + make_interval(secs => v_remaining * 60);
        END IF;
        v_remaining := v_remaining - v_length;
      END LOOP;
    END IF;
    v_day := v_day + 1;
    v_weekday := v_weekday % 7 + 1;
  END LOOP;
  RETURN NULL;
END
$fn$;

CREATE FUNCTION pg_temp.reference_between(p_calendar_id text, p_from timestamptz, p_to timestamptz)
RETURNS numeric LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  v_calendar record := calendar_definition(p_calendar_id);
  v_timezone text := v_calendar.timezone;
  v_periods integer[] := v_calendar.periods;
  v_days_off date[] := v_calendar.days_off;
  v_count integer := coalesce(array_length(v_periods, 1), 0);
  v_day date := (p_from AT TIME ZONE v_timezone)::date;
  v_weekday integer := extract(isodow FROM v_day)::integer;
  v_last date := (p_to AT TIME ZONE v_timezone)::date;
  v_total numeric := 0;
  v_from timestamptz;
  v_to timestamptz;
BEGIN
  IF p_to <= p_from THEN
    RETURN 0;
  END IF;
  WHILE v_day <= v_last LOOP
    IF NOT v_day = ANY (v_days_off) THEN
      FOR i IN 1 .. v_count BY 3 LOOP
        CONTINUE WHEN v_periods[i] <> v_weekday;
        v_from := greatest((v_day + make_interval(mins => v_periods[i + 1])) AT TIME ZONE v_timezone, p_from);
        v_to := least((v_day + make_interval(mins => v_periods[i + 2])) AT TIME ZONE v_timezone, p_to);
        IF v_to > v_from THEN
          v_total := v_total + extract(epoch FROM v_to - v_from) / 60;
        END IF;
      END LOOP;
    END IF;
    v_day := v_day + 1;
    v_weekday := v_weekday % 7 + 1;
  END LOOP;
  RETURN v_total;
END
$fn$;
"""


@pytest.fixture
def walk(database_url, traversable_tmp_path, repo_root):
    """A connection to the shipped engine with the extra calendars (three types moved onto them)
    and the reference walk."""
    from engine.migrate.apply import apply
    from engine.project import build

    rules = traversable_tmp_path / "rules"
    shutil.copytree(repo_root / "rules", rules)
    (rules / "calendars.yaml").write_text((rules / "calendars.yaml").read_text() + EXTRA_CALENDARS)
    policy, objects = build(rules)
    apply(database_url, objects, policy, rules_dir=rules)
    with psycopg.connect(database_url, autocommit=True) as connection:
        for work_item_type, calendar_id in TYPE_CALENDARS.items():
            connection.execute("UPDATE sla_configs SET calendar_id = %s WHERE work_item_type = %s",
                               [calendar_id, work_item_type])
        connection.execute(REFERENCE_WALK)
        yield connection


def cases(seed: int, count: int) -> list[tuple[str, datetime, float]]:
    """(calendar, start, minutes): starts around the 2027 daylight-saving changes and holidays,
    with milliseconds; minutes from none to three weeks, some with fractions (paused time)."""
    rng = random.Random(seed)
    hot_spots = [datetime(2027, 3, 14, tzinfo=UTC), datetime(2027, 3, 28, tzinfo=UTC),
                 datetime(2027, 10, 31, tzinfo=UTC), datetime(2027, 11, 7, tzinfo=UTC),
                 datetime(2026, 12, 24, tzinfo=UTC), datetime(2027, 2, 20, tzinfo=UTC)]
    out = []
    for _ in range(count):
        start = rng.choice(hot_spots) + timedelta(minutes=rng.uniform(-4 * 1440, 2 * 1440))
        start = start.replace(microsecond=start.microsecond // 1000 * 1000)
        minutes = rng.choice([0, 1, 15, 60, 240, 480, 600, 1440, 2400, 4800, 7200, 20160])
        if rng.random() < 0.4:
            minutes = round(minutes * rng.uniform(0.05, 1.5) + rng.uniform(0, 90), 6)
        out.append((rng.choice(CALENDARS), start, minutes))
    return out


def load(conn, rows) -> None:
    conn.execute("CREATE TEMP TABLE cases (n int, calendar_id text, start timestamptz, minutes numeric)")
    with conn.cursor().copy("COPY cases FROM STDIN") as copy:
        for n, r in enumerate(rows):
            copy.write_row((n, *r))


def test_the_lean_walk_gives_the_shipped_walks_instant_in_every_case(walk):
    load(walk, cases(seed=19, count=2500))
    differ = walk.execute("""
        SELECT c.calendar_id, c.start, c.minutes, w.expected, w.got
        FROM cases c CROSS JOIN LATERAL (
          SELECT pg_temp.reference_walk(c.calendar_id, c.start, c.minutes) AS expected,
                 calendar_add_working_time(c.calendar_id, c.start, c.minutes) AS got) w
        WHERE w.got IS DISTINCT FROM w.expected
    """).fetchall()
    assert differ == []
    # The cases reach what they are meant to: every calendar, starts inside and outside working
    # time, walks across a daylight-saving change.
    assert scalar(walk, "SELECT count(DISTINCT calendar_id) FROM cases") == len(CALENDARS)
    assert scalar(walk, "SELECT count(*) FROM cases WHERE calendar_id = 'london-24x7' AND start < "
                        "'2027-03-28 01:00+00' AND pg_temp.reference_walk(calendar_id, start, minutes)"
                        " > '2027-03-28 01:00+00'") > 0


def test_several_targets_walked_at_once_are_each_the_single_walks(walk):
    load(walk, cases(seed=7, count=600))
    # Targets in any order, repeated, none, and negative: each as if walked alone.
    differ = walk.execute("""
        WITH t AS (
          SELECT c.n, c.calendar_id, c.start,
                 ARRAY[c.minutes, c.minutes * 0.75, 0, c.minutes + 61.5, c.minutes, -5] AS targets
          FROM cases c)
        SELECT t.n, k, t.targets[k]
        FROM t CROSS JOIN LATERAL (SELECT calendar_add_working_times(t.calendar_id, t.start, t.targets) AS due) w
        CROSS JOIN generate_subscripts(t.targets, 1) AS k
        WHERE w.due[k] IS DISTINCT FROM pg_temp.reference_walk(t.calendar_id, t.start, t.targets[k])
           OR cardinality(w.due) <> cardinality(t.targets)
    """).fetchall()
    assert differ == []
    start = datetime(2027, 1, 5, 7, 0, tzinfo=UTC)
    assert scalar(walk, "SELECT calendar_add_working_times('always-on', %s, '{}')", start) == []
    assert scalar(walk, "SELECT calendar_add_working_times('always-on', %s, NULL)", start) is None


def test_the_walks_errors_are_the_shipped_ones(walk):
    start = datetime(2027, 1, 5, 7, 0, tzinfo=UTC)
    with invalid("calendar_id") as caught:
        scalar(walk, "SELECT calendar_add_working_times('no-such-calendar', %s, ARRAY[0])", start)
    assert "unknown business calendar 'no-such-calendar'" in str(caught.value)
    # No minutes to walk (a NULL sum) is the shipped walk's ten-year error, not a silent NULL.
    with invalid("calendar_id") as caught:
        scalar(walk, "SELECT calendar_add_working_time('always-on', %s, NULL)", start)
    assert "no working time in the ten years after" in str(caught.value)
    with invalid("calendar_id"):
        scalar(walk, "SELECT calendar_add_working_times('always-on', %s, ARRAY[60, NULL])", start)
    # Nothing to walk from a NULL start is NULL, as before; something to walk is the error.
    assert scalar(walk, "SELECT calendar_add_working_time('always-on', NULL, 0)") is None
    with invalid("calendar_id"):
        scalar(walk, "SELECT calendar_add_working_time('always-on', NULL, 5)")


def test_a_new_assignments_start_instants_are_its_level_and_response_functions(walk):
    load(walk, cases(seed=5, count=300))
    # Fresh arrivals (assigned as they arrive) and queued ones (assigned later, some paused),
    # for every type and priority of the matrix.
    differ = walk.execute("""
        WITH s AS (
          SELECT c.n, k.work_item_type, k.priority, c.start AS arrived_at,
                 CASE WHEN c.n % 3 = 0 THEN c.start ELSE c.start + (c.n % 500) * interval '7 minutes 3.5 seconds' END
                   AS assigned_at,
                 CASE WHEN c.n % 5 = 1 THEN (c.n % 97) * 1.25 ELSE 0 END AS paused
          FROM cases c CROSS JOIN LATERAL (
            SELECT * FROM sla_configs ORDER BY work_item_type, priority OFFSET c.n % 16 LIMIT 1) k)
        SELECT s.n FROM s
        CROSS JOIN LATERAL sla_start_instants(s.work_item_type, s.priority, s.arrived_at, s.paused, s.assigned_at) i
        WHERE i.level_1_due_at IS DISTINCT FROM
                sla_level_due_at(s.work_item_type, s.priority, s.arrived_at, s.paused, 1)
           OR i.response_deadline IS DISTINCT FROM
                sla_response_deadline_for(s.work_item_type, s.priority, s.assigned_at, 0)
           OR i.next_check_at IS DISTINCT FROM least(i.level_1_due_at, i.response_deadline)
           OR i.level_1_due_at IS NULL OR i.response_deadline IS NULL
    """).fetchall()
    assert differ == []


def test_start_instants_without_a_first_level_or_a_target(walk):
    start = datetime(2027, 1, 5, 7, 0, tzinfo=UTC)
    walk.execute("DELETE FROM escalation_levels WHERE chain_id = 'service-desk' AND level = 1")
    level, response, first_check = walk.execute("SELECT * FROM sla_start_instants('ticket', 'urgent', %s, 0, %s)",
                                                [start, start]).fetchone()
    assert level is None                                       # the chain has no level 1
    assert response == first_check == start + timedelta(minutes=15)   # the response clock still runs
    walk.execute("DELETE FROM sla_configs WHERE work_item_type = 'ticket' AND priority = 'urgent'")
    assert walk.execute("SELECT * FROM sla_start_instants('ticket', 'urgent', %s, 0, %s)",
                        [start, start]).fetchone() == (None, None, None)


def test_assignments_start_with_the_response_clocks_own_instants(walk):
    """create_assignment records the response deadline and first check itself (the start
    trigger is then not called); a row inserted without them still gets them from the trigger.
    Both as sla_response_clock gives them, for fresh and queued items across a DST change."""
    from engine_calls import at, call, uid

    def instants(work_item_id):
        return walk.execute("""
            SELECT a.response_deadline, a.next_check_at,
                   sla_response_deadline_for(a.work_item_type, a.priority, a.assigned_at, 0),
                   least(sla_level_due_at(a.work_item_type, a.priority, a.arrived_at, a.paused_working_minutes, 1),
                         sla_response_deadline_for(a.work_item_type, a.priority, a.assigned_at, 0))
            FROM assignments a WHERE a.work_item_id = %s""", [work_item_id]).fetchone()

    t0 = datetime(2027, 3, 26, 15, 30, tzinfo=UTC)                # Friday before the spring change
    at(walk, t0)
    for n, unit in ((61, "unit-translation"), (62, "unit-data-requests")):
        call(walk, "upsert_staff_profile", {"id": uid(n), "unit_id": unit, "full_name": f"S{n}", "role": "staff",
                                            "wip_limit": 1})
    fresh = call(walk, "auto_assign", {"work_item_id": "tr-1", "work_item_type": "translation_request",
                                       "priority": "normal"})
    response, first_check, expected_response, expected_check = instants("tr-1")
    assert (response, first_check) == (expected_response, expected_check)
    assert call(walk, "auto_assign", {"work_item_id": "tr-2", "work_item_type": "translation_request",
                                      "priority": "urgent"})["status"] == "queued"
    at(walk, t0 + timedelta(days=3, hours=1, seconds=7))         # after the change: the queued one starts
    walk.execute("SELECT complete_assignment(%s)", [fresh["assignment_id"]])
    response, first_check, expected_response, expected_check = instants("tr-2")
    assert (response, first_check) == (expected_response, expected_check)
    assert response > t0 + timedelta(days=3)                       # its response clock started on assignment
    # Inserted by hand with a later first check and no response deadline: the trigger runs.
    walk.execute("""INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id, unit_id,
                                             arrived_at, assigned_at, sla_deadline, next_check_at)
                    VALUES ('dr-3', 'data_request', 'high', %s, 'unit-data-requests', %s, %s, %s, %s)""",
                 [uid(62), t0, t0, t0 + timedelta(days=9), t0 + timedelta(days=8)])
    response, first_check, expected_response, _ = instants("dr-3")
    assert response == first_check == expected_response


def test_an_arrivals_instants_are_its_deadline_and_start_instants(walk):
    load(walk, cases(seed=23, count=300))
    differ = walk.execute("""
        WITH s AS (
          SELECT c.n, k.work_item_type, k.priority, c.start
          FROM cases c CROSS JOIN LATERAL (
            SELECT * FROM sla_configs ORDER BY work_item_type, priority OFFSET c.n % 16 LIMIT 1) k)
        SELECT s.n FROM s
        CROSS JOIN LATERAL sla_arrival_instants(s.work_item_type, s.priority, s.start) a
        CROSS JOIN LATERAL sla_start_instants(s.work_item_type, s.priority, s.start, 0, s.start) i
        WHERE a.sla_deadline IS DISTINCT FROM calculate_sla_deadline_fn(s.work_item_type, s.priority, s.start)
           OR (a.next_check_at, a.response_deadline) IS DISTINCT FROM (i.next_check_at, i.response_deadline)
           OR a.next_check_at IS NULL
    """).fetchall()
    assert differ == []
    # The errors are calculate_sla_deadline_fn's; a chain without level 1 checks at the response deadline.
    start = datetime(2027, 1, 5, 7, 0, tzinfo=UTC)
    walk.execute("DELETE FROM escalation_levels WHERE chain_id = 'service-desk' AND level = 1")
    deadline, first_check, response = walk.execute(
        "SELECT * FROM sla_arrival_instants('ticket', 'urgent', %s)", [start]).fetchone()
    assert (deadline, first_check, response) == (start + timedelta(hours=2), response, start + timedelta(minutes=15))
    walk.execute("DELETE FROM sla_configs WHERE work_item_type = 'ticket' AND priority = 'urgent'")
    with invalid("work_item_type") as caught:
        scalar(walk, "SELECT sla_arrival_instants('ticket', 'urgent', %s)", start)
    assert "the SLA matrix has no target for ticket/urgent" in str(caught.value)


def test_create_assignment_takes_the_instants_its_caller_has(walk):
    """Given sla_arrival_instants' first check and response deadline, create_assignment records
    them; without them it works them out (sla_start_instants): the same row either way."""
    from engine_calls import at, call, uid

    start = datetime(2027, 3, 26, 15, 30, 12, 345000, tzinfo=UTC)
    at(walk, start)
    call(walk, "upsert_staff_profile", {"id": uid(71), "unit_id": "unit-translation", "full_name": "T",
                                        "role": "staff", "wip_limit": 5})
    for work_item_id, given in (("tr-given", True), ("tr-worked-out", False)):
        walk.execute("""
            SELECT create_assignment(
                     jsonb_populate_record(NULL::assignment_queue, jsonb_build_object(
                       'id', gen_random_uuid(), 'work_item_id', %(w)s::text, 'work_item_type', 'translation_request',
                       'priority', 'normal', 'target_unit_id', 'unit-translation', 'include_subtree', false,
                       'capacity_weight', 1, 'min_proficiency_rank', 0, 'required_skills', '[]'::jsonb,
                       'when_no_capacity', 'queue', 'paused_working_minutes', 0, 'arrived_at', %(t)s::timestamptz,
                       'sla_deadline', a.sla_deadline)),
                     %(staff)s::uuid, '{}'::jsonb,
                     CASE WHEN %(given)s::boolean THEN a.next_check_at END,
                     CASE WHEN %(given)s::boolean THEN a.response_deadline END)
            FROM sla_arrival_instants('translation_request', 'normal', %(t)s) a
        """, {"w": work_item_id, "t": start, "staff": uid(71), "given": given})
    rows = walk.execute("SELECT work_item_id, sla_deadline, next_check_at, response_deadline FROM assignments"
                        " ORDER BY work_item_id").fetchall()
    assert [r[0] for r in rows] == ["tr-given", "tr-worked-out"]
    assert rows[0][1:] == rows[1][1:]
    assert None not in rows[0]


def test_working_minutes_between_two_moments_are_the_shipped_counts(walk):
    load(walk, cases(seed=29, count=1500))
    # From each start to its walked end, and to moments a little before and after it.
    differ = walk.execute("""
        SELECT c.n, w.got, w.expected
        FROM cases c
        CROSS JOIN LATERAL (SELECT pg_temp.reference_walk(c.calendar_id, c.start, c.minutes) AS until) e
        CROSS JOIN LATERAL unnest(ARRAY[e.until, e.until - interval '95 minutes 1.5 seconds',
                                        e.until + interval '26 hours', c.start - interval '1 hour']) AS t(upto)
        CROSS JOIN LATERAL (
          SELECT calendar_working_minutes_between(c.calendar_id, c.start, t.upto) AS got,
                 pg_temp.reference_between(c.calendar_id, c.start, t.upto) AS expected) w
        WHERE w.got IS DISTINCT FROM w.expected
    """).fetchall()
    assert differ == []
    assert scalar(walk, "SELECT count(*) FROM cases WHERE calendar_working_minutes_between(calendar_id, start,"
                        " start + interval '3 days') > 0") > 1000
