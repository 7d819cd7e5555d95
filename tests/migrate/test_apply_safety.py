"""Apply is safe to run from CI: saved plans are refused when the database moved, concurrent
applies serialise, a failing or killed apply leaves the database as it was, objects rulesctl
does not own are reported and never touched, and the CLI speaks plainly (plan formats, exit
codes, history, show, drift). Everything runs against real PostgreSQL, on the small base policy.
"""

from __future__ import annotations

import json
import re
import threading
import time

import psycopg
import pytest
from apply_support import (
    RESCHEDULE,
    SKILLS_PLUS_SQL,
    SKILLS_WITHOUT_NETWORK,
    SLA_TIGHTER,
    SLA_UPDATE,
    execute,
    invoke,
    ledger,
    rows,
    snapshot,
    step_keys,
    wait_for_lock_wait,
)
from click.testing import CliRunner

from engine.cli import cli
from engine.errors import ApplyRefused, DatabaseError
from engine.migrate.apply import APPLY_LOCK_KEY, apply
from engine.migrate.hazards import Hazard
from engine.migrate.introspect import introspect
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

pytestmark = pytest.mark.db


class Background(threading.Thread):
    """Run a function in a thread; keep its result or exception."""

    def __init__(self, function):
        super().__init__(daemon=True)
        self.function, self.result, self.error = function, None, None

    def run(self):
        try:
            self.result = self.function()
        except Exception as exc:                     # handed to the test thread
            self.error = exc


# ------------------------------------------------------------------------------------------ saved plans

def test_saved_plan_is_refused_naming_what_moved(base_url, policies):
    rules = policies.rules("after", sla=SLA_TIGHTER)
    plan_file = rules.parent / "plan.json"
    planned = invoke("plan", "--rules", rules, "--database-url", base_url, "--out", plan_file)
    assert planned.exit_code == 2, planned.output
    saved = json.loads(plan_file.read_text())
    assert [(s["action"], s["key"]) for s in saved["steps"]] == [("update", "seed:public.sla_configs/ticket,urgent"),
                                                               ("run", "reschedule:public.sla_next_checks")]
    assert saved["fingerprint"] and saved["policy_hash"] and saved["tool_version"]

    execute(base_url, "UPDATE public.skills SET name = 'Arabic (edited by hand)' WHERE id = 'skill-arabic'")
    before = snapshot(base_url)
    refused = invoke("apply", plan_file, "--rules", rules, "--database-url", base_url)

    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith("apply refused: the database changed since the plan was made")
    assert "seed:public.skills/skill-arabic" in refused.stderr
    assert "seed:public.sla_configs" not in refused.stderr          # only what moved is named
    assert "Nothing was changed" in refused.stderr
    assert snapshot(base_url) == before
    assert rows(base_url, "SELECT resolution_minutes FROM public.sla_configs WHERE priority = 'urgent'") == [(120,)]
    last = ledger(base_url)[-1]
    assert last[1] == "refused" and "seed:public.skills/skill-arabic" in last[3]


def test_saved_plan_applies_exactly_when_nothing_moved(base_url, policies):
    policy, objects = policies.build("after", sla=SLA_TIGHTER)
    rules = policies.rules("after", sla=SLA_TIGHTER)
    plan_file = rules.parent / "plan.json"
    assert invoke("plan", "--rules", rules, "--database-url", base_url, "--out", plan_file).exit_code == 2
    saved = json.loads(plan_file.read_text())

    applied = invoke("apply", plan_file, "--rules", rules, "--database-url", base_url)
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.startswith("applied: ran 2 steps (1 run, 1 update)")
    assert rows(base_url, "SELECT response_minutes, resolution_minutes FROM public.sla_configs "
                          "WHERE priority = 'urgent'") == [(10, 60)]
    statements = rows(base_url, "SELECT statements FROM rulesctl.applies ORDER BY id DESC LIMIT 1")[0][0]
    assert [s["sql"] for s in statements] == [s["sql"] for s in saved["steps"]]   # what plan showed is what ran
    assert step_keys(base_url, policy, objects) == []
    assert invoke("plan", "--rules", rules, "--database-url", base_url).exit_code == 0


# ------------------------------------------------------------------------------------------ concurrency

