"""The live policy as the baseline (`--baseline-live`, `plan --simulate`): read back from the git
commit its apply recorded, compared with the edited rules, and the given database left alone."""

from __future__ import annotations

import re
import shutil
import subprocess

import psycopg
import pytest
from simulate_support import REPO_RULES

from engine.migrate.apply import apply
from engine.migrate.plan import build_plan
from engine.migrate.report import as_markdown, as_text
from engine.project import DEFAULT_TEMPLATES, build
from engine.simulate.live import SimulationError, live_rules, simulate_against_live

pytestmark = pytest.mark.db


def git(where, *args):
    subprocess.run(["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   check=True, capture_output=True)


def counts(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM rulesctl.applies), (SELECT count(*) FROM staff_profiles),"
                            " (SELECT count(*) FROM assignments)").fetchone()


def test_plan_simulate_compares_the_applied_commit_with_the_edited_rules(database_url, server_url, tmp_path):
    project = tmp_path / "project"
    rules = project / "rules"
    shutil.copytree(REPO_RULES, rules)
    git(project, "init", "-q")
    git(project, "add", "rules")
    git(project, "commit", "-q", "-m", "policy")
    policy, objects = build(rules)
    assert apply(database_url, objects, policy, rules_dir=rules).outcome == "applied"
    units = rules / "units.yaml"
    units.write_text(re.sub(r"wip_limit: \d+", "wip_limit: 1", units.read_text()))     # the change under review
    edited, edited_objects = build(rules)
    before = counts(database_url)

    simulation = simulate_against_live(database_url, rules, edited, edited_objects, days=1, per_day=150,
                                       scratch_url=server_url)     # the session cluster: no initdb per test

    assert counts(database_url) == before                     # the given database was not written to
    base, new = simulation.summary["policies"]["baseline"], simulation.summary["policies"]["proposed"]
    assert base["items"] == new["items"] > 100
    assert new["wait_minutes"]["p95"] > base["wait_minutes"]["p95"]
    plan = build_plan(database_url, edited, edited_objects, DEFAULT_TEMPLATES)
    markdown = as_markdown(plan, simulation)
    assert markdown.index("### Impact\n") < markdown.index("### Impact: simulation") < markdown.index("### Steps")
    assert "| wait p95 |" in markdown
    text = as_text(plan, colour=False, simulation=simulation)
    assert text.index("Impact:") < text.index("Simulation:")
    assert re.search(r"wait p95 +[\d.]+ min +[\d.]+ min +\+", text)


def test_a_policy_applied_from_outside_git_cannot_be_the_baseline(database_url, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(REPO_RULES, rules)
    policy, objects = build(rules)
    apply(database_url, objects, policy, rules_dir=rules)
    with pytest.raises(SimulationError, match="outside a git checkout.*--baseline DIR"):
        live_rules(database_url, rules, tmp_path / "out")


def test_a_database_never_applied_to_has_no_baseline(database_url, tmp_path):
    with pytest.raises(SimulationError, match="no successful rulesctl apply"):
        live_rules(database_url, REPO_RULES, tmp_path / "out")
