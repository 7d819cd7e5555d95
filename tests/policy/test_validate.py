"""Validation: the shipped policy and the small base are valid; every invalid example gives
exactly its expected errors, as `path:line:col: where: what`, all at once, never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from policy_cases import BASE, INVALID_CASES, make_policy

from engine.cli import cli
from engine.errors import PolicyError
from engine.policy.validate import validate_directory


def test_shipped_policy_is_valid_and_complete(repo_root):
    policy = validate_directory(repo_root / "rules")
    units = {u.id: u for u in policy.units}
    depth = {}
    for unit in policy.units:
        node, level = unit, 1
        while node.parent_id:
            node, level = units[node.parent_id], level + 1
        depth[unit.id] = level
    assert len(units) >= 8 and max(depth.values()) >= 3
    assert len(policy.skills) >= 12
    assert policy.priorities == ("low", "normal", "high", "urgent")
    assert len(policy.work_item_types) >= 3 and "ticket" in {t.id for t in policy.work_item_types}
    assert len(policy.sla_targets) == len(policy.work_item_types) * 4
    urgent_ticket = next(t for t in policy.sla_targets if (t.work_item_type, t.priority) == ("ticket", "urgent"))
    assert urgent_ticket.resolution_minutes == 120
    assert len(policy.rules) >= 6 and len({r.precedence for r in policy.rules}) == len(policy.rules)
    riyadh = next(c for c in policy.calendars if c.timezone == "Asia/Riyadh" and c.id == "riyadh-business")
    assert {p.weekday for p in riyadh.working_hours} == {7, 1, 2, 3, 4}        # Sunday to Thursday
    assert {d.kind for d in riyadh.days_off} == {"public_holiday", "closure"}
    jobs = {j.name: j.schedule for j in policy.jobs}
    assert jobs == {"sla-monitoring": "30 seconds", "capacity-snapshot": "0 0 * * *",
                    "queue-fallback-processor": "* * * * *", "escalation-cleanup": "0 2 * * *",
                    "event-relay": "1 seconds", "leave-return": "* * * * *"}
    assert any(level.reason == "sla_breach" for c in policy.chains for level in c.levels)
    assert policy.leave.reassign == ("urgent", "high")


def test_base_policy_is_valid():
    assert validate_directory(BASE).units


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda p: p.name)
def test_invalid_policy_reports_exact_errors(case, tmp_path):
    rules = make_policy(tmp_path, case)
    with pytest.raises(PolicyError) as raised:
        validate_directory(rules)
    expected = (case / "expected.txt").read_text().splitlines()
    assert [str(problem) for problem in raised.value.problems] == expected


def test_cli_validate_reports_all_errors_and_exits_1(tmp_path):
    case = next(c for c in INVALID_CASES if c.name == "unknown-references")
    rules = make_policy(tmp_path, case)
    result = CliRunner().invoke(cli, ["validate", "--rules", str(rules)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[:-1] == (case / "expected.txt").read_text().splitlines()
    assert lines[-1] == "9 problems found"
    assert "Traceback" not in result.output


def test_cli_validate_json(tmp_path):
    case = next(c for c in INVALID_CASES if c.name == "cron-schedules")
    rules = make_policy(tmp_path, case)
    result = CliRunner().invoke(cli, ["validate", "--rules", str(rules), "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    first = report["problems"][0]
    where = (first["file"], first["line"], first["col"], first["where"])
    assert where == ("rules/jobs.yaml", 3, 15, "jobs[0].schedule")
    assert "six fields" in first["what"]


def test_cli_validate_limits_text_output(tmp_path):
    case = next(c for c in INVALID_CASES if c.name == "unknown-references")
    rules = make_policy(tmp_path, case)
    result = CliRunner().invoke(cli, ["validate", "--rules", str(rules), "--max-errors", "2"])
    assert result.stderr.splitlines()[2:] == ["… and 7 more", "9 problems found"]


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"units: [\n", b"---\na: 1\n---\nb: 2\n", b"42\n",
                                     b"? [a, b]\n: c\n", b"units: !!python/object:os.system x\n"])
def test_garbage_files_never_raise_tracebacks(content, tmp_path):
    rules = make_policy(tmp_path)
    (rules / "units.yaml").write_bytes(content)
    result = CliRunner().invoke(cli, ["validate", "--rules", str(rules)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("rules/units.yaml:")


def test_missing_rules_directory(tmp_path):
    result = CliRunner().invoke(cli, ["validate", "--rules", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere'}:1:1: (directory): the rules directory does not exist" in result.stderr
