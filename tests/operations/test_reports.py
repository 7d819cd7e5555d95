"""`rulesctl report sla|capacity` against a real PostgreSQL with the shipped policy.

The history is made through the engine's own API (auto_assign, complete_assignment,
capture_capacity_snapshot) with the engine clock moved (engine_calls.at), and every figure
below is counted by hand from it. Shipped policy (rules/): tickets go to IT Support on the
always-on calendar (urgent 2h, high 8h, normal 24h, low 72h; urgent and high weigh 2),
translation requests to Translation on riyadh-business (Sun-Thu 08:00-16:00 +03; urgent 8h,
normal 40h); warning at 75%. Completions are placed 10 minutes either side of the deadline
auto_assign returned, so "met" and "late" do not depend on re-deriving the calendar.

The report ends at END (the session's engine clock) and starts 30 days before it.
"""

from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from api_support import installed_database
from browser_support import open_page
from click.testing import CliRunner
from engine_calls import at, call, scalar, uid

from engine.cli import cli
from engine.operations.reports import ReportError, parse_since, read_report, render_report
from engine.operations.reports.capacity import CapacityDay, CapacityReport
from engine.operations.reports.html import capacity_html
from engine.operations.reports.window import Window

RIYADH = timezone(timedelta(hours=3))
T0 = datetime(2027, 1, 10, 8, 0, tzinfo=RIYADH)            # a Sunday, a working day in Riyadh
END = datetime(2027, 1, 20, 12, 0, tzinfo=RIYADH)          # Wednesday noon: the report's end
BEFORE = datetime(2026, 12, 1, 9, 0, tzinfo=RIYADH)        # before the 30-day window
MINUTE = timedelta(minutes=1)
IT, TR, HR = "unit-it-support", "unit-translation", "unit-hr"

# (work item, type, priority, arrives, resolution, response). Resolution "met"/"late": completed
# 10 minutes before/after the deadline auto_assign returned; "open": never completed. Response
# "met"/"late": respond_assignment 1 minute before/after the row's response_deadline; None: no
# response. HR has no staff: its ticket waits in the queue (no assignment, so no response clock).
ITEMS = [
    ("OLD-1", "ticket", "urgent", BEFORE, "late", "met"),     # both before the window: not counted
    ("IT-1", "ticket", "urgent", T0, "met", "met"),
    ("IT-2", "ticket", "urgent", T0 + 1 * MINUTE, "met", "late"),
    ("IT-3", "ticket", "urgent", T0 + 2 * MINUTE, "late", None),      # completed unanswered: no response outcome
    ("IT-4", "ticket", "normal", T0 + 3 * MINUTE, "met", "met"),
    ("IT-5", "ticket", "normal", T0 + 4 * MINUTE, "open", "late"),    # 24h: long past at END
    ("TR-1", "translation_request", "urgent", T0 + 5 * MINUTE, "met", "met"),
    ("TR-2", "translation_request", "urgent", T0 + 6 * MINUTE, "late", "late"),
    ("TR-3", "translation_request", "normal", T0 + 7 * MINUTE, "met", "met"),
    ("TR-4", "translation_request", "normal", T0 + 8 * MINUTE, "late", None),
    ("HR-1", "ticket", "normal", T0 + 9 * MINUTE, "open", None),      # queued for HR, past 24h at END
    ("IT-6", "ticket", "high", END - timedelta(hours=7), "open", None),   # 7h of 8h: at risk; response 30m: past
    ("IT-7", "ticket", "low", END - timedelta(hours=2), "open", None),    # 2h of 72h / of 8h: on track
    ("TR-5", "translation_request", "normal", END - timedelta(hours=1), "open", None),  # 1 working hour of 40 / 4
]
# Snapshots (capture_capacity_snapshot) at these engine times; the first is outside the window.
CAPTURES = [BEFORE + timedelta(hours=5), T0 - timedelta(hours=20), T0 + timedelta(hours=1),
            datetime(2027, 1, 11, 12, 0, tzinfo=RIYADH), END]
