"""Hostile input never hangs, never exhausts memory and never ends in a traceback: the YAML
loader is bounded (aliases, values, depth, size), text a database cannot hold is refused where
it is written, names that become PostgreSQL identifiers or `name` values fit in 63 bytes, and
symbolic links cannot pull files from outside rules/ into the policy. Every refusal is a
`path:line:col: where: what` problem and `rulesctl validate` exits 1."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from policy_cases import make_policy

from engine.cli import cli
from engine.errors import PolicyError
from engine.policy.validate import validate_directory
from engine.project import build


def _problems(rules: Path) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        validate_directory(rules)
    return [str(problem) for problem in raised.value.problems]


def _append(rules: Path, name: str, text: str) -> None:
    path = rules / name
    path.write_text(path.read_text() + text)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["x-bomb:", "  a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _validate_cli(workdir: Path):
    return CliRunner().invoke(cli, ["validate", "--rules", str(workdir / "rules")])


# --- item 4: a bounded loader -----------------------------------------------------------------

def _limited_validate(workdir: Path) -> subprocess.CompletedProcess:
    """`rulesctl validate` in a child held to 1 GiB and 20 s, so a loader without bounds fails
    this test instead of taking the machine down."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    return subprocess.run([sys.executable, "-c", "from engine.cli import cli; cli()", "validate", "--rules", "rules"],
                          cwd=workdir, capture_output=True, text=True, timeout=20, preexec_fn=limit)


