"""A saved plan runs only as it was made: its fingerprint binds the steps
(action, object, SQL, hazards, segment) to the live state, and apply also re-plans under its
lock and runs the file only if its steps are exactly what rulesctl plans now. An edited
plan.json -- hashes recomputed or not -- is refused with a clear message, exit 1, a 'refused'
ledger row and the database untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apply_support import (
    SKILLS_WITHOUT_NETWORK,
    SLA_TIGHTER,
    invoke,
    ledger,
    rows,
    snapshot,
)
from policy_cases import Policies

from engine.migrate.plan import Plan

pytestmark = pytest.mark.db


def saved_plan(url: str, policies: Policies, **files: str) -> tuple[dict, Path]:
    """The plan `rulesctl plan --out` saves for policies.rules("after", **files), and that rules/."""
    rules = policies.rules("after", **files)
    out = rules.parent / "plan.json"
    planned = invoke("plan", "--rules", rules, "--database-url", url, "--out", out,
                     "--allow-hazard", "seed-row-deleted")
    assert planned.exit_code == 2, planned.output
    return json.loads(out.read_text()), rules


def with_hashes_recomputed(data: dict) -> dict:
    """What someone who read rulesctl's source would do after editing a step."""
    plan = Plan.from_dict(data)
    return {**data, "fingerprint": plan.fingerprint, "steps_hash": plan.steps_hash}


def apply_file(url: str, rules: Path, data: dict):
    """`rulesctl apply PLAN_FILE` of `data`, written next to the policy folder `rules`."""
    plan_file = rules.parent / "plan.json"
    plan_file.write_text(json.dumps(data))
    return invoke("apply", plan_file, "--rules", rules, "--database-url", url)


def assert_refused_untouched(url: str, result, before: dict, start: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"apply refused: {start}"), result.stderr
    assert "Nothing was changed" in result.stderr
    assert snapshot(url) == before
    assert ledger(url)[-1][1] == "refused"


def test_an_edited_step_is_refused(base_url, policies):
    data, rules = saved_plan(base_url, policies, sla=SLA_TIGHTER)
    assert data["steps_hash"] and data["fingerprint"]
    data["steps"][0]["sql"] = "DROP TABLE public.skills CASCADE;\n"
    before = snapshot(base_url)
    refused = apply_file(base_url, rules, data)
    assert_refused_untouched(base_url, refused, before, "the saved plan was edited after it was made")
    assert rows(base_url, "SELECT count(*) FROM public.skills") == [(2,)]
    # the ledger keeps what the edited file asked for, for whoever investigates
    assert "DROP TABLE public.skills" in rows(base_url, "SELECT statements::text FROM rulesctl.applies "
                                                        "ORDER BY id DESC LIMIT 1")[0][0]


def test_an_edited_step_with_its_hashes_recomputed_is_refused(base_url, policies):
    data, rules = saved_plan(base_url, policies, sla=SLA_TIGHTER)
    data["steps"][0]["sql"] = data["steps"][0]["sql"].replace("SET ", "SET response_minutes = 1, ", 1)
    before = snapshot(base_url)
    refused = apply_file(base_url, rules, with_hashes_recomputed(data))
    assert_refused_untouched(base_url, refused, before,
                             "the saved plan's steps are not what rulesctl plans from this policy for this database "
                             "(first difference: update seed:public.sla_configs/ticket,urgent)")


def test_a_hazard_taken_off_a_step_is_refused(base_url, policies):
    """Removing a step's hazard would let it run without --allow-hazard."""
    data, rules = saved_plan(base_url, policies, skills=SKILLS_WITHOUT_NETWORK)
    (deleting,) = [step for step in data["steps"] if step["hazards"]]
    deleting["hazards"] = []
    before = snapshot(base_url)
    refused = apply_file(base_url, rules, with_hashes_recomputed(data))
    assert_refused_untouched(base_url, refused, before, "the saved plan's steps are not what rulesctl plans")
    assert rows(base_url, "SELECT count(*) FROM public.skills WHERE id = 'skill-network'") == [(1,)]


def test_an_added_step_is_refused(base_url, policies):
    data, rules = saved_plan(base_url, policies, sla=SLA_TIGHTER)
    data["steps"].append({**data["steps"][0], "key": "seed:public.skills/x", "action": "run",
                          "sql": "GRANT service_role TO anon;\n"})
    before = snapshot(base_url)
    refused = apply_file(base_url, rules, with_hashes_recomputed(data))
    assert_refused_untouched(base_url, refused, before, "the saved plan's steps are not what rulesctl plans")
    assert "run seed:public.skills/x" in refused.stderr


def test_a_plan_made_from_another_policy_is_refused(base_url, policies):
    data, _ = saved_plan(base_url, policies, sla=SLA_TIGHTER)
    before = snapshot(base_url)
    refused = apply_file(base_url, policies.rules("base"), data)
    assert_refused_untouched(base_url, refused, before, "the saved plan was made from another policy")


def test_an_intact_saved_plan_still_applies(base_url, policies):
    data, rules = saved_plan(base_url, policies, sla=SLA_TIGHTER)
    applied = apply_file(base_url, rules, data)
    assert applied.exit_code == 0, applied.output
    assert rows(base_url, "SELECT response_minutes FROM public.sla_configs WHERE priority = 'urgent'") == [(10,)]
    assert [entry[1] for entry in ledger(base_url)] == ["applied", "applied"]


def test_a_partial_drift_only_plan_cannot_be_saved(base_url, policies):
    rules = policies.rules("base")
    out = rules.parent / "plan.json"
    result = invoke("plan", "--rules", rules, "--database-url", base_url, "--detect-drift", "--out", out)
    assert result.exit_code == 1 and "--detect-drift shows only part of one" in result.stderr
    assert not out.exists()
