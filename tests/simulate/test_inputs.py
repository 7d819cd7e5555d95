"""Inputs and views without a database: bad workload and staff files name the line and the field,
the command refuses contradictory options before touching a database, the synthetic workload is
seeded, and the comparison reads the right way."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from simulate_support import REPO_RULES

from engine.cli import cli
from engine.policy.validate import validate_directory
from engine.simulate import staff, workload
from engine.simulate.report.markdown import as_markdown
from engine.simulate.run import Simulation, delta

START = dt.datetime(2027, 1, 3, tzinfo=dt.UTC)


HEADER = "arrived_at,work_item_id,work_item_type,priority,handling_minutes\n"


@pytest.mark.parametrize(("row", "message"), [
    ("2027-01-03T08:00+03:00,a,ticket,,", r":2: priority: is required"),
    ("yesterday,a,ticket,low,", r":2: arrived_at: not an ISO"),
    ("2027-01-03T08:00,a,ticket,low,", r":2: arrived_at: give a time zone"),
    ("2027-01-03T08:00Z,a,ticket,low,0", r":2: handling_minutes: must be above 0"),
    ("2027-01-03T08:00Z,a,ticket,low,soon", r":2: handling_minutes: not a number"),
])
def test_a_bad_workload_file_names_the_line_and_the_field(tmp_path, row, message):
    path = tmp_path / "arrivals.csv"
    path.write_text(HEADER + row + "\n")
    with pytest.raises(workload.WorkloadError, match=message):
        workload.from_file(path)


def test_a_jsonl_workload_reads_like_the_csv(tmp_path):
    path = tmp_path / "arrivals.jsonl"
    path.write_text('{"arrived_at": "2027-01-03T08:00:00+03:00", "work_item_id": "b", "work_item_type": "ticket",'
                    ' "priority": "high", "required_skills": ["skill-network"], "handling_minutes": 30}\n\n'
                    '{"arrived_at": "2027-01-03T07:00:00+03:00", "work_item_id": "a", "work_item_type": "ticket",'
                    ' "priority": "low"}\n')
    loaded = workload.from_file(path)
    assert [a.work_item_id for a in loaded.arrivals] == ["a", "b"]            # in time order
    assert loaded.arrivals[1].request() == {"work_item_id": "b", "work_item_type": "ticket", "priority": "high",
                                            "required_skills": ["skill-network"]}
    assert loaded.arrivals[0].arrived_at == dt.datetime(2027, 1, 3, 4, tzinfo=dt.UTC)
    assert loaded.source == "file"


def test_a_bad_staff_file_names_the_line_and_the_field(tmp_path):
    path = tmp_path / "staff.csv"
    path.write_text("id,unit,role,skills,wip_limit,leave\nann,unit-hr,staff,,two,\n")
    with pytest.raises(staff.StaffError, match=r"staff.csv:2: wip_limit: not a whole number"):
        staff.from_file(path)
    path.write_text("id,unit,role,skills,wip_limit,leave\nann,unit-hr,staff,skill-sql:expert,,"
                    "2027-01-05T08:00+03:00/2027-01-04T08:00+03:00\n")
    with pytest.raises(staff.StaffError, match=r":2: leave: .*an end after the start"):
        staff.from_file(path)


def test_readable_staff_ids_become_stable_uuids(tmp_path):
    path = tmp_path / "staff.csv"
    path.write_text("id,unit,role,skills,wip_limit,leave\nann,unit-hr,supervisor,skill-sql:expert skill-gis,2,\n")
    (person,) = staff.from_file(path)
    assert person == staff.from_file(path)[0]
    assert person.profile()["skills"] == {"skill-sql": "expert", "skill-gis": "basic"}
    assert person.profile()["wip_limit"] == 2 and person.role == "supervisor" and len(person.id) == 36


def test_the_synthetic_workload_is_seeded_shaped_and_near_its_rate():
    policy = validate_directory(REPO_RULES)
    one = workload.synthetic(policy, 7, 4, START, per_day=500)
    assert one == workload.synthetic(policy, 7, 4, START, per_day=500)
    assert one != workload.synthetic(policy, 7, 5, START, per_day=500)
    assert 0.85 * 3500 < len(one.arrivals) < 1.15 * 3500
    riyadh = dt.timezone(dt.timedelta(hours=3))
    surveys = [a for a in one.arrivals if a.work_item_type == "survey_task"]
    in_hours = [a for a in surveys if 8 <= a.arrived_at.astimezone(riyadh).hour < 16
                and a.arrived_at.astimezone(riyadh).isoweekday() not in (5, 6)]
    assert len(in_hours) > 0.8 * len(surveys)                               # business-calendar work in hours
    assert {a.priority for a in one.arrivals} == set(policy.priorities)
    assert len({a.arrived_at for a in one.arrivals}) == len(one.arrivals)   # distinct instants: a fixed order


def test_delta_is_proposed_minus_baseline_and_none_without_both_sides():
    assert delta({"a": 3, "w": {"p50": 1.5, "p95": None}, "u": {"x": {"items": 2}}},
                 {"a": 5, "w": {"p50": 1.0, "p95": 4.0}, "u": {}}) == \
        {"a": -2, "w": {"p50": 0.5, "p95": None}, "u": {"x": {"items": None}}}


def test_markdown_marks_what_got_worse_in_bold():
    m = {"items": 10, "assigned": 10, "completed": 10, "queued_at_end": 0, "breached": 1, "breach_rate": 0.1,
         "escalations": 2, "wait_minutes": {"p50": 1.0, "p95": 10.0, "max": 20.0},
         "resolution_minutes": {"p50": 30.0, "p95": 60.0}, "rejected": 0, "over_wip": 0}
    worse = {**m, "breached": 3, "breach_rate": 0.3, "wait_minutes": {"p50": 1.0, "p95": 30.0, "max": 20.0}}
    text = as_markdown(Simulation({"seed": 1, "workload": {"items": 10, "days": 1, "source": "file", "staff": 2},
                                   "policies": {"baseline": m, "proposed": worse}}))
    assert "| breached | 1 | 3 | **+2** | 🔺 worse |" in text
    assert "| breach rate | 10.0% | 30.0% | **+20.0 pt** | 🔺 worse |" in text
    assert "| wait p50 | 1.0 min | 1.0 min | +0.0 min |  |" in text


@pytest.mark.parametrize(("args", "message"), [
    ([], "give one workload"),
    (["--synthetic"], "--synthetic needs --days"),
    (["--synthetic", "--days", "1", "--from-history", "30d"], "give one workload"),
    (["--from-history", "a month"], "--from-history: a number of days"),
    (["--synthetic", "--days", "1", "--baseline", str(REPO_RULES), "--baseline-live"], "give one baseline"),
])
def test_the_command_refuses_contradictory_options_plainly(args, message):
    result = CliRunner().invoke(cli, ["simulate", "--rules", str(REPO_RULES), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_progress_rewrites_one_line_with_each_policys_day_and_the_rate():
    import io

    from engine.simulate.progress import TerminalProgress
    out = io.StringIO()
    progress = TerminalProgress(out)
    progress("proposed", 1, 30, 3000)
    progress("baseline", 2, 30, 6000)
    progress.done()
    lines = out.getvalue().split("\r")
    assert lines[-1].startswith("simulating  baseline: day 2/30  proposed: day 1/30  ")
    assert "items/s" in lines[-1] and lines[-1].endswith("\n") and "\n" not in lines[-2]