def test_concurrent_applies_serialise_and_the_last_one_wins(base_url, policies):
    """The first apply is held inside its transaction (its progress callback waits), holding the
    apply lock. The second, started then, is seen retrying the lock -- its backend's statement
    is pg_try_advisory_lock, run again and again -- and writes nothing until the first is let go;
    then it plans from what the first committed, so the last one wins."""
    sla_policy, sla_objects = policies.build("sla", sla=SLA_TIGHTER)
    skill_policy, skill_objects = policies.build("skill", skills=SKILLS_PLUS_SQL)
    allowed = {Hazard.SEED_ROW_DELETED}                  # the skill policy, run second, restores the SLA row
    inside, release = threading.Event(), threading.Event()

    def hold(position, total, step):
        if position == 1:
            inside.set()
            release.wait(60)

    first = Background(lambda: apply(base_url, sla_objects, sla_policy, allowed=allowed, lock_timeout_s=30,
                                     progress=hold))
    second = Background(lambda: apply(base_url, skill_objects, skill_policy, allowed=allowed, lock_timeout_s=30))
    first.start()
    try:
        assert inside.wait(30), first.error
        (holder,) = rows(base_url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                                   "AND (classid::bigint << 32 | objid::bigint) = %s", APPLY_LOCK_KEY)
        second.start()
        tries = set()                                   # the second's lock attempts seen, by their start time
        deadline = time.monotonic() + 20
        while len(tries) < 3 and time.monotonic() < deadline:
            tries |= set(rows(base_url, "SELECT pid, query_start FROM pg_stat_activity"
                                        " WHERE datname = current_database()"
                                        " AND application_name = 'rulesctl' AND pid <> %s"
                                        " AND query LIKE 'SELECT pg_try_advisory_lock(%%'", holder[0]))
            time.sleep(0.05)
        assert len(tries) >= 3 and len({pid for pid, _ in tries}) == 1, tries   # one backend, retrying
        assert second.is_alive() and first.is_alive()
        assert skill_policy.policy_hash not in [entry[2] for entry in ledger(base_url)]   # the second wrote nothing
    finally:
        release.set()
    for thread in (first, second):
        thread.join(60)
    assert [first.error, second.error] == [None, None]
    assert [first.result.outcome, second.result.outcome] == ["applied", "applied"]

    entries = ledger(base_url)
    assert [(entry[1], entry[2]) for entry in entries[1:]] == [("applied", sla_policy.policy_hash),
                                                                ("applied", skill_policy.policy_hash)]
    # the second planned under the lock after the first committed: it undid the first's SLA change
    counts = rows(base_url, "SELECT statement_count FROM rulesctl.applies ORDER BY id")
    assert counts[1:] == [(2,), (3,)]                   # the SLA change brings its reschedule step
    # the database is exactly the policy applied last
    assert step_keys(base_url, skill_policy, skill_objects) == []
    both = {"seed:public.sla_configs/ticket,urgent", "seed:public.skills/skill-sql",
            "reschedule:public.sla_next_checks"}
    assert {key.split(" ", 1)[1] for key in step_keys(base_url, sla_policy, sla_objects)} == both
    started = rows(base_url, "SELECT started_at, finished_at FROM rulesctl.applies ORDER BY id")
    assert started[2][0] < started[1][1]           # the second started before the first finished


def test_a_second_apply_gives_up_clearly_while_one_runs(base_url, policies):
    policy, objects = policies.build("after", sla=SLA_TIGHTER)
    with psycopg.connect(base_url) as blocker:
        blocker.execute("LOCK TABLE public.sla_configs IN SHARE MODE")           # the SLA update must wait
        running = Background(lambda: apply(base_url, objects, policy))
        running.start()
        pid = wait_for_lock_wait(base_url)
        with pytest.raises(ApplyRefused, match=rf"another rulesctl apply holds the apply lock \(backend pid {pid}\); "
                                               r"waited 0.5s, changed nothing"):
            apply(base_url, objects, policy, lock_timeout_s=0.5)
        blocker.rollback()
    running.join(30)
    assert running.error is None and running.result.outcome == "applied"
    assert [entry[1] for entry in ledger(base_url)] == ["applied", "applied"]
    assert step_keys(base_url, policy, objects) == []


# ------------------------------------------------------------------------------------------ failures