def test_alias_bomb_is_refused_within_a_second(tmp_path):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", _alias_bomb())             # 9 levels x 9 aliases: 387 million values
    assert len((rules / "units.yaml").read_bytes()) < 3000
    started = time.monotonic()
    result = _limited_validate(tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 2.0, f"an alias bomb took {elapsed:.2f} s to refuse"   # a second plus starting Python
    output = result.stdout + result.stderr
    assert "rules/units.yaml:16:47: (file): aliases expand to more than 10000 values" in output
    assert "Traceback" not in output and "internal error" not in output


def test_recursive_alias_is_refused(tmp_path):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", "loop: &x [*x]\n")
    problems = _problems(rules)
    assert problems == ["rules/units.yaml:15:7: (file): an alias refers to the anchor it is inside of "
                        "(a recursive alias)"]


def test_recursive_mapping_alias_is_refused(tmp_path):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", "loop: &x {self: *x}\n")
    assert any("recursive alias" in p for p in _problems(rules))


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused_without_recursion_error(style, tmp_path):
    rules = make_policy(tmp_path)
    if style == "flow":
        _append(rules, "units.yaml", "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    else:
        _append(rules, "units.yaml", "deep:\n" + "".join(" " * (2 * i) + "- \n" for i in range(1, 60)))
    started = time.monotonic()
    result = _validate_cli(tmp_path)
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 1, result.output
    assert "rules/units.yaml:" in result.output and "nesting deeper than 32 levels" in result.output
    assert "RecursionError" not in result.output and "internal error" not in result.output


def test_deep_nesting_through_aliases_is_refused(tmp_path):
    rules = make_policy(tmp_path)
    chain = ["x-chain:", "  a0: &a0 [leaf]"] + [f"  a{i}: &a{i} [*a{i - 1}]" for i in range(1, 2000)]
    _append(rules, "units.yaml", "\n".join(chain) + "\n")
    problems = _problems(rules)
    assert len(problems) == 1 and "nesting deeper than 32 levels (through aliases)" in problems[0]


def test_oversized_file_is_refused_unread(tmp_path):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", "# " + "x" * (1 << 20) + "\n")
    assert _problems(rules) == ["rules/units.yaml:1:1: (file): larger than 1024 KiB; "
                                        "a policy file is never that big"]


def test_ordinary_anchors_still_work(tmp_path):
    rules = make_policy(tmp_path)
    units = (rules / "units.yaml").read_text().replace("name: Root", "name: &root-name Root")
    units = units.replace("name: Desk", "name: *root-name")
    (rules / "units.yaml").write_text(units)
    policy = validate_directory(rules)
    assert {u.id: u.name for u in policy.units}["unit-desk"] == "Root"


# --- item 6: text PostgreSQL cannot hold, or that has no business in a policy -------------------

@pytest.mark.parametrize(("value", "what"), [
    ('"Desk\\ud800"', "contains a lone surrogate (U+D800), which is not Unicode text"),
    ('"Desk\\0"', "contains the control character U+0000; only tab and newline are allowed in text"),
    ('"Desk\\e[31m"', "contains the control character U+001B; only tab and newline are allowed in text"),
])
def test_unusable_text_is_a_located_problem(value, what, tmp_path):
    rules = make_policy(tmp_path)
    (rules / "units.yaml").write_text((rules / "units.yaml").read_text().replace("name: Desk", f"name: {value}"))
    assert _problems(rules) == [f"rules/units.yaml:13:11: units[2].name: {what}"]


def test_unusable_text_in_a_key_is_a_located_problem(tmp_path):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", '"bad\\ud800key": 1\n')
    assert "rules/units.yaml:15:1: (file): a key contains a lone surrogate (U+D800), which is not Unicode text" \
        in _problems(rules)


def test_unprintable_text_in_paths_and_keys_prints(tmp_path):
    """A surrogate in a key under which more errors sit, and a directory name that is not
    UTF-8 (Python holds it as surrogates): every problem still prints and dumps as JSON."""
    rules = make_policy(tmp_path).rename(tmp_path / os.fsdecode(b"bad\xff"))
    _replace(rules, "sla.yaml", "  ticket:", '  "ticket\\ud800":')
    _replace(rules, "sla.yaml", "resolution: 8h", "resolution: 8x")
    result = CliRunner().invoke(cli, ["validate", "--rules", str(rules)])
    assert result.exit_code == 1
    assert "bad\\udcff/sla.yaml:7:37: matrix.ticket\\ud800.low.resolution: '8x' is not in the expected form" \
        in result.output
    json_result = CliRunner().invoke(cli, ["validate", "--rules", str(rules), "--format", "json"])
    assert json_result.exit_code == 1 and "ticket\\\\ud800" in json_result.output


# --- item 6: values that validated and then broke a later stage -------------------------------------

def _replace(rules: Path, file: str, old: str, new: str) -> None:
    text = (rules / file).read_text()
    assert text.count(old) == 1, (file, old)
    (rules / file).write_text(text.replace(old, new))


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("units.yaml", "id: unit-desk", 'id: "unit-desk\\n"',
     "rules/units.yaml:12:9: units[2].id: 'unit-desk\\n' is not in the expected form (^unit-[a-z0-9][a-z0-9-]*$)"),
    ("jobs.yaml", "name: sla-monitoring", 'name: "sla-monitoring\\n"',
     "rules/jobs.yaml:2:11: jobs[0].name: 'sla-monitoring\\n' is not in the expected form (^[a-z0-9][a-z0-9-]*$)"),
    ("calendars.yaml", "date: 2027-01-03", "date: 2027-02-30",
     "rules/calendars.yaml:9:15: calendars[0].closures[0].date: '2027-02-30' is not a date of the calendar "
     "(YYYY-MM-DD)"),
    ("sla.yaml", "resolution: 8h", "resolution: 99999999h",
     "rules/sla.yaml:7:37: matrix.ticket.low.resolution: 99999999h is longer than 8760h (a year), the longest "
     "duration rulesctl accepts"),
    ("assignment_rules.yaml", "raise_every: 2h", "raise_every: 9999999h",
     "rules/assignment_rules.yaml:6:24: queue.aging.raise_every: 9999999h is longer than 8760h (a year), the longest "
     "duration rulesctl accepts"),
    ("assignment_rules.yaml", "raise_every: 2h", "raise_every: 0m",
     "rules/assignment_rules.yaml:6:24: queue.aging.raise_every: queue aging must wait longer than zero"),
    ("escalation.yaml", "at: 100%", "at: 99999999%",
     "rules/escalation.yaml:6:14: chains[0].levels[1].at: 99999999% is past 1000%, the latest level rulesctl accepts"),
    ("escalation.yaml", "at: 100%", "at: 100.125%",
     "rules/escalation.yaml:6:14: chains[0].levels[1].at: '100.125%' is not in the expected form (a share such as 75% "
     "or 12.5%, at most two decimals)"),
    ("jobs.yaml", "retention: 30 days", "retention: 99999999999 days",
     "rules/jobs.yaml:8:16: jobs[1].retention: '99999999999 days' is longer than 3650 days"),
    ("jobs.yaml", 'schedule: "0 2 * * *"', 'schedule: "\\u0663 2 * * *"',
     "rules/jobs.yaml:6:15: jobs[1].schedule: '\u0663 2 * * *' is not a schedule pg_cron runs: use five cron fields "
     "(minute hour day month weekday) or 'N seconds' with N from 1 to 59"),
    ("calendars.yaml", "- date: 2027-01-03", "- from: 2000-01-01\n        to: 9999-12-31",
     "rules/calendars.yaml:10:13: calendars[0].closures[0].to: a closure of 2921940 days; one closure may span at most "
     "7305 days"),
])
def test_values_that_broke_later_stages_are_located_problems(file, old, new, expected, tmp_path):
    rules = make_policy(tmp_path)
    _replace(rules, file, old, new)
    assert _problems(rules) == [expected]


