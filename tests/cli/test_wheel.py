"""rulesctl as a newcomer gets it: the wheel built from this tree, installed into a fresh
virtual environment, run from a directory that holds nothing but a policy. Its templates,
JSON Schemas and catalog queries travel inside the wheel; what it renders and installs equals
what the checkout does.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from cluster_support import REPO_ROOT

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
                    str(REPO_ROOT)], check=True, capture_output=True, text=True)
    (built,) = out.glob("rulesctl-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; rulesctl's own dependencies come
    from the test environment's site-packages (not its editable rulesctl: a .pth line adds a
    path, it does not run that directory's .pth files)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = Path(subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test-dependencies.pth").write_text(f"{deps}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    str(wheel)], check=True, capture_output=True, text=True)
    return env_dir / "bin" / "rulesctl"


def run(rulesctl: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(rulesctl), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_wheel_carries_templates_schemas_and_queries(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    template_root = REPO_ROOT / "templates"
    templates = sorted(p.relative_to(template_root).as_posix() for p in template_root.rglob("*.j2"))
    assert [t for t in templates if f"engine/templates/{t}" not in names] == []
    assert {f"engine/policy/schemas/{p.name}" for p in (REPO_ROOT / "engine/policy/schemas").glob("*.json")} <= names
    assert {f"engine/migrate/queries/{p.name}" for p in (REPO_ROOT / "engine/migrate/queries").glob("*.sql")} <= names


def test_an_installed_rulesctl_works_from_a_directory_holding_only_a_policy(installed, tmp_path, database_url):
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "rules", project / "rules")
    # the installed package, not the checkout
    where = subprocess.run([str(installed.parent / "python"), "-c", "import engine; print(engine.__file__)"],
                           cwd=project, capture_output=True, text=True, check=True).stdout
    assert str(REPO_ROOT) not in where and "site-packages" in where

    checked = run(installed, "validate", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rendered = run(installed, "render", cwd=project)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    compared = filecmp.dircmp(project / "generated", REPO_ROOT / "generated")
    assert (compared.left_only, compared.right_only, compared.diff_files) == ([], [], [])
    for sub in compared.subdirs.values():
        assert (sub.left_only, sub.right_only, sub.diff_files) == ([], [], [])

    planned = run(installed, "plan", "--database-url", database_url, "--format", "json", cwd=project)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert len(json.loads(planned.stdout)["steps"]) > 300
    applied = run(installed, "apply", "--database-url", database_url, "--auto-approve", cwd=project)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # the checkout's rulesctl agrees the database holds exactly this policy
    again = subprocess.run([str(Path(sys.executable).parent / "rulesctl"), "plan", "--database-url", database_url,
                            "--rules", str(REPO_ROOT / "rules")], cwd="/", capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