def test_a_failing_step_rolls_everything_back_and_the_ledger_says_failed(base_url, policies):
    # A step that fails only when it runs: a hand-made trigger (reported by the plan, never
    # dropped) refuses the delete. (Live data referencing the skill would be caught by the plan
    # itself: see test_retire_rename.)
    execute(base_url, "CREATE FUNCTION public.freeze_skills() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$BEGIN RAISE EXCEPTION 'skills are frozen for this test'; END$$")
    execute(base_url, "CREATE TRIGGER freeze_skills BEFORE DELETE ON public.skills "
                      "FOR EACH ROW EXECUTE FUNCTION public.freeze_skills()")
    policy, objects = policies.build("after", sla=SLA_TIGHTER, skills=SKILLS_WITHOUT_NETWORK)
    assert step_keys(base_url, policy, objects) == [SLA_UPDATE, "delete seed:public.skills/skill-network", RESCHEDULE]
    before = snapshot(base_url)

    with pytest.raises(DatabaseError) as raised:
        apply(base_url, objects, policy, allowed={Hazard.SEED_ROW_DELETED})
    message = str(raised.value)
    assert message.startswith("step seed:public.skills/skill-network failed: skills are frozen for this test")
    assert message.endswith("Its transaction was rolled back; the database is as it was.")
    assert snapshot(base_url) == before                     # the SLA update that ran first is gone too
    outcome, logged, statements = rows(base_url, "SELECT outcome, message, statement_count FROM rulesctl.applies "
                                                 "ORDER BY id DESC LIMIT 1")[0]
    assert (outcome, logged, statements) == ("failed", message, 3)
    assert rows(base_url, "SELECT count(*) FROM public.skills WHERE id = 'skill-network'") == [(1,)]


def test_a_killed_apply_leaves_the_database_as_it_was_and_the_next_apply_works(base_url, policies):
    policy, objects = policies.build("after", sla=SLA_TIGHTER, skills=SKILLS_PLUS_SQL)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    assert len(plan.steps) == 3                                             # SLA update, skill insert, reschedule
    last_table = plan.steps[-2].key.split(".", 1)[1].split("/", 1)[0]       # block the last seed step: one runs before
    before = snapshot(base_url)

    with psycopg.connect(base_url) as blocker:
        blocker.execute(f"LOCK TABLE public.{last_table} IN SHARE MODE")
        running = Background(lambda: apply(base_url, objects, policy))
        running.start()
        pid = wait_for_lock_wait(base_url)
        execute(base_url, "SELECT pg_terminate_backend(%s, 5000)", pid)
        running.join(30)
        blocker.rollback()
    assert isinstance(running.error, DatabaseError), running.error
    assert snapshot(base_url) == before
    # the dead connection could not write its ledger row; whatever is there says nothing was applied
    assert [entry[1] for entry in ledger(base_url)][1:] in ([], ["failed"])

    again = apply(base_url, objects, policy)                # the advisory lock died with the backend
    assert again.outcome == "applied"
    assert step_keys(base_url, policy, objects) == []


# ------------------------------------------------------------------------------------------ ownership

def test_unowned_objects_are_reported_and_never_dropped(base_url, policies):
    execute(base_url, "CREATE TABLE public.hand_notes (id integer PRIMARY KEY, body text)")
    execute(base_url, "INSERT INTO public.hand_notes VALUES (1, 'keep me')")
    execute(base_url, "CREATE FUNCTION public.hand_total() RETURNS integer LANGUAGE sql AS 'SELECT 42'")
    execute(base_url, "CREATE INDEX hand_sla_calendar ON public.sla_configs (calendar_id)")
    mine = ["function:public.hand_total()", "index:public.hand_sla_calendar", "table:public.hand_notes"]

    policy, objects = policies.build("base")
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    assert plan.steps == [] and plan.foreign == mine
    shown = invoke("plan", "--rules", policies.rules("base"), "--database-url", base_url)
    assert shown.exit_code == 0
    assert f"not managed by rulesctl (left alone): {', '.join(mine)}" in shown.stdout

    # a policy change with every hazard allowed still leaves them alone
    policy, objects = policies.build("after", sla=SLA_TIGHTER, skills=SKILLS_WITHOUT_NETWORK)
    result = apply(base_url, objects, policy, allowed=set(Hazard))
    assert result.outcome == "applied" and result.plan.foreign == mine
    assert not {step.key for step in result.plan.steps} & set(mine)
    assert rows(base_url, "SELECT body FROM public.hand_notes") == [("keep me",)]
    assert rows(base_url, "SELECT public.hand_total()") == [(42,)]
    assert rows(base_url, "SELECT to_regclass('public.hand_sla_calendar') IS NOT NULL") == [(True,)]


