"""The command line as a user meets it, in real processes (issues 15 item 14, 20 (c) and 17.5):
the apply confirmation prompt answered through a terminal, --auto-approve, the 'not approved'
ledger row, no terminal (CI) refusing unless --auto-approve or a saved plan is given,
`rulesctl local start|stop|status`, and the local cluster used without a URL only where the
project lives (run elsewhere, rulesctl refuses and says how to give a URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from apply_support import SKILLS_WITHOUT_NETWORK, SLA_TIGHTER, ledger, rows
from cluster_support import make_traversable_tempdir
from policy_cases import make_policy

from engine.database.local import LocalCluster

pytestmark = pytest.mark.db

RULESCTL = Path(sys.executable).parent / "rulesctl"


def run(*args: str, cwd: Path | None = None, stdin=None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return subprocess.run([str(RULESCTL), *args], cwd=cwd, env=env, stdin=stdin if stdin is not None else
                          subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def run_in_terminal(*args: str, answer: str | None) -> subprocess.CompletedProcess:
    """Run with a terminal as stdin (so apply asks), typing `answer` and Enter at the prompt."""
    master, slave = os.openpty()
    try:
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        process = subprocess.Popen([str(RULESCTL), *args], env=env, stdin=slave, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        os.close(slave)
        if answer is not None:
            os.write(master, f"{answer}\n".encode())      # waits in the terminal's line buffer for the prompt
        stdout, stderr = process.communicate(timeout=180)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        os.close(master)


def urgent_resolution(url: str) -> int:
    return rows(url, "SELECT resolution_minutes FROM public.sla_configs WHERE priority = 'urgent'")[0][0]


# ------------------------------------------------------------------------------------------ the prompt

def test_apply_asks_at_a_terminal_and_no_changes_nothing(base_url, policies):
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    refused = run_in_terminal("apply", "--rules", rules, "--database-url", base_url, answer="n")
    assert refused.returncode == 1, refused.stderr
    assert "2 step(s): 1 run, 1 update" in refused.stdout            # the plan is shown before the question
    assert "Apply these steps? [y/N]:" in refused.stdout
    assert refused.stderr.strip().endswith("apply refused: not approved; nothing was changed")
    assert urgent_resolution(base_url) == 120
    last = ledger(base_url)[-1]
    assert (last[1], last[3]) == ("refused", "not approved at the prompt; nothing was changed")


def test_apply_asks_at_a_terminal_and_yes_applies(base_url, policies):
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    applied = run_in_terminal("apply", "--rules", rules, "--database-url", base_url, answer="y")
    assert applied.returncode == 0, applied.stderr
    assert "Apply these steps? [y/N]:" in applied.stdout
    assert "applied: ran 2 steps (1 run, 1 update)" in applied.stdout
    assert urgent_resolution(base_url) == 60
    assert [entry[1] for entry in ledger(base_url)] == ["applied", "applied"]


def test_an_empty_answer_is_no(base_url, policies):
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    refused = run_in_terminal("apply", "--rules", rules, "--database-url", base_url, answer="")
    assert refused.returncode == 1 and "not approved" in refused.stderr
    assert urgent_resolution(base_url) == 120


def test_auto_approve_does_not_ask_even_at_a_terminal(base_url, policies):
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    applied = run_in_terminal("apply", "--rules", rules, "--database-url", base_url, "--auto-approve", answer=None)
    assert applied.returncode == 0, applied.stderr
    assert "Apply these steps?" not in applied.stdout
    assert urgent_resolution(base_url) == 60


def test_without_a_terminal_apply_refuses_and_records_it(base_url, policies):
    """CI pipes stdin: like Terraform, no terminal to ask on is no approval (exit 1, nothing applied);
    the refusal is an attempt like any other, so the ledger records it as refused, with the reason."""
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    refused = run("apply", "--rules", rules, "--database-url", base_url, stdin=subprocess.PIPE)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip().endswith(
        "apply refused: no terminal to confirm on: pass --auto-approve, or apply a saved plan file "
        "(`rulesctl plan --out plan.json`, then `rulesctl apply plan.json`); nothing was changed")
    assert "Apply these steps?" not in refused.stdout and "applied:" not in refused.stdout
    assert urgent_resolution(base_url) == 120
    recorded = rows(base_url, "SELECT outcome, message FROM rulesctl.applies ORDER BY id")
    assert [entry[0] for entry in recorded] == ["applied", "refused"]
    assert recorded[-1] == ("refused", "no terminal to confirm on: pass --auto-approve, or apply a saved plan "
                                       "file (`rulesctl plan --out plan.json`, then `rulesctl apply plan.json`); "
                                          "nothing was changed")
    assert run("plan", "--rules", rules, "--database-url", base_url).returncode == 2       # still pending


def test_without_a_terminal_auto_approve_applies(base_url, policies):
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    applied = run("apply", "--rules", rules, "--database-url", base_url, "--auto-approve", stdin=subprocess.PIPE)
    assert applied.returncode == 0, applied.stderr
    assert "applied: ran 2 steps (1 run, 1 update)" in applied.stdout and urgent_resolution(base_url) == 60


def test_without_a_terminal_an_in_sync_database_needs_no_approval(base_url, policies):
    """Nothing to approve: a re-run in CI with nothing pending exits 0 and records no_change."""
    applied = run("apply", "--rules", str(policies.rules("base")), "--database-url", base_url, stdin=subprocess.PIPE)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith("no changes: in sync")
    assert [entry[1] for entry in ledger(base_url)] == ["applied", "no_change"]


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_a_saved_plan_applies_without_a_prompt(base_url, policies, tmp_path, terminal):
    """A saved plan was reviewed (in the pull request): applying it never asks, with or without a
    terminal. At a terminal the test types "n": had apply asked, it would have refused."""
    rules = str(policies.rules("after", sla=SLA_TIGHTER))
    plan_file = tmp_path / "plan.json"
    planned = run("plan", "--rules", rules, "--database-url", base_url, "--out", str(plan_file))
    assert planned.returncode == 2 and plan_file.is_file(), planned.stderr
    args = ("apply", str(plan_file), "--rules", rules, "--database-url", base_url)
    applied = run_in_terminal(*args, answer="n") if terminal else run(*args, stdin=subprocess.PIPE)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply these steps?" not in applied.stdout
    assert "applied: ran 2 steps (1 run, 1 update)" in applied.stdout
    assert urgent_resolution(base_url) == 60
    assert [entry[1] for entry in ledger(base_url)] == ["applied", "applied"]


def test_a_blocked_apply_exits_3_before_asking(base_url, policies):
    rules = str(policies.rules("skills", skills=SKILLS_WITHOUT_NETWORK))      # skill-network's row deleted
    blocked = run_in_terminal("apply", "--rules", rules, "--database-url", base_url, answer="y")
    assert blocked.returncode == 3, blocked.stderr
    assert "Apply these steps?" not in blocked.stdout
    assert blocked.stderr.startswith("apply blocked: 1 step(s) have hazards not allowed: seed-row-deleted")


# ------------------------------------------------------------------------------------------ no URL

@pytest.fixture
def elsewhere():
    """An empty directory that is no project (no rules/, no pyproject.toml)."""
    path = make_traversable_tempdir("rulesctl-elsewhere-")
    yield path
    LocalCluster(path / ".rulesctl").destroy()          # only if a bug made one
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.mark.parametrize("args", [("history",), ("show", "1"), ("local", "start"), ("local", "status")])
def test_without_a_url_outside_a_project_rulesctl_refuses(elsewhere, args):
    result = run(*args, cwd=elsewhere)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: no database: pass --database-url URL or set DATABASE_URL."), result.stderr
    assert f"{elsewhere} is not a project directory" in result.stderr
    assert not (elsewhere / ".rulesctl").exists()


def test_without_a_url_run_from_the_root_directory_rulesctl_refuses():
    assert not Path("/.rulesctl").exists()
    try:
        result = run("history", cwd=Path("/"))
        assert result.returncode == 1 and "pass --database-url URL" in result.stderr, result.stderr
        assert not Path("/.rulesctl").exists()
    finally:
        if Path("/.rulesctl").exists():                 # a regression must not leave a server behind
            LocalCluster(Path("/.rulesctl")).destroy()


def test_the_local_cluster_without_a_url_lives_in_the_project_and_local_commands_manage_it(elsewhere):
    project = make_traversable_tempdir("rulesctl-project-")
    cluster = LocalCluster(project / ".rulesctl")
    try:
        make_policy(project)
        # plan from elsewhere with --rules: the cluster goes next to the policy folder, not into the cwd
        planned = run("plan", "--rules", str(project / "rules"), cwd=elsewhere)
        assert planned.returncode == 2, planned.stderr             # an empty database: everything to create
        assert f"using the local cluster in {project / '.rulesctl'}/" in planned.stderr
        assert (project / ".rulesctl" / "data" / "PG_VERSION").is_file()
        assert not (elsewhere / ".rulesctl").exists()

        status = run("local", "status", cwd=project)                # the project's cluster by default
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"running: data {project / '.rulesctl' / 'data'}, port ")
        url = status.stdout.strip().splitlines()[-1]
        assert url == cluster.url and url.startswith("postgresql://postgres@127.0.0.1:")

        applied = run("apply", "--auto-approve", cwd=project)       # no URL: the local cluster
        assert applied.returncode == 0, applied.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT outcome FROM rulesctl.applies").fetchall() == [("applied",)]
        assert run("plan", cwd=project).returncode == 0

        stopped = run("local", "stop", cwd=project)
        assert stopped.returncode == 0 and stopped.stdout.strip() == "local cluster stopped"
        status = run("local", "status", "--dir", str(project / ".rulesctl"), cwd=elsewhere)
        assert status.returncode == 3 and status.stdout.startswith("stopped: ")

        started = run("local", "start", cwd=project)
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().splitlines()[-1] == url       # the same port, the same data
        assert "running in" in started.stderr
        history = run("history", cwd=project)
        assert history.stdout.split()[3:4] == ["applied"], history.stdout + history.stderr
    finally:
        cluster.destroy()
        subprocess.run(["rm", "-rf", str(project)], check=False)
