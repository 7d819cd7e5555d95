"""The ledger says whether the applied policy was committed: rulesctl.applies.git_dirty
is false when the rules directory is clean in its git checkout, true when a file under it is
modified or untracked (the recorded commit is then not what was applied), NULL outside a git
checkout; history and show display it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from apply_support import invoke, rows

from engine.migrate.apply import apply, git_commit
from engine.migrate.ledger import describe_git, git_dirty
from engine.project import build


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(policies) -> Path:
    """A git repository holding a policy folder (rules/) and another file outside it, all committed."""
    folder = policies.folder("repo")
    git(folder, "init", "-q")
    (folder / "NOTES.md").write_text("not policy\n")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "policy")
    return folder


def test_git_dirty_looks_at_the_rules_directory_only(repo, tmp_path):
    rules = repo / "rules"
    assert git_dirty(rules) is False
    (repo / "NOTES.md").write_text("edited, but not policy\n")          # outside rules/: still clean
    assert git_dirty(rules) is False
    (rules / "units.yaml").write_text((rules / "units.yaml").read_text() + "# a comment\n")
    assert git_dirty(rules) is True
    git(repo, "commit", "-q", "-am", "comment")
    assert git_dirty(rules) is False
    (rules / "extra.yaml").write_text("# untracked\n")                   # untracked under rules/ counts
    assert git_dirty(rules) is True

    elsewhere = tmp_path / "not-a-repo"
    shutil.copytree(rules, elsewhere)
    assert git_dirty(elsewhere) is None and git_commit(elsewhere) is None
    assert git_dirty(tmp_path / "missing") is None


def test_describe_git():
    assert describe_git(None, None) == "git -"
    assert describe_git("0123456789abcdef0123", False) == "git 0123456789ab"
    assert describe_git("0123456789abcdef0123", True) == "git 0123456789ab+dirty"
    assert describe_git("0123456789abcdef0123", True, 40) == "git 0123456789abcdef0123+dirty"
    assert describe_git(None, True) == "git no-commit+dirty"            # a repository with no commit yet


@pytest.mark.db
def test_the_ledger_records_whether_the_rules_were_committed(database_url, repo, policies):
    rules = repo / "rules"
    head = git(repo, "rev-parse", "HEAD")
    policy, objects = build(rules)
    assert apply(database_url, objects, policy, rules_dir=rules).outcome == "applied"               # 1 clean

    (rules / "units.yaml").write_text((rules / "units.yaml").read_text() + "# uncommitted\n")
    assert apply(database_url, objects, policy, rules_dir=rules).outcome == "no_change"             # 2 dirty

    outside = policies.rules("outside")                                   # under tmp_path: no git checkout
    policy, objects = build(outside)
    assert apply(database_url, objects, policy, rules_dir=outside).outcome == "no_change"           # 3 NULL

    assert rows(database_url, "SELECT id, git_commit, git_dirty FROM rulesctl.applies ORDER BY id") == [
        (1, head, False), (2, head, True), (3, None, None)]

    shown_history = invoke("history", "--database-url", database_url)
    assert shown_history.exit_code == 0, f"{shown_history.output}{shown_history.exception!r}"
    history = shown_history.stdout.splitlines()
    assert [line.split()[8:10] for line in history] == [
        ["git", "-"], ["git", f"{head[:12]}+dirty"], ["git", head[:12]]]
    shown = invoke("show", "2", "--database-url", database_url).stdout.splitlines()[0]
    assert shown.endswith(f"git {head}+dirty (uncommitted changes in the rules directory: the commit is not what "
                          "was applied)")
    assert invoke("show", "1", "--database-url", database_url).stdout.splitlines()[0].endswith(f"git {head}")
    assert invoke("show", "3", "--database-url", database_url).stdout.splitlines()[0].endswith("git -")
