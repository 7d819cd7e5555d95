"""SLA clocks on business calendars, against a real PostgreSQL with the shipped policy.

Expected deadlines are worked out by hand from the policy, to the minute:
rules/calendars.yaml: riyadh-business is Sunday-Thursday 08:00-16:00 Asia/Riyadh (UTC+3, no
daylight saving) with Saudi public holidays 2026-2027 (Founding Day 2027-02-22 among them) and
closures 2026-12-31 and 2027-03-21..22; always-on is 24x7.
rules/sla.yaml: translation_request urgent 8h / normal 40h resolution on riyadh-business;
data_request urgent 4h; ticket urgent 2h / normal 24h on always-on; pause_statuses [on_hold].
Daylight saving is tested on a policy variant with Europe/Berlin calendars.
Time moves with the engine clock (rulesctl.now), never by sleeping.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import psycopg
import pytest
from engine_calls import at, call, invalid, scalar, uid

pytestmark = pytest.mark.db

RIYADH = timezone(timedelta(hours=3))
BERLIN = ZoneInfo("Europe/Berlin")


TR_A, TR_B = uid(21), uid(22)
DESK_A = uid(11)
HR_A = uid(31)


# ---------------------------------------------------------------------------------------- helpers

def staff(conn, staff_id, unit_id, **fields):
    payload = {"id": staff_id, "unit_id": unit_id, "full_name": f"Staff {staff_id[-4:]}", **fields}
    return call(conn, "upsert_staff_profile", payload)


def assign(conn, work_item_id, work_item_type="ticket", priority="normal", **fields):
    payload = {"work_item_id": work_item_id, "work_item_type": work_item_type, "priority": priority, **fields}
    return call(conn, "auto_assign", payload)


def deadline(conn, work_item_type, priority, start: datetime) -> datetime:
    return scalar(conn, "SELECT calculate_sla_deadline_fn(%s, %s, %s)", work_item_type, priority, start)


def row(conn, assignment_id) -> dict:
    return scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE id = %s", assignment_id)


def ts(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def set_status(conn, assignment_id, status) -> None:
    conn.execute("UPDATE assignments SET status = %s WHERE id = %s", [status, assignment_id])



def counts(conn) -> dict:
    return {t: scalar(conn, f"SELECT count(*) FROM {t}")
            for t in ("assignments", "assignment_queue", "escalation_events", "assignment_audit")}


# ------------------------------------------------------------------- an independent reference clock

RIYADH_DAYS_OFF = set(holidays.SA(years=[2026, 2027])) | {date(2026, 12, 31), date(2027, 3, 21), date(2027, 3, 22)}
RIYADH_WEEK = {6: (8, 16), 0: (8, 16), 1: (8, 16), 2: (8, 16), 3: (8, 16)}   # Python weekday: Mon=0 .. Sun=6


def reference_deadline(start: datetime, minutes: int, calendar: str) -> datetime:
    """Working time added period by period in Python (zoneinfo), independent of the SQL."""
    if calendar == "always-on":
        return start + timedelta(minutes=minutes)
    tz = ZoneInfo("Asia/Riyadh")
    remaining = timedelta(minutes=minutes)
    day = start.astimezone(tz).date()
    while True:
        hours = RIYADH_WEEK.get(day.weekday())
        if hours and day not in RIYADH_DAYS_OFF:
            opens = datetime(day.year, day.month, day.day, hours[0], tzinfo=tz)
            closes = datetime(day.year, day.month, day.day, hours[1], tzinfo=tz)
            begin = max(opens, start)
            if closes > begin:
                if closes - begin >= remaining:
                    return (begin + remaining).astimezone(UTC)
                remaining -= closes - begin
        day += timedelta(days=1)


def test_reference_days_off_equal_the_compiled_calendar(conn):
    compiled = scalar(conn, "SELECT days_off FROM calendar_definition('riyadh-business')")
    assert set(compiled) == RIYADH_DAYS_OFF
    assert date(2027, 2, 22) in compiled                        # Founding Day
    assert scalar(conn, "SELECT days_off FROM calendar_definition('always-on')") == []


# ---------------------------------------------------------------------------------------- deadlines

def test_deadline_skips_the_weekend(conn):
    # Thursday 2027-01-07 14:00: 2h left on Thursday, Friday and Saturday off, 6h on Sunday.
    start = datetime(2027, 1, 7, 14, 0, tzinfo=RIYADH)
    assert deadline(conn, "translation_request", "urgent", start) == datetime(2027, 1, 10, 14, 0, tzinfo=RIYADH)
    # data_request urgent is 4h: 2h Thursday + 2h Sunday.
    assert deadline(conn, "data_request", "urgent", start) == datetime(2027, 1, 10, 10, 0, tzinfo=RIYADH)
    # Arriving on Friday evening, the clock starts on Sunday 08:00.
    friday = datetime(2027, 1, 8, 19, 30, tzinfo=RIYADH)
    assert deadline(conn, "translation_request", "urgent", friday) == datetime(2027, 1, 10, 16, 0, tzinfo=RIYADH)
    # Exactly filling a day ends at closing time, not at the next morning.
    sunday = datetime(2027, 1, 10, 8, 0, tzinfo=RIYADH)
    assert deadline(conn, "translation_request", "urgent", sunday) == datetime(2027, 1, 10, 16, 0, tzinfo=RIYADH)
    # 40h = five full working days: Sunday 08:00 -> Thursday 16:00.
    assert deadline(conn, "translation_request", "normal", sunday) == datetime(2027, 1, 14, 16, 0, tzinfo=RIYADH)
    # One minute later it runs into the next week (Sunday 08:01).
    assert (deadline(conn, "translation_request", "normal", sunday + timedelta(minutes=1))
            == datetime(2027, 1, 17, 8, 1, tzinfo=RIYADH))


def test_deadline_skips_a_public_holiday(conn):
    # Sunday 2027-02-21 12:00: 4h on Sunday; Monday 2027-02-22 is Founding Day; 4h on Tuesday.
    start = datetime(2027, 2, 21, 12, 0, tzinfo=RIYADH)
    assert deadline(conn, "translation_request", "urgent", start) == datetime(2027, 2, 23, 12, 0, tzinfo=RIYADH)
    # The same weekday a week earlier is a working day: the holiday, not Monday, made the difference.
    week_before = datetime(2027, 2, 14, 12, 0, tzinfo=RIYADH)
    assert (deadline(conn, "translation_request", "urgent", week_before)
            == datetime(2027, 2, 15, 12, 0, tzinfo=RIYADH))
    # Arriving on the holiday itself: the clock starts on Tuesday 08:00.
    holiday = datetime(2027, 2, 22, 9, 0, tzinfo=RIYADH)
    assert deadline(conn, "data_request", "urgent", holiday) == datetime(2027, 2, 23, 12, 0, tzinfo=RIYADH)
    # The always-on calendar keeps no holidays.
    assert deadline(conn, "ticket", "urgent", holiday) == holiday + timedelta(hours=2)


def test_deadline_skips_closures(conn):
    # Wednesday 2026-12-30 12:00: 4h on Wednesday; Thursday 2026-12-31 closed; weekend; 4h on Sunday.
    start = datetime(2026, 12, 30, 12, 0, tzinfo=RIYADH)
    assert deadline(conn, "translation_request", "urgent", start) == datetime(2027, 1, 3, 12, 0, tzinfo=RIYADH)
    # A closure range: Thursday 2027-03-18 12:00: 4h Thursday; weekend; Sunday 21 and Monday 22 closed.
    start = datetime(2027, 3, 18, 12, 0, tzinfo=RIYADH)
    assert deadline(conn, "translation_request", "urgent", start) == datetime(2027, 3, 23, 12, 0, tzinfo=RIYADH)


def test_working_minutes_between_counts_only_working_time(conn):
    def between(calendar, a, b):
        return scalar(conn, "SELECT calendar_working_minutes_between(%s, %s, %s)", calendar, a, b)

    thursday = datetime(2027, 1, 7, 14, 0, tzinfo=RIYADH)
    assert between("riyadh-business", thursday, datetime(2027, 1, 10, 9, 30, tzinfo=RIYADH)) == 120 + 90
    # Across Founding Day: only Sunday afternoon and Tuesday morning.
    assert between("riyadh-business", datetime(2027, 2, 21, 15, 0, tzinfo=RIYADH),
                   datetime(2027, 2, 23, 9, 0, tzinfo=RIYADH)) == 60 + 60
    assert between("always-on", thursday, thursday + timedelta(days=3, minutes=7)) == 3 * 1440 + 7
    assert between("riyadh-business", thursday, thursday - timedelta(hours=1)) == 0


@pytest.mark.parametrize("start", [
    datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH),      # Tuesday morning
    datetime(2027, 1, 7, 15, 45, tzinfo=RIYADH),     # Thursday, late
    datetime(2027, 2, 18, 9, 17, tzinfo=RIYADH),     # before Founding Day
    datetime(2027, 3, 4, 12, 0, tzinfo=RIYADH),      # into Eid al-Fitr 2027 and the census closure
    datetime(2026, 12, 24, 16, 0, tzinfo=RIYADH),    # at closing time, into the year-end closure
])
def test_every_matrix_entry_matches_a_reference_clock(conn, start):
    configs = conn.execute("SELECT work_item_type::text, priority::text, resolution_minutes, calendar_id"
                           " FROM sla_configs ORDER BY 1, 2").fetchall()
    assert len(configs) == 16
    expected_minutes = {("ticket", "urgent"): 120, ("ticket", "low"): 72 * 60,
                        ("translation_request", "normal"): 40 * 60, ("data_request", "low"): 120 * 60,
                        ("survey_task", "high"): 8 * 60}
    for (kind, priority), minutes in expected_minutes.items():
        assert (kind, priority, minutes) in [(c[0], c[1], c[2]) for c in configs]
    for kind, priority, minutes, calendar in configs:
        assert deadline(conn, kind, priority, start) == reference_deadline(start, minutes, calendar), \
            f"{kind}/{priority} from {start}"


# ---------------------------------------------------------------------------------------- the clock of an item

def test_assignment_carries_the_deadline_from_its_arrival(conn):
    start = datetime(2027, 1, 7, 14, 0, tzinfo=RIYADH)
    at(conn, start)
    staff(conn, TR_A, "unit-translation")
    result = assign(conn, "tr-1", "translation_request", "urgent")
    assert result["status"] == "assigned"
    assert ts(result["sla_deadline"]) == datetime(2027, 1, 10, 14, 0, tzinfo=RIYADH)
    a = row(conn, result["assignment_id"])
    assert ts(a["arrived_at"]) == start and ts(a["assigned_at"]) == start
    assert ts(a["sla_deadline"]) == datetime(2027, 1, 10, 14, 0, tzinfo=RIYADH)
    # The first level of the standard chain (75% of 8h = 6h): 2h Thursday + 4h Sunday. The monitor
    # looks first at the response deadline (1h: Thursday 15:00), the earlier of the two.
    assert scalar(conn, "SELECT sla_next_level_due_at(a) FROM assignments a WHERE id = %s",
                  result["assignment_id"]) == datetime(2027, 1, 10, 12, 0, tzinfo=RIYADH)
    assert ts(a["next_check_at"]) == ts(a["response_deadline"]) == datetime(2027, 1, 7, 15, 0, tzinfo=RIYADH)
    assert a["escalation_level"] == 0


def test_time_in_the_queue_counts(conn):
    t0 = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)      # Tuesday
    at(conn, t0)
    staff(conn, TR_A, "unit-translation", wip_limit=1)
    first = assign(conn, "tr-first", "translation_request", "normal")
    assert first["status"] == "assigned"

    at(conn, t0 + timedelta(minutes=30))
    queued = assign(conn, "tr-waiting", "translation_request", "urgent")
    assert queued["status"] == "queued"
    # Arrived Tuesday 10:30: 8h of working time is Tuesday 10:30-16:00 (5.5h) + Wednesday 08:00-10:30.
    expected = datetime(2027, 1, 6, 10, 30, tzinfo=RIYADH)
    assert ts(queued["sla_deadline"]) == expected
    assert ts(scalar(conn, "SELECT sla_deadline FROM assignment_queue WHERE id = %s", queued["queue_id"])) == expected

    # A working day later the first item is done; the queued one is handed over with its clock running.
    freed = datetime(2027, 1, 6, 9, 0, tzinfo=RIYADH)
    at(conn, freed)
    conn.execute("SELECT complete_assignment(%s)", [first["assignment_id"]])
    a = scalar(conn, "SELECT to_jsonb(a) FROM assignments a WHERE work_item_id = 'tr-waiting'")
    assert a["status"] == "assigned" and a["assignee_id"] == TR_A
    assert ts(a["arrived_at"]) == t0 + timedelta(minutes=30)
    assert ts(a["assigned_at"]) == freed
    assert ts(a["sla_deadline"]) == expected            # not 8 working hours from the hand-over
    # The 75% level (6h from arrival): Tuesday 5.5h + Wednesday 0.5h -> Wednesday 08:30 -- already due.
    assert ts(a["next_check_at"]) == datetime(2027, 1, 6, 8, 30, tzinfo=RIYADH)
    assert scalar(conn, "SELECT count(*) FROM assignment_queue") == 0
    # auto_assign again for the same item reports the same deadline (idempotent per active item).
    again = assign(conn, "tr-waiting", "translation_request", "urgent")
    assert ts(again["sla_deadline"]) == expected


def test_pause_pushes_the_deadline_by_the_working_time_paused(conn):
    sunday = datetime(2027, 1, 10, 8, 0, tzinfo=RIYADH)
    at(conn, sunday)
    staff(conn, TR_A, "unit-translation")
    result = assign(conn, "tr-paused", "translation_request", "urgent")
    aid = result["assignment_id"]
    assert ts(result["sla_deadline"]) == datetime(2027, 1, 10, 16, 0, tzinfo=RIYADH)

    at(conn, sunday + timedelta(hours=1))
    set_status(conn, aid, "in_progress")
    assert row(conn, aid)["paused_at"] is None

    at(conn, sunday + timedelta(hours=2))                 # Sunday 10:00: on hold
    set_status(conn, aid, "on_hold")
    a = row(conn, aid)
    assert ts(a["paused_at"]) == sunday + timedelta(hours=2)
    assert a["next_check_at"] is None                      # the monitor does not look at paused work

    # Resumed Monday 09:00: paused Sunday 10:00-16:00 (360) + Monday 08:00-09:00 (60) of working time.
    monday = datetime(2027, 1, 11, 9, 0, tzinfo=RIYADH)
    at(conn, monday)
    set_status(conn, aid, "in_progress")
    a = row(conn, aid)
    assert a["paused_at"] is None
    assert float(a["paused_working_minutes"]) == 420
    # 2h were used before the pause; the remaining 6h run from Monday 09:00.
    assert ts(a["sla_deadline"]) == datetime(2027, 1, 11, 15, 0, tzinfo=RIYADH)
    # The 75% level (6h of work) moves the same way: 4h after the resume.
    assert ts(a["next_check_at"]) == datetime(2027, 1, 11, 13, 0, tzinfo=RIYADH)

    # A second pause adds up: on hold Monday 10:00 to 11:30 (90 working minutes).
    at(conn, datetime(2027, 1, 11, 10, 0, tzinfo=RIYADH))
    set_status(conn, aid, "on_hold")
    at(conn, datetime(2027, 1, 11, 11, 30, tzinfo=RIYADH))
    set_status(conn, aid, "in_progress")
    a = row(conn, aid)
    assert float(a["paused_working_minutes"]) == 510
    # Worked Sunday 08:00-10:00, Monday 09:00-10:00 and 11:30-16:00 (7.5h): 30 min left on Tuesday.
    assert ts(a["sla_deadline"]) == datetime(2027, 1, 12, 8, 30, tzinfo=RIYADH)


def test_pause_over_a_weekend_costs_only_working_time(conn):
    thursday = datetime(2027, 1, 7, 12, 0, tzinfo=RIYADH)
    at(conn, thursday)
    staff(conn, TR_A, "unit-translation")
    aid = assign(conn, "tr-weekend", "translation_request", "urgent")["assignment_id"]
    # Deadline without a pause: 4h Thursday + 4h Sunday -> Sunday 12:00.
    assert ts(row(conn, aid)["sla_deadline"]) == datetime(2027, 1, 10, 12, 0, tzinfo=RIYADH)
    at(conn, datetime(2027, 1, 7, 15, 0, tzinfo=RIYADH))          # on hold Thursday 15:00
    set_status(conn, aid, "on_hold")
    at(conn, datetime(2027, 1, 9, 18, 0, tzinfo=RIYADH))          # resumed on Saturday evening
    set_status(conn, aid, "in_progress")
    a = row(conn, aid)
    assert float(a["paused_working_minutes"]) == 60                # only Thursday 15:00-16:00 was working time
    assert ts(a["sla_deadline"]) == datetime(2027, 1, 10, 13, 0, tzinfo=RIYADH)


def test_pause_on_the_24x7_calendar_pushes_by_elapsed_time(conn):
    t0 = datetime(2027, 1, 8, 22, 0, tzinfo=RIYADH)               # Friday night: the desk never closes
    at(conn, t0)
    staff(conn, DESK_A, "unit-it-support")
    aid = assign(conn, "tk-pause", "ticket", "urgent")["assignment_id"]
    call(conn, "respond_assignment", {"assignment_id": aid})     # answered: only the resolution clock runs
    assert ts(row(conn, aid)["sla_deadline"]) == t0 + timedelta(hours=2)
    at(conn, t0 + timedelta(minutes=20))
    set_status(conn, aid, "on_hold")
    at(conn, t0 + timedelta(minutes=57))
    set_status(conn, aid, "in_progress")
    a = row(conn, aid)
    assert float(a["paused_working_minutes"]) == 37
    assert ts(a["sla_deadline"]) == t0 + timedelta(hours=2, minutes=37)
    # service-desk chain, first level at 50% (60 min of work): 60 + 37 after arrival.
    assert ts(a["next_check_at"]) == t0 + timedelta(minutes=97)


def test_leaving_the_pause_status_for_completion_does_not_move_the_deadline(conn):
    t0 = datetime(2027, 1, 8, 22, 0, tzinfo=RIYADH)
    at(conn, t0)
    staff(conn, DESK_A, "unit-it-support")
    aid = assign(conn, "tk-done", "ticket", "urgent")["assignment_id"]
    at(conn, t0 + timedelta(minutes=10))
    set_status(conn, aid, "on_hold")
    at(conn, t0 + timedelta(minutes=30))
    conn.execute("SELECT complete_assignment(%s)", [aid])
    a = row(conn, aid)
    assert a["status"] == "completed"
    assert a["next_check_at"] is None
    assert ts(a["completed_at"]) == t0 + timedelta(minutes=30)


def install(url, policy, objects, rules_dir: Path = Path("rules")):
    """`rulesctl apply` from Python."""
    from engine.migrate.apply import apply

    return apply(url, objects, policy, rules_dir=rules_dir)


# ---------------------------------------------------------------------------------------- daylight saving

BERLIN_CALENDARS = """
  - id: berlin-business
    name: Berlin office (Monday to Friday)
    timezone: Europe/Berlin
    working_hours:
      monday:    ["08:00-16:00"]
      tuesday:   ["08:00-16:00"]
      wednesday: ["08:00-16:00"]
      thursday:  ["08:00-16:00"]
      friday:    ["08:00-16:00"]

  - id: berlin-night
    name: Berlin Sunday night maintenance window
    timezone: Europe/Berlin
    working_hours:
      sunday:    ["01:00-05:00"]

  - id: berlin-24x7
    name: Berlin service desk, around the clock
    timezone: Europe/Berlin
    working_hours:
      sunday:    ["00:00-24:00"]
      monday:    ["00:00-24:00"]
      tuesday:   ["00:00-24:00"]
      wednesday: ["00:00-24:00"]
      thursday:  ["00:00-24:00"]
      friday:    ["00:00-24:00"]
      saturday:  ["00:00-24:00"]
