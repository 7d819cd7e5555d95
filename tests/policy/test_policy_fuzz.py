"""Property: any text in any string field of a valid policy is either refused by `validate`
with a located problem (`rules/<file>.yaml:line:col: where: what`), or the policy renders into
SQL that parses; and (fewer examples, a real database each) what renders also installs, after
which a fresh plan is empty. Never an internal error, whatever the text."""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from functools import cache
from pathlib import Path

import psycopg
import pytest
import yaml
from cluster_support import drop_database
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from policy_cases import BASE
from psycopg import sql

from engine.compiler.order import install_order
from engine.compiler.render import parse_check, render_policy
from engine.errors import PolicyError
from engine.migrate.apply import apply
from engine.migrate.hazards import Hazard
from engine.migrate.kinds import install_rank
from engine.migrate.plan import build_plan
from engine.policy.validate import validate_directory
from engine.project import DEFAULT_TEMPLATES

# Optional fields the base policy leaves out, so that they are fuzzed too.
EXTRA = {
    "assignment_rules.yaml": [(("rules", 0, "description"), "Urgent work to the desk")],
    "jobs.yaml": [(("jobs", 0, "description"), "The SLA sweep")],
    "skills.yaml": [(("skills", 0, "description"), "Reading and writing")],
    "units.yaml": [(("units", 1, "timezone"), "Asia/Riyadh"), (("units", 1, "calendar"), "office")],
}
HOSTILE = ["$fn$", "x $fn$ y", "'", '"', "\\", "\n", "unit-desk\n", "\x00", "\ud800", "\x1b[31m", "é" * 40,
           "; DROP TABLE x; --", "*/ /*", "$$", "E'\\x24'", "9999999999h", "2027-02-30", "99999999%", "٣ 2 * * *",
           "\u202e", "a" * 64, "0m", " ", ""]
PROBLEM = re.compile(r"rules/[a-z_]+\.yaml:[1-9][0-9]*:[1-9][0-9]*: \S.*: \S.*", re.S)


def _set(data, path, value):
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


@cache
def _fuzz_base() -> dict[str, dict]:
    """The base policy with the optional fields filled in, as data per file."""
    files = {p.name: yaml.safe_load(p.read_text()) for p in BASE.glob("*.yaml")}
    for name, extras in EXTRA.items():
        for path, value in extras:
            _set(files[name], path, value)
    return files


def _string_fields(value, path=()):
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_fields(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_fields(item, path + (index,))


FIELDS = sorted((name, path) for name, data in _fuzz_base().items() for path in _string_fields(data))
ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),           # surrogates and controls included
    st.sampled_from(HOSTILE),
    st.builds(lambda a, b: a + b, st.sampled_from(["unit-desk", "office", "urgent", "0 2 * * *", "2h", "75%"]),
              st.sampled_from(HOSTILE)),
)


def _write_policy(workdir: Path, field, text: str) -> None:
    rules = workdir / "rules"
    rules.mkdir()
    files = {name: yaml.safe_load(yaml.safe_dump(data)) for name, data in _fuzz_base().items()}   # a deep copy
    name, path = field
    _set(files[name], path, text)
    for file_name, data in files.items():
        (rules / file_name).write_text(yaml.safe_dump(data, allow_unicode=False), encoding="utf-8")


@cache
def _base_sql() -> dict[str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="rulesctl-fuzz-"))
    try:
        _write_policy(workdir, FIELDS[0], _get(FIELDS[0]))              # the base policy, unchanged
        policy = validate_directory(workdir / "rules")
        return {obj.key: obj.sql for obj in render_policy(policy, DEFAULT_TEMPLATES)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _get(field):
    name, path = field
    data = _fuzz_base()[name]
    for part in path:
        data = data[part]
    return data


def _validate_or_render(workdir: Path, field, text: str):
    """None when validation refused the text (after checking every problem is located), else
    the policy and its objects, every object that differs from the base policy parse-checked."""
    _write_policy(workdir, field, text)
    try:
        policy = validate_directory(workdir / "rules")
    except PolicyError as refused:
        assert refused.problems
        for problem in refused.problems:
            assert PROBLEM.fullmatch(str(problem)), str(problem)
        event("refused by validate")
        return None
    event("rendered")
    objects = install_order(render_policy(policy, DEFAULT_TEMPLATES, parse_check=False), install_rank)
    base = _base_sql()
    for obj in objects:
        if base.get(obj.key) != obj.sql:
            parse_check(obj.sql, obj.template, obj.origin)
    return policy, objects


def test_the_fuzzed_fields_cover_every_kind():
    assert {name for name, _ in FIELDS} == {p.name for p in BASE.glob("*.yaml")}
    assert len(FIELDS) > 40


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), text=ANY_TEXT)
def test_any_text_in_any_field_is_refused_with_a_location_or_renders(field, text):
    workdir = Path(tempfile.mkdtemp(prefix="rulesctl-fuzz-"))
    try:
        _validate_or_render(workdir, field, text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def fresh_database(pg_cluster):
    """A factory of brand-new databases on the session cluster (one per example), dropped after."""
    made = []

    def make() -> str:
        name = f"fuzz_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return pg_cluster.url_for(name)

    yield make
    for name in made:
        drop_database(pg_cluster, name)


FREE_TEXT_FIELDS = [f for f in FIELDS if f[1][-1] in ("name", "description", "reason")]
PRINTABLE_TEXT = st.one_of(st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30),
                           st.sampled_from([t for t in HOSTILE if t.strip() and "\x00" not in t and "\ud800" not in t]))


@pytest.mark.db
@settings(max_examples=8, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(FREE_TEXT_FIELDS), text=PRINTABLE_TEXT)
def test_what_renders_installs_and_converges(field, text, fresh_database):
    workdir = Path(tempfile.mkdtemp(prefix="rulesctl-fuzz-"))
    try:
        built = _validate_or_render(workdir, field, text)
        if built is None:
            return
        policy, objects = built
        url = fresh_database()
        assert apply(url, objects, policy, allowed=set(Hazard)).outcome == "applied"
        assert build_plan(url, policy, objects, DEFAULT_TEMPLATES).steps == []
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename IN ('x', 'pwned')").fetchone() == (0,)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
