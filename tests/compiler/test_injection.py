"""Names and values reach SQL only through quoting filters: hostile strings in the policy
render, parse and install as plain data."""

from __future__ import annotations

import psycopg
import pytest
import yaml
from policy_cases import make_policy

from engine.compiler.sqltext import ident, literal
from engine.migrate.apply import apply
from engine.project import build

HOSTILE = "O'Brien \"East\"; drop table x; --"
DOLLAR = "$fn$ end; $$ drop table x; $$ \\' */ /*"


@pytest.mark.db
def test_hostile_names_render_and_install_safely(database_url, traversable_tmp_path):
    rules = make_policy(traversable_tmp_path)
    units = yaml.safe_load((rules / "units.yaml").read_text())
    units["units"][1]["name"] = HOSTILE
    (rules / "units.yaml").write_text(yaml.safe_dump(units))
    skills = yaml.safe_load((rules / "skills.yaml").read_text())
    skills["skills"][0]["name"] = DOLLAR
    skills["skills"][0]["description"] = "line one\nline two -- still data"
    (rules / "skills.yaml").write_text(yaml.safe_dump(skills))
    calendars = yaml.safe_load((rules / "calendars.yaml").read_text())
    calendars["calendars"][0]["closures"][0]["reason"] = HOSTILE
    (rules / "calendars.yaml").write_text(yaml.safe_dump(calendars))

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE x (survives boolean)")
    policy, objects = build(rules)
    assert apply(database_url, objects, policy).outcome == "applied"

    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT name FROM organizational_units WHERE id = 'unit-ops'").fetchone() == (HOSTILE,)
        assert conn.execute("SELECT name, description FROM skills WHERE id = 'skill-arabic'").fetchone() == \
            (DOLLAR, "line one\nline two -- still data")
        assert conn.execute("SELECT name FROM calendar_days_off WHERE kind = 'closure'").fetchone() == (HOSTILE,)
        assert conn.execute("SELECT to_regclass('public.x')").fetchone() == ("x",)


def test_quoting_filters():
    assert ident("units") == "units"
    assert ident("order") == '"order"'
    assert ident(HOSTILE) == '"O\'Brien ""East""; drop table x; --"'
    assert literal(HOSTILE) == "'O''Brien \"East\"; drop table x; --'"
    assert literal(None) == "NULL" and literal(True) == "true" and literal(3) == "3"
    assert literal(["a", 'b"c', "d\\e"]) == "'{\"a\",\"b\\\"c\",\"d\\\\e\"}'"
    assert literal({"k": "O'B"}) == "'{\"k\": \"O''B\"}'::jsonb"
    for bad in ("", "a\x00b"):
        try:
            ident(bad)
        except ValueError:
            continue
        raise AssertionError(f"ident accepted {bad!r}")