"""


@pytest.fixture
def berlin_url(database_url, traversable_tmp_path, repo_root):
    """The shipped policy with Berlin calendars: tickets on berlin-24x7, translations on berlin-business."""
    from engine.project import build

    rules = traversable_tmp_path / "rules"
    shutil.copytree(repo_root / "rules", rules)
    calendars = rules / "calendars.yaml"
    calendars.write_text(calendars.read_text() + BERLIN_CALENDARS)
    sla = rules / "sla.yaml"
    text = sla.read_text()
    assert "    calendar: always-on" in text and "  translation_request:\n" in text
    text = text.replace("    calendar: always-on", "    calendar: berlin-24x7", 1)
    text = text.replace("  translation_request:\n", "  translation_request:\n    calendar: berlin-business\n", 1)
    sla.write_text(text)
    policy, objects = build(rules)
    install(database_url, policy, objects, rules_dir=rules)
    return database_url


@pytest.fixture
def berlin(berlin_url):
    with psycopg.connect(berlin_url, autocommit=True) as connection:
        yield connection


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_business_hours_across_the_spring_change(berlin):
    assert scalar(berlin, "SELECT calendar_id FROM sla_configs WHERE work_item_type = 'translation_request'"
                          " AND priority = 'urgent'") == "berlin-business"
    # Friday 2027-03-26 12:00 CET (11:00 UTC): 4h on Friday; clocks go forward on Sunday 28 March;
    # Monday 29 March 08:00 CEST is 06:00 UTC, + 4h -> 12:00 CEST = 10:00 UTC.
    start = datetime(2027, 3, 26, 12, 0, tzinfo=BERLIN)
    assert start.astimezone(UTC) == utc(2027, 3, 26, 11, 0)
    got = deadline(berlin, "translation_request", "urgent", start)
    assert got == utc(2027, 3, 29, 10, 0)
    assert got.astimezone(BERLIN).replace(tzinfo=None) == datetime(2027, 3, 29, 12, 0)


def test_business_hours_across_the_autumn_change(berlin):
    # Friday 2027-10-29 12:00 CEST (10:00 UTC): 4h on Friday; clocks go back on Sunday 31 October;
    # Monday 1 November 08:00 CET is 07:00 UTC, + 4h -> 12:00 CET = 11:00 UTC.
    start = datetime(2027, 10, 29, 12, 0, tzinfo=BERLIN)
    assert start.astimezone(UTC) == utc(2027, 10, 29, 10, 0)
    got = deadline(berlin, "translation_request", "urgent", start)
    assert got == utc(2027, 11, 1, 11, 0)
    assert got.astimezone(BERLIN).replace(tzinfo=None) == datetime(2027, 11, 1, 12, 0)
    # 40h = Friday 4h + Monday-Thursday 32h + Friday 4h -> Friday 5 November 12:00 CET.
    assert deadline(berlin, "translation_request", "normal", start) == utc(2027, 11, 5, 11, 0)


def test_business_period_containing_the_change_counts_real_time(berlin):
    def add(start, minutes):
        return scalar(berlin, "SELECT calendar_add_working_time('berlin-night', %s, %s)", start, minutes)

    def between(a, b):
        return scalar(berlin, "SELECT calendar_working_minutes_between('berlin-night', %s, %s)", a, b)

    # Sunday 01:00-05:00 local. On 2027-03-28 02:00 CET jumps to 03:00 CEST: the window is 3 real hours.
    spring_open = utc(2027, 3, 28, 0, 0)                       # 01:00 CET
    assert between(spring_open, utc(2027, 3, 29, 0, 0)) == 180
    assert add(spring_open, 180) == utc(2027, 3, 28, 3, 0)     # 05:00 CEST
    assert add(spring_open, 181) == utc(2027, 4, 3, 23, 1)     # next Sunday 01:01 CEST
    # On 2027-10-31 03:00 CEST falls back to 02:00 CET: the window is 5 real hours.
    autumn_open = utc(2027, 10, 30, 23, 0)                     # 01:00 CEST
    assert between(autumn_open, utc(2027, 11, 1, 0, 0)) == 300
    assert add(autumn_open, 300) == utc(2027, 10, 31, 4, 0)    # 05:00 CET
    # An ordinary Sunday: 4 hours.
    assert between(utc(2027, 4, 3, 22, 0), utc(2027, 4, 4, 22, 0)) == 240   # local midnight to midnight (CEST)


def test_24x7_calendar_counts_elapsed_real_time_across_the_spring_change(berlin):
    # 01:30 CET on 2027-03-28 (00:30 UTC) + 2h of real time = 02:30 UTC = 04:30 CEST (wall-clock
    # arithmetic would say 03:30 CEST, one hour short).
    start = datetime(2027, 3, 28, 1, 30, tzinfo=BERLIN)
    assert start.astimezone(UTC) == utc(2027, 3, 28, 0, 30)
    assert deadline(berlin, "ticket", "urgent", start) == utc(2027, 3, 28, 2, 30)
    # 24h from Saturday noon CET is Sunday 13:00 CEST: 24 real hours, not the same wall-clock time.
    saturday = datetime(2027, 3, 27, 12, 0, tzinfo=BERLIN)
    assert deadline(berlin, "ticket", "normal", saturday) == utc(2027, 3, 28, 11, 0)
    # The day of the change holds 23 hours of working time.
    assert scalar(berlin, "SELECT calendar_working_minutes_between('berlin-24x7', %s, %s)",
                  datetime(2027, 3, 28, tzinfo=BERLIN), datetime(2027, 3, 29, tzinfo=BERLIN)) == 23 * 60


def test_24x7_calendar_counts_elapsed_real_time_across_the_autumn_change(berlin):
    # 01:30 CEST on 2027-10-31 (23:30 UTC the day before) + 2h = 01:30 UTC = 02:30 CET.
    start = datetime(2027, 10, 31, 1, 30, tzinfo=BERLIN)
    assert start.astimezone(UTC) == utc(2027, 10, 30, 23, 30)
    assert deadline(berlin, "ticket", "urgent", start) == utc(2027, 10, 31, 1, 30)
    saturday = datetime(2027, 10, 30, 12, 0, tzinfo=BERLIN)   # 10:00 UTC
    assert deadline(berlin, "ticket", "normal", saturday) == utc(2027, 10, 31, 10, 0)   # 11:00 CET
    assert scalar(berlin, "SELECT calendar_working_minutes_between('berlin-24x7', %s, %s)",
                  datetime(2027, 10, 31, tzinfo=BERLIN), datetime(2027, 11, 1, tzinfo=BERLIN)) == 25 * 60


def test_pause_across_the_change_on_the_24x7_calendar(berlin):
    at(berlin, datetime(2027, 3, 27, 23, 0, tzinfo=BERLIN))     # 22:00 UTC
    staff(berlin, DESK_A, "unit-it-support")
    aid = assign(berlin, "tk-dst", "ticket", "normal")["assignment_id"]
    assert ts(row(berlin, aid)["sla_deadline"]) == utc(2027, 3, 28, 22, 0)
    at(berlin, datetime(2027, 3, 28, 1, 0, tzinfo=BERLIN))      # 00:00 UTC
    set_status(berlin, aid, "on_hold")
    at(berlin, datetime(2027, 3, 28, 4, 0, tzinfo=BERLIN))      # 02:00 UTC: two real hours later
    set_status(berlin, aid, "in_progress")
    a = row(berlin, aid)
    assert float(a["paused_working_minutes"]) == 120
    assert ts(a["sla_deadline"]) == utc(2027, 3, 29, 0, 0)


# ---------------------------------------------------------------------------------------- bad input

def test_a_type_and_priority_the_matrix_lacks_is_refused(conn):
    at(conn, datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH))
    staff(conn, uid(41), "unit-field-survey")
    conn.execute("DELETE FROM sla_configs WHERE work_item_type = 'survey_task' AND priority = 'low'")
    with invalid("work_item_type") as caught:
        deadline(conn, "survey_task", "low", datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH))
    assert "survey_task/low" in str(caught.value)

    before = counts(conn)
    with invalid("work_item_type"):
        assign(conn, "sv-low", "survey_task", "low")
    assert counts(conn) == before                      # nothing half-written
    assert scalar(conn, "SELECT current_assignment_count FROM staff_profiles WHERE id = %s", uid(41)) == 0
    # The other priorities of the type still work.
    assert assign(conn, "sv-high", "survey_task", "high")["status"] == "assigned"


def test_an_unknown_calendar_is_refused(conn):
    start = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)
    with invalid("calendar_id") as caught:
        scalar(conn, "SELECT calendar_add_working_time('no-such-calendar', %s, 60)", start)
    assert "no-such-calendar" in str(caught.value)
    with invalid("calendar_id"):
        scalar(conn, "SELECT calendar_working_minutes_between('no-such-calendar', %s, %s)",
               start, start + timedelta(hours=1))

    # A calendar row the compiled runtime does not know (installed by hand, outside rules/):
    # the matrix lookup fails clearly and auto_assign writes nothing.
    conn.execute("INSERT INTO business_calendars (id, name, timezone) VALUES ('ghost', 'Ghost calendar', 'UTC')")
    conn.execute("UPDATE sla_configs SET calendar_id = 'ghost' WHERE work_item_type = 'ticket' AND priority = 'low'")
    with invalid("calendar_id"):
        deadline(conn, "ticket", "low", start)
    at(conn, start)
    staff(conn, DESK_A, "unit-it-support")
    before = counts(conn)
    with invalid("calendar_id"):
        assign(conn, "tk-ghost", "ticket", "low")
    assert counts(conn) == before



def _variant(base: Path, repo_root: Path, calendars_extra: str, data_request_calendar: str) -> Path:
    rules = base / "rules"
    shutil.copytree(repo_root / "rules", rules)
    calendars = rules / "calendars.yaml"
    calendars.write_text(calendars.read_text() + calendars_extra)
    sla = rules / "sla.yaml"
    text = sla.read_text()
    assert "  data_request:\n" in text
    sla.write_text(text.replace("  data_request:\n", f"  data_request:\n    calendar: {data_request_calendar}\n", 1))
    return rules


def test_a_calendar_with_no_working_hours_is_rejected_at_validation(traversable_tmp_path, repo_root):
    from engine.errors import PolicyError
    from engine.project import build

    rules = _variant(traversable_tmp_path, repo_root, """
  - id: never-open
    name: Never open
    timezone: Asia/Riyadh
    working_hours: {}
