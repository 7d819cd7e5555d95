"""Rendering: generated/ is fresh, rendering is deterministic, broken templates fail early
with the template and policy location, and render --check names every stale file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from policy_cases import BASE

from engine.cli import cli
from engine.compiler.generate import HEADER, generated_files, stale_files
from engine.errors import RenderError
from engine.project import DEFAULT_TEMPLATES, build


def test_generated_matches_a_fresh_render(repo_root):
    _, objects = build(repo_root / "rules")
    assert stale_files(generated_files(objects), repo_root / "generated") == []


def test_rendering_twice_is_byte_identical(repo_root):
    first = generated_files(build(repo_root / "rules")[1])
    second = generated_files(build(repo_root / "rules")[1])
    assert first == second


def test_every_generated_sql_file_names_its_sources(repo_root):
    for path in (repo_root / "generated").rglob("*.sql"):
        lines = path.read_text().splitlines()
        assert lines[0] == HEADER
        assert lines[1].startswith("-- sources: ") and lines[2].startswith("-- templates: ")


def test_render_check_names_stale_missing_and_leftover_files(tmp_path):
    shutil.copytree(BASE, tmp_path / "rules")
    out = tmp_path / "generated"
    paths = ["--rules", str(tmp_path / "rules"), "--out", str(out)]
    runner = CliRunner()
    assert runner.invoke(cli, ["render", *paths]).exit_code == 0
    assert runner.invoke(cli, ["render", "--check", *paths]).exit_code == 0

    (out / "tables/skills.sql").write_text("-- edited by hand\n")
    (out / "seed/skills.sql").unlink()
    (out / "old.sql").write_text("select 1;\n")
    result = runner.invoke(cli, ["render", "--check", *paths])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:3] == [f"{out}/old.sql: no longer produced",
                                              f"{out}/seed/skills.sql: missing",
                                              f"{out}/tables/skills.sql: stale"]

    assert runner.invoke(cli, ["render", *paths]).exit_code == 0
    assert not (out / "old.sql").exists()
    assert runner.invoke(cli, ["render", "--check", *paths]).exit_code == 0


def test_render_check_from_another_directory_finds_the_committed_generated_fresh(repo_root, tmp_path):
    """`cd / && rulesctl render --check --rules <checkout>/rules --out <checkout>/generated`: the
    working directory changes neither generated/ nor the policy hash (a real process, run from /)."""
    rulesctl = Path(sys.executable).with_name("rulesctl")
    for cwd in ("/", tmp_path):
        result = subprocess.run([str(rulesctl), "render", "--check", "--rules", str(repo_root / "rules"),
                                 "--out", str(repo_root / "generated")], cwd=cwd, capture_output=True, text=True)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr


def test_policy_change_shows_up_in_generated(tmp_path):
    shutil.copytree(BASE, tmp_path / "rules")
    paths = ["--rules", str(tmp_path / "rules"), "--out", str(tmp_path / "generated")]
    CliRunner().invoke(cli, ["render", *paths])
    sla = tmp_path / "rules/sla.yaml"
    sla.write_text(sla.read_text().replace("resolution: 2h", "resolution: 3h"))
    result = CliRunner().invoke(cli, ["render", "--check", *paths])
    assert result.exit_code == 1 and "generated/seed/sla_configs.sql: stale" in result.stderr
    CliRunner().invoke(cli, ["render", *paths])
    assert "VALUES ('ticket', 'urgent', 15, 180," in (tmp_path / "generated/seed/sla_configs.sql").read_text()


def test_broken_template_fails_with_template_and_policy_location(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, templates)
    insert = templates / "seed/insert.sql.j2"
    insert.write_text(insert.read_text().replace("VALUES (", "VALUES ((", 1))
    shutil.copytree(BASE, tmp_path / "rules")
    with pytest.raises(RenderError) as raised:
        build(tmp_path / "rules", templates)
    message = str(raised.value)
    assert message.startswith("templates/seed/insert.sql.j2: rendered SQL does not parse")
    assert "(policy: rules/calendars.yaml:2)" in message


def test_undefined_template_variable_is_an_error(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, templates)
    (templates / "tables/skills.sql.j2").write_text("CREATE TABLE {{ schema|ident }}.{{ no_such_name }} (id text);\n")
    shutil.copytree(BASE, tmp_path / "rules")
    with pytest.raises(RenderError, match="templates/tables/skills.sql.j2:1: 'no_such_name' is undefined"):
        build(tmp_path / "rules", templates)


def test_install_order_puts_dependencies_first(repo_root):
    _, objects = build(repo_root / "rules")
    position = {obj.key: i for i, obj in enumerate(objects)}
    for obj in objects:
        for dependency in obj.depends_on:
            assert position[dependency] < position[obj.key], (obj.key, dependency)
    # a child unit's seed row comes after its parent's
    units = "seed:public.organizational_units/"
    assert position[units + "unit-gastat"] < position[units + "unit-operations"] < position[units + "unit-field-survey"]


def test_enum_origins_name_the_line_that_declares_them(repo_root):
    """A plan step for the priority enum points at `priorities:`, not at the first work item type."""
    _, objects = build(repo_root / "rules")
    origins = {str(obj.key): obj.origin for obj in objects if obj.kind == "enum"}
    lines = (repo_root / "rules" / "work_items.yaml").read_text().splitlines()
    priority, work_type = origins["enum:public.priority_level"], origins["enum:public.work_item_type"]
    assert lines[priority.line - 1].lstrip().startswith("priorities:")
    assert lines[work_type.line - 1].lstrip().startswith("- id:")