ARRIVE, RESPOND, COMPLETE, CAPTURE = range(4)      # what happens at one engine time, in this order


def make_history(conn) -> dict:
    for n, unit in ((1, IT), (2, IT), (3, TR), (4, TR)):
        call(conn, "upsert_staff_profile", {"id": uid(n), "unit_id": unit, "full_name": f"Staff {n}",
                                            "wip_limit": 10})
    events = [(item[3], ARRIVE, item) for item in ITEMS] + [(when, CAPTURE, None) for when in CAPTURES]
    results: dict = {}
    while events:
        events.sort(key=lambda e: (e[0], e[1]))
        when, kind, item = events.pop(0)
        at(conn, when)
        if kind == CAPTURE:
            conn.execute("SELECT capture_capacity_snapshot()")
            continue
        work_item_id, work_item_type, priority, _, resolution, response = item
        if kind == ARRIVE:
            target = {"target_unit_id": HR} if work_item_id.startswith("HR") else {}
            result = results[work_item_id] = call(conn, "auto_assign", {
                "work_item_id": work_item_id, "work_item_type": work_item_type, "priority": priority, **target})
            if resolution != "open":
                deadline = datetime.fromisoformat(result["sla_deadline"])
                events.append((deadline + (-10 if resolution == "met" else 10) * MINUTE, COMPLETE, item))
            if response is not None:
                deadline = scalar(conn, "SELECT response_deadline FROM assignments WHERE id = %s",
                                  result["assignment_id"])
                events.append((deadline + (-1 if response == "met" else 1) * MINUTE, RESPOND, item))
        elif kind == RESPOND:
            call(conn, "respond_assignment", {"assignment_id": results[work_item_id]["assignment_id"]})
        else:
            conn.execute("SELECT complete_assignment(%s)", [results[work_item_id]["assignment_id"]])
    return results


@pytest.fixture(scope="module")
def history(pg_cluster, shipped_objects):
    with installed_database(pg_cluster, shipped_objects) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            results = make_history(conn)
        yield url, results


def at_end(url: str) -> str:
    """The URL with the session's engine clock at END (libpq options), as an operator's session would be."""
    return f"{url}?options=-c%20rulesctl.now%3D{END.isoformat().replace('+', '%2B').replace(':', '%3A')}"


def report_json(url: str, kind: str) -> dict:
    with psycopg.connect(at_end(url)) as conn:
        return json.loads(render_report(read_report(conn, kind, parse_since("30d")), "json"))


