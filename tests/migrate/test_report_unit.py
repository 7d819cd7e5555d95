"""The plan report's presentation, without a database: the summary line, step markers, colour
only on a terminal, function diffs folded in text."""

from __future__ import annotations

import io
import json

import pytest

from engine.compiler.objects import ObjectKey
from engine.migrate.impact import Impact
from engine.migrate.model import Action, Step
from engine.migrate.plan import Plan
from engine.migrate.report import as_json, as_markdown, as_text, plan_line, use_colour


def step(action: Action, key: str) -> Step:
    return Step(action, ObjectKey(key), "SELECT 1;", f"{action} {key}")


def plan_of(*steps: Step, impact: Impact | None = None) -> Plan:
    return Plan(list(steps), [], {}, {}, "0" * 64, impact=impact or Impact())


PLAN = plan_of(step(Action.CREATE, "table:public.a"), step(Action.INSERT, "seed:public.skills/x"),
               step(Action.ADD_VALUE, "enum:public.priority_level/high"),
               step(Action.REPLACE, "function:public.f()"), step(Action.UPDATE, "seed:public.skills/y"),
               step(Action.DELETE, "seed:public.skills/z"))


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_summary_line_counts_by_action():
    assert plan_line(PLAN) == "Plan: 3 to add, 2 to change, 1 to destroy"
    assert plan_line(plan_of()) == "Plan: 0 to add, 0 to change, 0 to destroy"
    text = as_text(PLAN, colour=False)
    assert text.splitlines()[:2] == ["6 step(s): 1 add-value, 1 create, 1 delete, 1 insert, 1 replace, 1 update",
                                     "Plan: 3 to add, 2 to change, 1 to destroy"]
    assert json.loads(as_json(PLAN))["plan_line"] == "Plan: 3 to add, 2 to change, 1 to destroy"
    assert "`Plan: 3 to add, 2 to change, 1 to destroy`" in as_markdown(PLAN)


def test_each_step_has_its_marker():
    lines = [line for line in as_text(PLAN, colour=False).splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert [line.split()[1] for line in lines] == ["+", "+", "+", "~", "~", "-"]


def test_colour_on_a_terminal_only(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty()) is True
    assert use_colour(io.StringIO()) is False                     # piped
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(Tty()) is False
    assert "\x1b[" in as_text(PLAN, colour=True)
    assert "\x1b[" not in as_text(PLAN, colour=False)
    assert "\x1b[" not in as_text(PLAN)                           # NO_COLOR set: none, whatever stdout is


@pytest.mark.parametrize("no_color", [None, "1"])
def test_the_cli_plan_output_is_plain_when_piped(monkeypatch, no_color):
    """CliRunner's stdout is not a terminal: what `rulesctl plan | less` gets has no escapes."""
    if no_color:
        monkeypatch.setenv("NO_COLOR", no_color)
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" not in as_text(PLAN)


def test_a_function_diff_is_shown_under_its_step_and_folded_when_long():
    diff = ["--- live", "+++ policy", "@@ -1,3 +1,3 @@", " BEGIN", "-  RETURN 1;", "+  RETURN 2;", " END"]
    long = diff + [f"+  -- line {n}" for n in range(100)]
    plan = plan_of(step(Action.REPLACE, "function:public.f()"), step(Action.REPLACE, "function:public.g()"),
                   impact=Impact(details={"function:public.f()": diff, "function:public.g()": long}))
    text = as_text(plan, colour=False)
    assert "\n       -  RETURN 1;\n       +  RETURN 2;\n" in text
    assert f"… {len(long) - 60} more line(s) (--show-sql shows them)" in text
    assert "+  -- line 99" in as_text(plan, show_sql=True, colour=False)
    markdown = as_markdown(plan)
    assert "```diff\n--- live\n+++ policy\n@@ -1,3 +1,3 @@\n BEGIN\n-  RETURN 1;\n+  RETURN 2;\n END\n```" in markdown


def test_a_saved_plan_keeps_its_impact_and_its_fingerprint():
    impact = Impact(days=7, arrivals=3, routing_changed=True)
    plan = plan_of(step(Action.UPDATE, "seed:public.skills/y"), impact=impact)
    again = Plan.from_dict(json.loads(json.dumps(plan.as_dict())))
    assert again.impact == impact
    assert again.fingerprint == plan.fingerprint == plan_of(step(Action.UPDATE, "seed:public.skills/y")).fingerprint
