"""What is rendered, hashed and installed depends only on the policy's meaning: not on comments,
blank lines, key order, line numbers, the folder's name or the working directory. The plan
still names the YAML line of each step (from the loaded policy, never from SQL text)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster_support import REPO_ROOT

from engine.compiler.generate import generated_files
from engine.project import build


def relaid(target: Path) -> Path:
    """The shipped policy in a folder of another name, with comments and blank lines between
    the entries of every file and two files' keys re-ordered (so every line number moves)."""
    rules = target / "policy v2 (review)"
    shutil.copytree(REPO_ROOT / "rules", rules)
    for path in sorted(rules.glob("*.yaml")):
        text = path.read_text()
        text = re.sub(r"\n(\s*)- ", lambda m: f"\n{m.group(1)}# reviewed\n\n{m.group(1)}- ", text)
        path.write_text("# policy file, re-laid for the test\n\n" + text + "\n# end\n")
    for name in ("units.yaml", "sla.yaml"):
        path = rules / name
        data = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump(data, sort_keys=True, allow_unicode=True))
    return rules


def test_comments_layout_key_order_and_folder_name_change_nothing(tmp_path):
    shipped_policy, shipped = build(REPO_ROOT / "rules")
    policy, objects = build(relaid(tmp_path))
    assert generated_files(objects) == generated_files(shipped)
    assert policy.policy_hash == shipped_policy.policy_hash
    # the model still knows where each piece came from, for plan reasons
    moved = {obj.key: obj.origin for obj in objects if obj.origin}
    assert any(origin.line != before.origin.line for before in shipped if before.origin
               for origin in [moved.get(before.key)] if origin)


def test_a_real_change_changes_the_hash(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(REPO_ROOT / "rules", rules)
    units = rules / "units.yaml"
    units.write_text(units.read_text().replace("wip_limit: 3", "wip_limit: 2", 1))
    assert build(rules)[0].policy_hash != build(REPO_ROOT / "rules")[0].policy_hash


@pytest.mark.db
def test_a_relaid_policy_planned_from_another_directory_plans_nothing(engine_url, tmp_path):
    rules = relaid(tmp_path)
    rulesctl = Path(sys.executable).parent / "rulesctl"
    planned = subprocess.run([str(rulesctl), "plan", "--rules", str(rules), "--database-url", engine_url],
                             cwd="/", capture_output=True, text=True, timeout=300)
    assert planned.returncode == 0, planned.stdout + planned.stderr
