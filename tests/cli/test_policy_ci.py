"""The CI example: .github/workflows/policy.yml and scripts/policy-ci run the same
rulesctl commands (parsed from both, so they cannot drift apart); the workflow's plan step treats
exit 2 (changes pending) as success; and scripts/policy-ci, run in a copy of the project against a
fresh database, validates, checks generated/, plans with --out and applies the saved plan, and a
second run plans nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from apply_support import rows

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "policy.yml"
SCRIPT = ROOT / "scripts" / "policy-ci"
RULESCTL = Path(sys.executable).parent / "rulesctl"
STANDARD_ACTIONS = {"actions/checkout", "actions/setup-python", "actions/upload-artifact",
                    "actions/download-artifact", "actions/github-script"}
COMMAND = re.compile(r"^\s*(rulesctl\s.*?)\s*$")


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def workflow_steps() -> list[dict]:
    """Every step of every job, in file order (plan, then apply)."""
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def rulesctl_lines(text: str) -> list[str]:
    """The shell lines that run rulesctl (comments aside), whitespace normalised."""
    return [" ".join(match.group(1).split()) for line in text.splitlines()
            if not line.lstrip().startswith("#") and (match := COMMAND.match(line))]


def test_the_workflow_and_the_script_run_the_same_commands():
    in_workflow = [line for step in workflow_steps() if "run" in step for line in rulesctl_lines(step["run"])]
    in_script = rulesctl_lines(SCRIPT.read_text())
    assert in_workflow == in_script == [
        "rulesctl validate",
        "rulesctl render --check",
        "rulesctl plan --format markdown --out plan.json > plan.md || code=$?",
        "rulesctl apply plan.json",
    ]


def test_the_workflow_plans_on_pull_requests_and_applies_the_saved_plan_on_merge():
    flow = workflow()
    assert flow[True]["pull_request"]["types"] == ["opened", "synchronize", "reopened", "closed"]   # `on:` is True
    plan, apply = flow["jobs"]["plan"], flow["jobs"]["apply"]
    assert plan["if"] == "github.event.action != 'closed'"
    assert apply["if"] == "github.event.action == 'closed' && github.event.pull_request.merged == true"
    uploaded = next(s for s in plan["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    downloaded = next(s for s in apply["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert uploaded["with"]["name"] == downloaded["with"]["name"] == "policy-plan"
    assert "plan.json" in uploaded["with"]["path"].split()
    assert downloaded["with"]["run-id"] == "${{ steps.planned.outputs.run-id }}"
    comment = next(s for s in plan["steps"] if s.get("name") == "Comment the plan on the pull request")
    assert "gh pr comment" in comment["run"] and "plan.md" in comment["run"]
    for step in plan["steps"] + apply["steps"]:
        if "uses" in step:
            assert step["uses"].split("@")[0] in STANDARD_ACTIONS, step["uses"]
        if "rulesctl plan" in step.get("run", "") or "rulesctl apply" in step.get("run", ""):
            assert step["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"


@pytest.mark.parametrize(("plan_exit", "step_exit"), [(0, 0), (2, 0), (3, 3), (1, 1)])
def test_the_workflow_plan_step_treats_changes_pending_as_success(tmp_path, plan_exit, step_exit):
    """The Plan step's shell, run with a stand-in rulesctl that exits as `plan` would."""
    plan_step = next(step for step in workflow_steps() if step.get("id") == "plan")
    stub = tmp_path / "bin" / "rulesctl"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\necho '{{}}' > plan.json\necho '## plan'\nexit {plan_exit}\n")
    stub.chmod(0o755)
    output = tmp_path / "github_output"
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(["bash", "-e", "-c", plan_step["run"]], cwd=tmp_path, env=env, capture_output=True,
                            text=True)
    assert result.returncode == step_exit, result.stdout + result.stderr
    assert output.read_text() == f"code={plan_exit}\n"
    assert (tmp_path / "plan.md").read_text() == "## plan\n"


def project_copy(tmp_path: Path) -> Path:
    """What the pipeline reads: rules/, generated/, pyproject.toml and the script (no .venv, no git)."""
    project = tmp_path / "project"
    for folder in ("rules", "generated"):
        shutil.copytree(ROOT / folder, project / folder)
    shutil.copy2(ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "scripts").mkdir()
    shutil.copy2(SCRIPT, project / "scripts" / "policy-ci")
    # rendered afresh: this is about the pipeline, not about the checkout's generated/ (which
    # `rulesctl render --check` in scripts/test covers), so a template being edited does not fail it
    subprocess.run([str(RULESCTL), "render", "--rules", str(project / "rules"), "--out", str(project / "generated")],
                   check=True, capture_output=True)
    return project


def policy_ci(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["RULESCTL"] = str(RULESCTL)
    return subprocess.run([str(project / "scripts" / "policy-ci"), *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600)


def said(result: subprocess.CompletedProcess) -> list[str]:
    return [line.removeprefix("policy-ci: ") for line in result.stderr.splitlines() if line.startswith("policy-ci: ")]


@pytest.mark.db
def test_policy_ci_plans_and_applies_the_saved_plan_and_a_second_run_plans_nothing(database_url, tmp_path):
    project = project_copy(tmp_path)
    first = policy_ci(project, "--database-url", database_url)       # no terminal: the saved plan needs none
    assert first.returncode == 0, first.stdout + first.stderr
    assert said(first) == ["validate", "validate: ok", "render --check", "render --check: ok", "plan",
                           "plan: changes pending (exit 2); plan.md and plan.json written", "apply plan.json",
                           "apply: ok"]
    assert (project / "plan.json").is_file() and (project / "plan.md").read_text().strip()
    assert re.search(r"^applied: ran \d+ steps", first.stdout, re.MULTILINE), first.stdout

    second = policy_ci(project, f"--database-url={database_url}")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "plan: in sync (exit 0); plan.md and plan.json written" in said(second)
    assert re.search(r"^no changes: in sync", second.stdout, re.MULTILINE), second.stdout
    # the copy is no git checkout: no commit, and git_dirty NULL
    assert rows(database_url, "SELECT outcome, git_commit, git_dirty FROM rulesctl.applies ORDER BY id") == [
        ("applied", None, None), ("no_change", None, None)]


def test_policy_ci_stops_at_the_first_failing_step(tmp_path):
    """A stale generated/ fails render --check (exit 1): nothing is planned, no database is touched."""
    project = project_copy(tmp_path)
    stale = sorted((project / "generated").rglob("*.sql"))[0]
    stale.write_text(stale.read_text() + "-- edited by hand\n")
    result = policy_ci(project, "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1, result.stdout + result.stderr
    assert said(result) == ["validate", "validate: ok", "render --check"]
    assert f"{stale.relative_to(project)}: stale" in result.stderr
    assert not (project / "plan.json").exists()


def test_policy_ci_rejects_an_unknown_argument(tmp_path):
    result = policy_ci(project_copy(tmp_path), "--bogus")
    assert result.returncode == 1 and "policy-ci: unknown argument: --bogus" in result.stderr
    assert "Usage: scripts/policy-ci [--database-url URL]" in result.stderr