def pick(rows: list[dict], **match) -> dict:
    found = [row for row in rows if all(row[key] == value for key, value in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


COUNT_KEYS = ("met", "breached_late", "open_breached", "open_at_risk", "open_on_track", "breached",
              "attainment_percent")


def counts(row: dict) -> tuple:
    return tuple(row[key] for key in COUNT_KEYS)


# ---------------------------------------------------------------------------------- the history

@pytest.mark.db
def test_the_history_is_what_the_counts_assume(history):
    url, results = history
    assert results["HR-1"]["status"] == "queued"
    assert all(results[item[0]]["status"] == "assigned" for item in ITEMS if not item[0].startswith("HR"))
    with psycopg.connect(url) as conn:
        done = dict(conn.execute("SELECT work_item_id, completed_at > sla_deadline FROM assignments"
                                 " WHERE status = 'completed'").fetchall())
    assert done == {item[0]: item[4] == "late" for item in ITEMS if item[4] != "open"}
    with psycopg.connect(url) as conn:
        answered = dict(conn.execute("SELECT work_item_id, first_response_at > response_deadline FROM assignments"
                                     " WHERE first_response_at IS NOT NULL").fetchall())
    assert answered == {item[0]: item[5] == "late" for item in ITEMS if item[5] is not None}


# ---------------------------------------------------------------------------------------- SLA

@pytest.mark.db
def test_sla_json_equals_the_hand_counts(history):
    url, _ = history
    report = report_json(url, "sla")
    assert report["report"] == "sla"
    assert datetime.fromisoformat(report["until"]) == END
    assert datetime.fromisoformat(report["since"]) == END - timedelta(days=30)
    assert report["clocks"][0] == "resolution"
    rows = [row for row in report["rows"] if row["clock"] == "resolution"]
    #                         met late open-past at-risk on-track breached attainment
    expected = {
        (IT, "ticket", "urgent"): (2, 1, 0, 0, 0, 1, 66.7),        # OLD-1 is outside the window
        (IT, "ticket", "high"): (0, 0, 0, 1, 0, 0, None),
        (IT, "ticket", "normal"): (1, 0, 1, 0, 0, 1, 50.0),
        (IT, "ticket", "low"): (0, 0, 0, 0, 1, 0, None),
        (TR, "translation_request", "urgent"): (1, 1, 0, 0, 0, 1, 50.0),
        (TR, "translation_request", "normal"): (1, 1, 0, 0, 1, 1, 50.0),
        (HR, "ticket", "normal"): (0, 0, 1, 0, 0, 1, 0.0),          # breached while queued
    }
    assert {(r["unit_id"], r["work_item_type"], r["priority"]): counts(r) for r in rows} == expected
    assert pick(rows, unit_id=TR, priority="normal")["unit_name"] == "Translation"

    by_unit = {r["unit_id"]: counts(r) for r in report["by_unit"] if r["clock"] == "resolution"}
    assert by_unit == {IT: (3, 1, 1, 1, 1, 2, 60.0), TR: (2, 2, 0, 0, 1, 2, 50.0), HR: (0, 0, 1, 0, 0, 1, 0.0)}
    by_type = [(r["work_item_type"], r["priority"], r["breached"], r["attainment_percent"])
               for r in report["by_type_priority"] if r["clock"] == "resolution"]
    assert by_type == [("ticket", "urgent", 1, 66.7), ("ticket", "high", 0, None), ("ticket", "normal", 2, 33.3),
                       ("ticket", "low", 0, None), ("translation_request", "urgent", 1, 50.0),
                       ("translation_request", "normal", 1, 50.0)]
    total = pick(report["totals"], clock="resolution")
    assert counts(total) == (5, 3, 2, 1, 2, 5, 50.0)


@pytest.mark.db
def test_sla_json_response_clock_equals_the_hand_counts(history):
    # Each assignment's first response against its response deadline (ticket urgent 15m, high 30m,
    # normal 2h, low 8h; translation urgent 1h, normal 4h working time): answered in the window,
    # or unanswered and still active. IT-3 and TR-4 were completed unanswered; HR-1 was never
    # assigned; OLD-1 answered before the window: none of them counts.
    url, _ = history
    report = report_json(url, "sla")
    assert report["clocks"] == ["resolution", "response"]
    rows = [row for row in report["rows"] if row["clock"] == "response"]
    #                         met late open-past at-risk on-track breached attainment
    assert {(r["unit_id"], r["work_item_type"], r["priority"]): counts(r) for r in rows} == {
        (IT, "ticket", "urgent"): (1, 1, 0, 0, 0, 1, 50.0),
        (IT, "ticket", "high"): (0, 0, 1, 0, 0, 1, 0.0),            # IT-6: 7h unanswered
        (IT, "ticket", "normal"): (1, 1, 0, 0, 0, 1, 50.0),         # IT-5 answered late, still open
        (IT, "ticket", "low"): (0, 0, 0, 0, 1, 0, None),
        (TR, "translation_request", "urgent"): (1, 1, 0, 0, 0, 1, 50.0),
        (TR, "translation_request", "normal"): (1, 0, 0, 0, 1, 0, 100.0),
    }
    assert counts(pick(report["totals"], clock="response")) == (4, 3, 1, 0, 2, 4, 50.0)
    by_unit = {r["unit_id"]: r["attainment_percent"] for r in report["by_unit"] if r["clock"] == "response"}
    assert by_unit == {IT: 40.0, TR: 66.7}


@pytest.mark.db
def test_a_shorter_window_counts_only_what_was_decided_in_it(history):
    # Since T0 + 1 day 12:00: the urgent tickets (done on T0) and TR-1/TR-2 (Sunday) fall out;
    # IT-4 (done Monday 07:50) too; TR-3/TR-4 (Thursday) and all open work stay.
    url, _ = history
    with psycopg.connect(at_end(url)) as conn:
        report = read_report(conn, "sla", parse_since("2027-01-11T12:00+03:00"))
    total = report.total("resolution")
    assert (total.met, total.breached_late, total.open_breached, total.open_at_risk, total.open_on_track) == \
        (1, 1, 2, 1, 2)


@pytest.mark.db
def test_sla_csv_parses_and_text_has_the_rows(history):
    url, _ = history
    runner = CliRunner()
    csv_out = runner.invoke(cli, ["report", "sla", "--since", "30d", "--format", "csv", "--database-url", at_end(url)])
    assert csv_out.exit_code == 0, csv_out.output
    rows = list(csv.DictReader(io.StringIO(csv_out.output)))
    resolution = [r for r in rows if r["clock"] == "resolution"]
    assert len(resolution) == 7
    hr = pick(resolution, unit_id=HR)
    assert (hr["work_item_type"], hr["priority"], hr["open_breached"], hr["attainment_percent"]) == \
        ("ticket", "normal", "1", "0.0")
    assert pick(resolution, unit_id=IT, priority="high")["attainment_percent"] == ""    # nothing decided

    text = runner.invoke(cli, ["report", "sla", "--database-url", at_end(url)])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert "resolution: 50.0% met (5 of 10 decided), 5 breached (2 still open), 1 at risk" in lines
    assert any(line.split() == ["Translation", "translation_request", "normal", "1", "1", "1", "0", "0", "1", "50.0%"]
               for line in lines), text.output
    assert any(line.split() == ["IT", "Support", "ticket", "urgent", "2", "1", "1", "0", "0", "0", "66.7%"]
               for line in lines), text.output


@pytest.mark.db
def test_the_report_writes_nothing_and_reads_in_a_read_only_transaction(history):
    url, _ = history
    with psycopg.connect(at_end(url)) as conn:
        before = scalar(conn, "SELECT (SELECT count(*) FROM assignments) + (SELECT count(*) FROM capacity_snapshots)")
        conn.commit()
        read_report(conn, "sla", parse_since("30d"))
        assert conn.read_only is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            with conn.transaction():
                conn.execute("SELECT capture_capacity_snapshot()")
    with psycopg.connect(url) as conn:
        assert scalar(conn, "SELECT (SELECT count(*) FROM assignments) + (SELECT count(*) FROM capacity_snapshots)") \
            == before


# ----------------------------------------------------------------------------------- capacity

@pytest.mark.db
def test_capacity_json_equals_the_hand_counts(history):
    url, _ = history
    report = report_json(url, "capacity")
    assert report["report"] == "capacity"
    days = sorted({row["day"] for row in report["rows"]})
    assert days == ["2027-01-09", "2027-01-10", "2027-01-11", "2027-01-20"]      # 2026-12-01 is outside
    seen = {(r["unit_id"], r["day"]): (r["staff"], r["capacity"], r["assigned"], r["utilisation_percent"],
                                       r["queue_depth"]) for r in report["rows"] if r["unit_id"] in (IT, TR, HR)}
    assert seen == {
        (IT, "2027-01-09"): (2, 20, 0, 0.0, 0),
        (IT, "2027-01-10"): (2, 20, 8, 40.0, 0),          # IT-1..3 urgent (2 each) + IT-4, IT-5
        (IT, "2027-01-11"): (2, 20, 1, 5.0, 0),           # IT-5 only
        (IT, "2027-01-20"): (2, 20, 4, 20.0, 0),          # IT-5, IT-6 high (2), IT-7
        (TR, "2027-01-09"): (2, 20, 0, 0.0, 0),
        (TR, "2027-01-10"): (2, 20, 4, 20.0, 0),          # TR-1..4
        (TR, "2027-01-11"): (2, 20, 2, 10.0, 0),          # TR-3, TR-4 (due Thursday)
        (TR, "2027-01-20"): (2, 20, 1, 5.0, 0),           # TR-5
        (HR, "2027-01-09"): (0, 0, 0, None, 0),
        (HR, "2027-01-10"): (0, 0, 0, None, 1),           # HR-1 queued, nobody to take it
        (HR, "2027-01-11"): (0, 0, 0, None, 1),
        (HR, "2027-01-20"): (0, 0, 0, None, 1),
    }
    it = pick(report["by_unit"], unit_id=IT)
    assert (it["days"], it["mean_utilisation_percent"], it["peak_utilisation_percent"]) == (4, 16.3, 40.0)
    hr = pick(report["by_unit"], unit_id=HR)
    assert (hr["mean_utilisation_percent"], hr["peak_queue_depth"]) == (None, 1)


@pytest.mark.db
def test_capacity_csv_and_text(history):
    url, _ = history
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "capacity", "--format", "csv", "--database-url", at_end(url)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert pick(rows, unit_id=IT, day="2027-01-10")["utilisation_percent"] == "40.0"
    assert pick(rows, unit_id=HR, day="2027-01-10")["utilisation_percent"] == ""
    text = runner.invoke(cli, ["report", "capacity", "--database-url", at_end(url)])
    assert text.exit_code == 0, text.output
    assert any(line.split() == ["Translation", "2027-01-11", "2", "20", "2", "10.0%", "0"]
               for line in text.output.splitlines()), text.output


# --------------------------------------------------------------------------------------- HTML

@contextmanager
def html_report(url: str, kind: str, tmp_path: Path):
    """`rulesctl report KIND --format html --out FILE`, opened in headless Chromium: it must load
    without a console error and fetch nothing (self-contained)."""
    page_file = tmp_path / f"{kind}.html"
    result = CliRunner().invoke(cli, ["report", kind, "--format", "html", "--out", str(page_file),
                                      "--database-url", at_end(url)])
    assert result.exit_code == 0, result.output
    with open_page(page_file, screenshot=tmp_path / f"{kind}.png") as page:
        assert page.console_errors == []
        assert page.requests == []
        yield page
    assert (tmp_path / f"{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.db
def test_sla_html_renders_in_a_browser_with_its_charts(history, tmp_path):
    url, _ = history
    with html_report(url, "sla", tmp_path) as page:
        assert page.count("svg") == 4                                   # two charts per clock
        assert page.texts("svg > title") == [
            "Resolution SLA attainment per unit", "Resolution SLA breaches by work item type and priority",
            "Response SLA attainment per unit", "Response SLA breaches by work item type and priority"]
        assert page.evaluate("document.title") == "SLA report"
        # one bar per unit on the attainment chart, its tooltip naming the unit and figure
        bars = page.evaluate("Array.from(document.querySelector('svg').querySelectorAll('rect > title'),"
                             " t => t.textContent)")
        assert sorted(bars) == ["Human Resources: 0.0% (0 of 1 met)", "IT Support: 60.0% (3 of 5 met)",
                                "Translation: 50.0% (2 of 4 met)"]
        assert page.evaluate("document.body.scrollWidth <= window.innerWidth")     # nothing overflows sideways


@pytest.mark.db
def test_capacity_html_renders_in_a_browser_with_its_heatmap(history, tmp_path):
    url, _ = history
    with html_report(url, "capacity", tmp_path) as page:
        assert page.texts("svg > title") == ["Utilisation per unit per day"]
        cells = page.texts("svg rect > title")
        assert "IT Support 2027-01-10: 40.0% (8 of 20 slots, 2 available, queue 0)" in cells
        assert "Human Resources 2027-01-10: - (0 of 0 slots, 0 available, queue 1)" in cells
        # units with nobody available and nothing queued are named once, not drawn
        note = page.texts("section p.note")[0]
        assert "Dissemination & User Services" in note and "Human Resources" not in note


# ------------------------------------------------------------------------------ without a db

def test_since_parsing():
    assert parse_since("30d").back == timedelta(days=30)
    assert parse_since("12h").back == timedelta(hours=12)
    assert parse_since("90m").back == timedelta(minutes=90)
    assert parse_since("2w").back == timedelta(weeks=2)
    assert parse_since("2026-11-01").start == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:00+03:00").start == datetime(2026, 11, 1, 5, tzinfo=UTC)
    for bad, says in [("abc", "not understood"), ("30x", "not understood"), ("0d", "longer than zero"),
                      ("2026-13-01", "not understood"), ("", "not understood"), ("-5d", "not understood")]:
        with pytest.raises(ReportError, match=says) as caught:
            parse_since(bad)
        assert str(caught.value).startswith("--since")
    with pytest.raises(ReportError, match="not before the report's end"):
        parse_since("2027-02-01").window(END)


def test_since_errors_on_the_command_line_name_the_option():
    result = CliRunner().invoke(cli, ["report", "sla", "--since", "yesterday", "--database-url", "postgresql://x/y"])
    assert result.exit_code == 2
    assert "Error: --since 'yesterday': not understood; expected a duration such as 30d" in result.output
    assert "Traceback" not in result.output


def test_html_escapes_what_the_database_holds(tmp_path):
    # A unit name is policy text: in the page it must stay text, never markup.
    name = "O'Brien <script>alert(1)</script> & \"East\""
    window = Window(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 3, tzinfo=UTC))
    rows = tuple(CapacityDay("unit-x", name, datetime(2027, 1, day).date(), 1, 4, 1, 25.0, 0) for day in (1, 2))
    page_file = tmp_path / "escaped.html"
    page_file.write_text(capacity_html(CapacityReport(window, rows)))
    with open_page(page_file) as page:
        assert page.count("script") == 0
        assert page.console_errors == []
        assert name in page.texts("td")


def test_the_browser_helper_sees_console_errors_requests_and_the_dom(tmp_path):
    # The HTML tests rely on the helper to see problems: it must see these ones.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><title>t</title><svg><title>chart</title></svg>"
                      "<script>console.error('drawn wrong'); undefinedFunction()</script>"
                      "<img src='http://192.0.2.1/x.png'>")
    with open_page(broken, screenshot=tmp_path / "broken.png") as page:
        errors = page.console_errors
        assert "drawn wrong" in errors
        assert any("undefinedFunction" in e for e in errors), errors
        assert page.requests == ["http://192.0.2.1/x.png"]
        assert page.count("svg") == 1 and page.texts("svg > title") == ["chart"]
    assert Path(tmp_path / "broken.png").stat().st_size > 0


def test_an_unreachable_database_is_a_clear_error_not_a_traceback():
    result = CliRunner().invoke(cli, ["report", "capacity", "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot connect to the database")
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.db
def test_a_database_without_the_engine_says_to_apply_first(database_url):
    result = CliRunner().invoke(cli, ["report", "sla", "--database-url", database_url])
    assert result.exit_code == 1
    assert "the engine is not installed in this database" in result.output and "rulesctl apply" in result.output


@pytest.mark.db
def test_an_unwritable_out_file_names_the_option(history, tmp_path):
    url, _ = history
    result = CliRunner().invoke(cli, ["report", "sla", "--out", str(tmp_path / "missing" / "r.txt"),
                                      "--database-url", at_end(url)])
    assert result.exit_code == 1
    assert f"error: --out {tmp_path / 'missing' / 'r.txt'}: No such file or directory" in result.output