""", "never-open")
    with pytest.raises(PolicyError) as caught:
        build(rules)
    [problem] = caught.value.problems
    line = (rules / "calendars.yaml").read_text().splitlines().index("    working_hours: {}") + 1
    assert str(problem).startswith(f"rules/calendars.yaml:{line}:"), str(problem)     # file:line:col
    assert "never-open" in str(problem) and "no working hours" in str(problem)


def test_a_calendar_closed_for_ten_years_fails_clearly_and_writes_nothing(database_url, traversable_tmp_path,
                                                                          repo_root):
    from engine.project import build

    rules = _variant(traversable_tmp_path, repo_root, """
  - id: closed-decade
    name: Closed for a decade
    timezone: Asia/Riyadh
    working_hours:
      monday: ["08:00-16:00"]
    closures:
      - from: 2027-01-01
        to: 2037-12-31
        reason: Office closed
""", "closed-decade")
    policy, objects = build(rules)
    install(database_url, policy, objects, rules_dir=rules)
    with psycopg.connect(database_url, autocommit=True) as conn:
        start = datetime(2027, 1, 5, 10, 0, tzinfo=RIYADH)
        # Before the closure the calendar works (Monday 2026-12-28 08:00 + 4h).
        assert (deadline(conn, "data_request", "urgent", datetime(2026, 12, 28, 8, 0, tzinfo=RIYADH))
                == datetime(2026, 12, 28, 12, 0, tzinfo=RIYADH))
        at(conn, start)
        staff(conn, uid(51), "unit-data-requests")
        before = counts(conn)
        with invalid("calendar_id") as caught:     # raised by calculate_sla_deadline_fn inside auto_assign
            assign(conn, "dr-1", "data_request", "urgent")
        assert "closed-decade" in str(caught.value) and "no working time" in str(caught.value)
        assert counts(conn) == before
        assert scalar(conn, "SELECT current_assignment_count FROM staff_profiles WHERE id = %s", uid(51)) == 0