def test_an_engine_function_an_older_version_left_behind_is_dropped_with_its_grant_record(base_url, policies):
    """An upgrade whose engine no longer has a function (here: one granted to nobody, as every
    internal function is) drops it; its grant record goes too, with no REVOKE of nobody."""
    execute(base_url, "CREATE FUNCTION public.old_engine_helper() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
    execute(base_url, "REVOKE EXECUTE ON FUNCTION public.old_engine_helper() FROM PUBLIC")
    for key in ("function:public.old_engine_helper()", "grant:public.old_engine_helper().execute"):
        execute(base_url, "INSERT INTO rulesctl.managed_objects (key, definition_hash) VALUES (%s, 'older')", key)

    policy, objects = policies.build("base")
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    by_key = {step.key: step for step in plan.steps}
    assert set(by_key) == {"function:public.old_engine_helper()", "grant:public.old_engine_helper().execute"}
    forget = by_key["grant:public.old_engine_helper().execute"]
    assert forget.hazards == () and "nobody holds it" in forget.reason and "REVOKE" not in forget.sql
    assert apply(base_url, objects, policy).outcome == "applied"
    assert rows(base_url, "SELECT to_regprocedure('public.old_engine_helper()') IS NULL") == [(True,)]
    assert build_plan(base_url, policy, objects, DEFAULT_TEMPLATES).steps == []


# ------------------------------------------------------------------------------------------ the CLI

def test_plan_exit_codes(base_url, policies):
    base = policies.rules("base")
    assert invoke("plan", "--rules", base, "--database-url", base_url).exit_code == 0
    assert invoke("plan", "--rules", policies.rules("sla", sla=SLA_TIGHTER), "--database-url", base_url).exit_code == 2
    skills = policies.rules("skills", skills=SKILLS_WITHOUT_NETWORK)
    blocked = invoke("plan", "--rules", skills, "--database-url", base_url, "--allow-hazard", "data-loss")
    assert blocked.exit_code == 3, blocked.output
    assert "delete     seed:public.skills/skill-network [seed-row-deleted]" in blocked.stdout
    allowed = invoke("plan", "--rules", skills, "--database-url", base_url, "--allow-hazard", "seed-row-deleted")
    assert allowed.exit_code == 2
    broken = policies.rules("broken", sla=SLA_TIGHTER.replace("10m", "10 minutes"))
    invalid = invoke("plan", "--rules", broken, "--database-url", base_url)
    assert invalid.exit_code == 1 and "rules/sla.yaml:8:" in invalid.stderr     # relative to the folder, not the cwd
    assert str(broken.parent) not in invalid.stderr
    unreachable = invoke("plan", "--rules", base, "--database-url", "postgresql://nobody@127.0.0.1:1/x")
    assert unreachable.exit_code == 1 and unreachable.stderr.startswith("error: cannot connect to the database")


def test_plan_json_and_markdown_show_hazards_first_and_the_sql(base_url, policies):
    policy, objects = policies.build("after", sla=SLA_TIGHTER, skills=SKILLS_WITHOUT_NETWORK)
    rules = policies.rules("after", sla=SLA_TIGHTER, skills=SKILLS_WITHOUT_NETWORK)
    plan = build_plan(base_url, policy, objects, DEFAULT_TEMPLATES)
    assert [f"{s.action} {s.key}" for s in plan.steps] == [SLA_UPDATE, "delete seed:public.skills/skill-network",
                                                           RESCHEDULE]

    as_json = invoke("plan", "--rules", rules, "--database-url", base_url, "--format", "json")
    assert as_json.exit_code == 3
    data = json.loads(as_json.stdout)
    assert data["hazards"] == ["seed-row-deleted"]
    assert data["summary"] == "3 step(s): 1 delete, 1 run, 1 update"
    assert [(s["action"], s["key"], s["hazards"], s["sql"]) for s in data["steps"]] == [
        (s.action, s.key, [h.slug for h in s.hazards], s.sql) for s in plan.steps]
    assert data["steps"][0]["origin"] == "rules/sla.yaml:8"
    assert "UPDATE public.sla_configs" in data["steps"][0]["sql"]

    markdown = invoke("plan", "--rules", rules, "--database-url", base_url, "--format", "markdown").stdout
    hazards, steps, folded = (markdown.index("### ⚠️ Hazards"), markdown.index("### Steps"),
                              markdown.index("<details><summary>SQL of every step</summary>"))
    assert markdown.index("**3 step(s): 1 delete, 1 run, 1 update**") < hazards < steps < folded
    assert markdown.index("**seed-row-deleted**") < steps
    assert "`seed:public.skills/skill-network`: delete seed row public.skills/skill-network" in markdown[hazards:steps]
    for step in plan.steps:
        assert f"```sql\n{step.sql.rstrip()}\n```" in markdown[folded:]
    assert "| rules/sla.yaml:8 |" in markdown[steps:folded]

    text = invoke("plan", "--rules", rules, "--database-url", base_url, "--show-sql").stdout
    assert text.index("Hazards:") < text.index("update     seed:public.sla_configs/ticket,urgent")
    assert "UPDATE public.sla_configs" in text


def test_history_and_show_print_the_ledger(base_url, policies):
    after = policies.rules("after", sla=SLA_TIGHTER)
    assert invoke("apply", "--rules", after, "--database-url", base_url, "--auto-approve").exit_code == 0  # 2 applied
    assert invoke("apply", "--rules", after, "--database-url", base_url, "--auto-approve").exit_code == 0  # 3 no_change
    skills = policies.rules("skills", skills=SKILLS_WITHOUT_NETWORK)
    blocked = invoke("apply", "--rules", skills, "--database-url", base_url, "--auto-approve")  # 4 refused
    assert blocked.exit_code == 3 and blocked.stderr.startswith("apply blocked: 1 step(s) have hazards not allowed: "
                                                                "seed-row-deleted")

    history = invoke("history", "--database-url", base_url)
    assert history.exit_code == 0
    lines = history.stdout.splitlines()
    assert [re.match(r"#(\d+)\s+\S+ \S+ (\w+)", line).groups() for line in lines] == [
        ("4", "refused"), ("3", "no_change"), ("2", "applied"), ("1", "applied")]
    assert "   2 steps" in lines[2] and "hazards not allowed" in lines[0]
    assert len(invoke("history", "--database-url", base_url, "--limit", "2").stdout.splitlines()) == 2

    shown = invoke("show", "2", "--database-url", base_url)
    assert shown.exit_code == 0
    assert shown.stdout.startswith("apply #2: applied at ")
    assert "ran 2 steps (1 run, 1 update)" in shown.stdout
    assert "-- 1. update seed:public.sla_configs/ticket,urgent\nUPDATE public.sla_configs" in shown.stdout
    missing = invoke("show", "99", "--database-url", base_url)
    assert missing.exit_code == 1 and "no apply #99 in the ledger" in missing.stderr


def test_drift_reports_hand_changes_until_apply_restores_them(base_url, policies):
    base = policies.rules("base")
    assert invoke("drift", "--rules", base, "--database-url", base_url).exit_code == 0
    execute(base_url, "UPDATE public.sla_configs SET resolution_minutes = 999 WHERE priority = 'urgent'")
    drifted = invoke("drift", "--rules", base, "--database-url", base_url)
    assert drifted.exit_code == 2
    assert "update     seed:public.sla_configs/ticket,urgent" in drifted.stdout
    assert "drift: changed outside rulesctl; update seed row public.sla_configs/ticket,urgent: " \
           "resolution_minutes 999 → 120" in drifted.stdout
    # a policy change is not drift
    skills = policies.rules("skills", skills=SKILLS_PLUS_SQL)
    only_drift = invoke("drift", "--rules", skills, "--database-url", base_url, "--format", "json")
    assert only_drift.exit_code == 2
    assert [s["key"] for s in json.loads(only_drift.stdout)["steps"]] == ["seed:public.sla_configs/ticket,urgent"]
    old_spelling = invoke("plan", "--rules", skills, "--database-url", base_url, "--detect-drift",  # hidden alias
                          "--format", "json")
    assert [s["key"] for s in json.loads(old_spelling.stdout)["steps"]] == ["seed:public.sla_configs/ticket,urgent"]
    assert invoke("apply", "--rules", base, "--database-url", base_url, "--auto-approve").exit_code == 0
    assert invoke("drift", "--rules", base, "--database-url", base_url).stdout.startswith("No drift")
