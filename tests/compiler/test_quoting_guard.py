"""Nothing from the file system or YAML reaches SQL except through the quoting filters, and
that is enforced by the template environment, not by care: a template that prints policy
text, a path or an Origin without a filter fails to render. Rendered SQL never holds a path,
so the same policy renders byte-identical SQL from any directory, whatever its name. No filter
emits a `$`, so nothing can end a dollar-quoted function body early."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import jinja2
import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_cases import BASE, make_policy

from engine.compiler.render import template_env
from engine.compiler.sqltext import comment_line, ident, literal
from engine.errors import RenderError
from engine.migrate.apply import apply
from engine.migrate.plan import build_plan
from engine.policy.model import Origin
from engine.policy.text import PolicyText
from engine.project import DEFAULT_TEMPLATES, build

HOSTILE_DIRECTORIES = [
    "evil\nCREATE TABLE pwned (a int);\n--",
    "O'Brien \"East\"; drop table x; --",
    "a$fn$ end; $$ drop table x; $$",
    "back\\slash */ /* \r\n$do$",
]
HOSTILE_TEXT = [
    "x $fn$ ; CREATE TABLE pwned (a int); $fn$",
    "line one\nCREATE TABLE pwned (a int); --",
    "O'Brien \"East\"; drop table x; --",
    "E'\\x24' $$ $do$ \\ */ /* \t ; --",
    "ʻAbd al-Raḥmān ⁦عربي⁩ \u2028 next",
]


def _objects_sql(objects) -> dict[str, str]:
    return {obj.key: obj.sql for obj in objects}


# --- the guard itself -----------------------------------------------------------------------------

def _render_snippet(tmp_path: Path, text: str, **context) -> str:
    (tmp_path / "t.sql.j2").write_text(text)
    template_env.cache_clear()
    try:
        return template_env(tmp_path).get_template("t.sql.j2").render(**context)
    finally:
        template_env.cache_clear()


@pytest.mark.parametrize("value", [PolicyText("unit-ops"), Origin(PolicyText("rules/units.yaml"), 3, 5),
                                   ("a", "b"), None, True, {"k": "v"}])
def test_printing_policy_text_or_objects_unfiltered_is_refused(value, tmp_path):
    with pytest.raises((ValueError, TypeError), match="printed without a quoting filter"):
        _render_snippet(tmp_path, "SELECT {{ value }};\n", value=value)


def test_filtered_values_numbers_and_engine_text_print(tmp_path):
    text = ("SELECT {{ value|literal }}, {{ value|ident }} -- {{ value|comment }} {{ count }} {{ engine_sql }}"
            "{{ ', ' if not last }}\n")
    out = _render_snippet(tmp_path, text, value=PolicyText("it's $fn$"), count=3, engine_sql="now()", last=True)
    assert out == "SELECT E'it''s \\x24fn\\x24', U&\"it's \\0024fn\\0024\" -- it's ＄fn＄ 3 now()\n"


def test_a_template_that_prints_an_origin_fails_naming_the_template(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, templates)
    job = templates / "jobs/job.sql.j2"
    job.write_text("-- ({{ job.origin }})\n" + job.read_text())
    rules = make_policy(tmp_path)
    with pytest.raises(RenderError, match=r"templates/jobs/job.sql.j2:1: cron_job sla-monitoring .*"
                                          r"a value of type Origin printed without a quoting filter"):
        build(rules, templates)


def test_a_template_that_prints_policy_text_fails(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, templates)
    rank = templates / "functions/runtime/queue/queue_effective_rank.sql.j2"
    rank.write_text(rank.read_text().replace("{{ aging.max_priority|comment }}", "{{ aging.max_priority }}"))
    rules = make_policy(tmp_path)
    with pytest.raises(RenderError, match=r"policy text 'urgent' printed without a quoting filter"):
        build(rules, templates)


def _strings(value, where="policy"):
    """Every str inside a model object, with where it sits."""
    if isinstance(value, str):
        yield where, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, f"{where}<key>")
            yield from _strings(item, f"{where}[{key!r}]")


def test_every_string_of_the_model_is_marked_as_policy_text(repo_root):
    """The guard only sees what is marked: no builder may lose the mark on the way to the model."""
    policy, _ = build(repo_root / "rules", parse_check=False)
    engine_constants = re.compile(r"policy\.calendars\[\d+\]\.days_off\[\d+\]\.kind|policy\.sources.*")
    unmarked = [where for where, text in _strings(policy)
                if not isinstance(text, PolicyText) and not engine_constants.fullmatch(where)]
    assert unmarked == []
    assert any(where.startswith("policy.calendars") and "days_off" in where for where, _ in _strings(policy))


# --- no path in SQL; hostile directory names ----------------------------------------------------

def hostile_rules(root: Path, name: str) -> Path:
    """The base policy in root/<name>, a rules folder whose own name is the last part of `name`."""
    rules = root / name
    rules.parent.mkdir(parents=True, exist_ok=True)
    return make_policy(root).rename(rules)


@pytest.mark.parametrize("name", HOSTILE_DIRECTORIES, ids=range(len(HOSTILE_DIRECTORIES)))
def test_sql_is_identical_from_any_directory(name, tmp_path):
    plain = make_policy(tmp_path / "plain")
    hostile = hostile_rules(tmp_path / "hostile", name)
    _, reference = build(plain)
    policy, objects = build(hostile)
    assert str(policy.rules[0].origin).startswith(f"{hostile.name}/")   # the hostile name is part of every origin
    assert _objects_sql(objects) == _objects_sql(reference)
    assert plain.exists() and hostile.exists()
    for obj in objects:
        assert not re.search(r"\.yaml:\d", obj.sql), obj.key            # no line number
        assert name.splitlines()[0] not in obj.sql, obj.key              # no path


@pytest.mark.db
def test_hostile_directory_name_installs_safely(database_url, traversable_tmp_path):
    name = HOSTILE_DIRECTORIES[0]
    rules = hostile_rules(traversable_tmp_path, name)
    policy, objects = build(rules)
    assert str(policy.rules[0].origin).startswith(f"{rules.name}/")
    assert apply(database_url, objects, policy).outcome == "applied"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('public.pwned')").fetchone() == (None,)
        assert conn.execute("SELECT rule_id FROM match_assignment_rule('ticket', 'urgent', '{}')").fetchone() == \
            ("rule-urgent",)
    assert build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps == []
    assert rules.exists()


# --- hostile text in every free-text field --------------------------------------------------------

def _free_text_fields(rules: Path):
    """(file, path) of every free-text field the base policy has or may have."""
    return [
        ("units.yaml", ("units", 1, "name")),
        ("skills.yaml", ("skills", 0, "name")), ("skills.yaml", ("skills", 0, "description")),
        ("calendars.yaml", ("calendars", 0, "name")), ("calendars.yaml", ("calendars", 0, "closures", 0, "reason")),
        ("work_items.yaml", ("types", 0, "name")),
        ("escalation.yaml", ("chains", 0, "name")),
        ("assignment_rules.yaml", ("rules", 0, "description")), ("assignment_rules.yaml", ("rules", 1, "description")),
        ("jobs.yaml", ("jobs", 0, "description")),
    ]


def _set(rules: Path, file: str, path: tuple, value: str) -> None:
    data = yaml.safe_load((rules / file).read_text())
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    (rules / file).write_text(yaml.safe_dump(data, allow_unicode=True))


@pytest.mark.db
def test_hostile_text_in_every_free_text_field_renders_and_installs(database_url, traversable_tmp_path):
    rules = make_policy(traversable_tmp_path)
    fields = _free_text_fields(rules)
    values = {}
    for index, (file, path) in enumerate(fields):
        values[file, path] = HOSTILE_TEXT[index % len(HOSTILE_TEXT)]
    values["assignment_rules.yaml", ("rules", 0, "description")] = HOSTILE_TEXT[0]  # `$fn$` ends a body
    for (file, path), value in values.items():
        _set(rules, file, path, value)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE x (survives boolean)")
    policy, objects = build(rules)
    assert apply(database_url, objects, policy).outcome == "applied"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('public.pwned'), to_regclass('public.x')").fetchone() == (None, "x")
        assert conn.execute("SELECT rule_id FROM match_assignment_rule('ticket', 'low', '{}')").fetchone() == \
            ("rule-all",)
        assert conn.execute("SELECT name, description FROM skills WHERE id = 'skill-arabic'").fetchone() == \
            (values["skills.yaml", ("skills", 0, "name")], values["skills.yaml", ("skills", 0, "description")])
        source = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'match_assignment_rule'").fetchone()[0]
        for rule in (0, 1):
            assert comment_line(values["assignment_rules.yaml", ("rules", rule, "description")]) in source
        assert "＄fn＄" in source
    assert build_plan(database_url, policy, objects, DEFAULT_TEMPLATES).steps == []


# --- the filters, for any text ---------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(ANY_TEXT)
def test_no_filter_emits_a_dollar_or_ends_a_comment(text):
    for out in (literal(text), literal([text, text]), literal({"k": text}), comment_line(text)):
        assert "$" not in out and "\x00" not in out
    assert "\n" not in comment_line(text) and "\r" not in comment_line(text)
    if text and len(text.encode()) <= 63:
        assert "$" not in ident(text)


@pytest.mark.db
@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ANY_TEXT.filter(lambda t: t and len(t.encode()) <= 63), min_size=1, max_size=5))
def test_filters_round_trip_inside_a_function_body(database_url, texts):
    """What PostgreSQL reads back is exactly the text, from inside `AS $fn$ ... $fn$`."""
    body = "\n".join(f"  -- {comment_line(t)}\n  SELECT {literal(t)} AS {ident(t)} UNION ALL" for t in texts)
    function = (f"CREATE OR REPLACE FUNCTION pg_temp.echo() RETURNS SETOF text LANGUAGE sql AS $fn$\n"
                f"{body.removesuffix(' UNION ALL')}\n$fn$")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(function)
        assert [row[0] for row in conn.execute("SELECT * FROM pg_temp.echo()")] == texts
        table = ", ".join(f"{ident(t)} text" for t in dict.fromkeys(texts))
        conn.execute(f"CREATE TEMP TABLE echo ({table})")
        columns = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'echo'::regclass AND attnum > 0 "
                               "ORDER BY attnum").fetchall()
        assert [c[0] for c in columns] == list(dict.fromkeys(texts))
        conn.execute("DROP TABLE echo")


def test_identifier_longer_than_postgresql_keeps_is_refused():
    assert ident("é" * 31 + "a") == '"' + "é" * 31 + 'a"'      # 63 bytes
    with pytest.raises(ValueError, match="longer than 63 bytes"):
        ident("é" * 32)                                     # 32 characters, 64 bytes


def test_jinja_is_strict_about_undefined_in_the_guarded_environment(tmp_path):
    with pytest.raises(jinja2.UndefinedError):
        _render_snippet(tmp_path, "{{ missing }}")
    assert BASE.is_dir()
