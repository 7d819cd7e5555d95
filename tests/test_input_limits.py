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
import yaml
from click.testing import CliRunner

from engine.cli import cli
from engine.errors import PolicyError
from engine.validate import validate_directory
from policy_cases import make_policy


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


def _validate_cli(monkeypatch, workdir: Path):
    monkeypatch.chdir(workdir)
    return CliRunner().invoke(cli, ["validate", "--rules", "rules"])


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


def test_recursive_alias_is_refused(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", "loop: &x [*x]\n")
    monkeypatch.chdir(tmp_path)
    problems = _problems(Path("rules"))
    assert problems == ["rules/units.yaml:15:7: (file): an alias refers to the anchor it is inside of "
                        "(a recursive alias)"]


def test_recursive_mapping_alias_is_refused(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", "loop: &x {self: *x}\n")
    monkeypatch.chdir(tmp_path)
    assert any("recursive alias" in p for p in _problems(Path("rules")))


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused_without_recursion_error(style, tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    if style == "flow":
        _append(rules, "units.yaml", "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    else:
        _append(rules, "units.yaml", "deep:\n" + "".join(" " * (2 * i) + "- \n" for i in range(1, 60)))
    started = time.monotonic()
    result = _validate_cli(monkeypatch, tmp_path)
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 1, result.output
    assert "rules/units.yaml:" in result.output and "nesting deeper than 32 levels" in result.output
    assert "RecursionError" not in result.output and "internal error" not in result.output


def test_deep_nesting_through_aliases_is_refused(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    chain = ["x-chain:", "  a0: &a0 [leaf]"] + [f"  a{i}: &a{i} [*a{i - 1}]" for i in range(1, 2000)]
    _append(rules, "units.yaml", "\n".join(chain) + "\n")
    monkeypatch.chdir(tmp_path)
    problems = _problems(Path("rules"))
    assert len(problems) == 1 and "nesting deeper than 32 levels (through aliases)" in problems[0]


def test_oversized_file_is_refused_unread(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", "# " + "x" * (1 << 20) + "\n")
    monkeypatch.chdir(tmp_path)
    assert _problems(Path("rules")) == ["rules/units.yaml:1:1: (file): larger than 1024 KiB; "
                                        "a policy file is never that big"]


def test_ordinary_anchors_still_work(tmp_path, monkeypatch):
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
def test_unusable_text_is_a_located_problem(value, what, tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    (rules / "units.yaml").write_text((rules / "units.yaml").read_text().replace("name: Desk", f"name: {value}"))
    monkeypatch.chdir(tmp_path)
    assert _problems(Path("rules")) == [f"rules/units.yaml:13:11: units[2].name: {what}"]


def test_unusable_text_in_a_key_is_a_located_problem(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    _append(rules, "units.yaml", '"bad\\ud800key": 1\n')
    monkeypatch.chdir(tmp_path)
    assert "rules/units.yaml:15:1: (file): a key contains a lone surrogate (U+D800), which is not Unicode text" \
        in _problems(Path("rules"))


# --- item 8: symbolic links ---------------------------------------------------------------------

def test_symlink_leaving_the_rules_directory_is_refused(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (rules / "jobs.yaml").rename(outside / "jobs.yaml")
    (rules / "jobs.yaml").symlink_to(outside / "jobs.yaml")
    result = _validate_cli(monkeypatch, tmp_path)
    assert result.exit_code == 1
    target = str((outside / "jobs.yaml").resolve())
    assert result.output.splitlines()[0] == (
        f"rules/jobs.yaml:1:1: (file): a symbolic link to {target!r}, outside the rules directory; policy "
        f"files must live in the rules directory (copy the file there)")
    assert "missing" not in result.output                 # refused, not also reported as absent


def test_dangling_symlink_is_refused(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    (rules / "jobs.yaml").unlink()
    (rules / "jobs.yaml").symlink_to(rules / "nowhere.txt")
    monkeypatch.chdir(tmp_path)
    problems = _problems(Path("rules"))
    assert len(problems) == 1 and "which is not a file" in problems[0]


def test_symlink_inside_the_rules_directory_is_read(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    (rules / "shared").mkdir()
    (rules / "jobs.yaml").rename(rules / "shared" / "jobs.yaml")
    (rules / "jobs.yaml").symlink_to(Path("shared") / "jobs.yaml")
    assert validate_directory(rules).jobs


def test_rules_directory_that_is_itself_a_link_is_read(tmp_path, monkeypatch):
    rules = make_policy(tmp_path)
    os.symlink(rules, tmp_path / "linked-rules")
    assert validate_directory(tmp_path / "linked-rules").units