def test_description_with_a_dollar_quote_is_data(tmp_path):
    """`$fn$` in a description used to end match_assignment_rule's body: now it is just text."""
    rules = make_policy(tmp_path)
    _replace(rules, "assignment_rules.yaml", "precedence: 10",
             "precedence: 10\n    description: 'x $fn$ drop table x; --'")
    _, objects = build(rules)                    # parse-checked
    matcher = next(o for o in objects if o.key.startswith("function:public.match_assignment_rule"))
    assert "-- rule-urgent, precedence 10: x ＄fn＄ drop table x; --\n" in matcher.sql
    assert matcher.sql.count("$fn$") == 2


# --- item 7: names PostgreSQL would cut short ----------------------------------------------------

def test_job_names_sharing_a_63_byte_prefix_are_refused(tmp_path):
    rules = make_policy(tmp_path)
    prefix = "sla-monitoring-" + "x" * 48                      # 63 bytes
    _replace(rules, "jobs.yaml", "name: sla-monitoring", f"name: {prefix}-a")
    _replace(rules, "jobs.yaml", "name: escalation-cleanup", f"name: {prefix}-b")
    assert _problems(rules) == [
        f"rules/jobs.yaml:{line}:11: jobs[{index}].name: job name (cron.job.jobname) is 65 bytes long; "
        f"PostgreSQL keeps 63 and would cut it short" for index, line in ((0, 2), (1, 5))]


def test_a_63_byte_job_name_is_fine(tmp_path):
    rules = make_policy(tmp_path)
    _replace(rules, "jobs.yaml", "name: sla-monitoring", "name: " + "j" * 63)
    assert validate_directory(rules).jobs[0].name == "j" * 63


def test_name_lengths_are_counted_in_bytes(tmp_path):
    """The schemas only allow ASCII names today; the byte count is what holds if they widen."""
    from engine.policy import checks
    from engine.policy.load import load_file
    rules = make_policy(tmp_path)
    _replace(rules, "jobs.yaml", "name: sla-monitoring", "name: " + "é" * 32)     # 32 characters, 64 bytes
    policy_file, _ = load_file(rules / "jobs.yaml")
    assert [str(p) for p in checks.check_name_lengths({}, {"jobs": policy_file})] == [
        "rules/jobs.yaml:2:11: jobs[0].name: job name (cron.job.jobname) is 64 bytes long; PostgreSQL keeps 63 and "
        "would cut it short"]


# --- item 8: symbolic links ---------------------------------------------------------------------

def test_symlink_leaving_the_rules_directory_is_refused(tmp_path):
    rules = make_policy(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (rules / "jobs.yaml").rename(outside / "jobs.yaml")
    (rules / "jobs.yaml").symlink_to(outside / "jobs.yaml")
    result = _validate_cli(tmp_path)
    assert result.exit_code == 1
    target = str((outside / "jobs.yaml").resolve())
    assert result.output.splitlines()[0] == (
        f"rules/jobs.yaml:1:1: (file): a symbolic link to {target!r}, outside the rules directory; policy "
        f"files must live in the rules directory (copy the file there)")
    assert "missing" not in result.output                 # refused, not also reported as absent


def test_dangling_symlink_is_refused(tmp_path):
    rules = make_policy(tmp_path)
    (rules / "jobs.yaml").unlink()
    (rules / "jobs.yaml").symlink_to(rules / "nowhere.txt")
    problems = _problems(rules)
    assert len(problems) == 1 and "which is not a file" in problems[0]


def test_symlink_inside_the_rules_directory_is_read(tmp_path):
    rules = make_policy(tmp_path)
    (rules / "shared").mkdir()
    (rules / "jobs.yaml").rename(rules / "shared" / "jobs.yaml")
    (rules / "jobs.yaml").symlink_to(Path("shared") / "jobs.yaml")
    assert validate_directory(rules).jobs


def test_rules_directory_that_is_itself_a_link_is_read(tmp_path):
    rules = make_policy(tmp_path)
    os.symlink(rules, tmp_path / "linked-rules")
    assert validate_directory(tmp_path / "linked-rules").units
