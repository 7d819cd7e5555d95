"""Convergence, as a property: any sequence of valid policy edits, applied one by one, leaves
nothing to plan after each apply, and ends with exactly the live objects a fresh install of
the final policy has.

The edits start from the small base policy (tests/policies/base): SLA minutes, skills added and
removed, a rule's precedence, strategy or weight, a new work item type with its SLA rows, an
escalation threshold, a unit's WIP limit set or cleared. Every edit keeps the policy valid
(the validator is not under test here). Each example runs against its own database, cloned
from one with the base policy installed.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from policy_cases import BASE
from psycopg import sql

from engine.migrate.apply import apply
from engine.migrate.hazards import Hazard
from engine.migrate.introspect import introspect
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES, build

ALLOWED = set(Hazard) - {Hazard.ENUM_VALUE_REMOVAL}
EDITED_FILES = ("sla.yaml", "skills.yaml", "assignment_rules.yaml", "work_items.yaml", "escalation.yaml", "units.yaml")
PRIORITIES = ("low", "urgent")

# --------------------------------------------------------------------------------------- edits

sla_edit = st.tuples(st.just("sla"), st.integers(0, 9), st.sampled_from(PRIORITIES),
                     st.integers(1, 12).map(lambda n: n * 5), st.integers(1, 16).map(lambda n: n * 30))
add_skill = st.tuples(st.just("add_skill"), st.integers(0, 5))
remove_skill = st.tuples(st.just("remove_skill"), st.integers(0, 9))
rule_edit = st.one_of(
    st.tuples(st.just("precedence"), st.sampled_from(("rule-urgent", "rule-all")), st.integers(1, 99)),
    st.tuples(st.just("strategy"), st.sampled_from(("rule-urgent", "rule-all")),
              st.sampled_from(("least_loaded", "round_robin"))),
    st.tuples(st.just("weight"), st.sampled_from(("rule-urgent", "rule-all")), st.integers(1, 3)),
)
add_type = st.tuples(st.just("add_type"), st.sampled_from(("survey_task", "data_request", "audit")))
escalation_edit = st.one_of(st.tuples(st.just("warning_level"), st.integers(10, 19).map(lambda n: n * 5)),
                            st.tuples(st.just("breach_level"), st.integers(20, 40).map(lambda n: n * 5)))
wip_edit = st.tuples(st.just("wip"), st.sampled_from(("unit-root", "unit-ops", "unit-desk")),
                     st.one_of(st.none(), st.integers(1, 10)))
EDITS = st.one_of(sla_edit, add_skill, remove_skill, rule_edit, add_type, escalation_edit, wip_edit)


def base_documents() -> dict[str, dict]:
    return {name: yaml.safe_load((BASE / name).read_text()) for name in EDITED_FILES}


def apply_edit(docs: dict[str, dict], edit: tuple) -> dict[str, dict]:
    """The policy after `edit` (a new copy), still valid."""
    docs = copy.deepcopy(docs)
    kind, *args = edit
    matrix = docs["sla.yaml"]["matrix"]
    if kind == "sla":
        index, priority, response, extra = args
        type_id = sorted(matrix)[index % len(matrix)]
        matrix[type_id][priority] = {"response": f"{response}m", "resolution": f"{response + extra}m"}
    elif kind == "add_skill":
        skills = docs["skills.yaml"]["skills"]
        if not any(s["id"] == f"skill-extra-{args[0]}" for s in skills):
            skills.append({"id": f"skill-extra-{args[0]}", "name": f"Extra {args[0]}", "category": "generated"})
    elif kind == "remove_skill":
        skills = docs["skills.yaml"]["skills"]
        if len(skills) > 1:                                  # a policy keeps at least one skill
            del skills[args[0] % len(skills)]
    elif kind in ("precedence", "strategy", "weight"):
        rules = {rule["id"]: rule for rule in docs["assignment_rules.yaml"]["rules"]}
        name, value = args
        if kind == "precedence":                             # rule-urgent stays before the catch-all
            if name == "rule-urgent":
                value = min(value, rules["rule-all"]["precedence"] - 1)
            else:
                value = max(value, rules["rule-urgent"]["precedence"] + 1)
            rules[name]["precedence"] = value
        else:
            rules[name]["strategy" if kind == "strategy" else "capacity_weight"] = value
    elif kind == "add_type":
        types = docs["work_items.yaml"]["types"]
        if not any(t["id"] == args[0] for t in types):
            types.append({"id": args[0], "name": args[0].replace("_", " ").capitalize()})
            matrix[args[0]] = {"low": {"response": "2h", "resolution": "16h"},
                               "urgent": {"response": "30m", "resolution": "4h"}}
    elif kind == "warning_level":
        docs["escalation.yaml"]["chains"][0]["levels"][0]["at"] = f"{args[0]}%"
    elif kind == "breach_level":
        docs["escalation.yaml"]["chains"][0]["levels"][1]["at"] = f"{args[0]}%"
    elif kind == "wip":
        unit_id, limit = args
        unit = next(u for u in docs["units.yaml"]["units"] if u["id"] == unit_id)
        if limit is None:
            unit.pop("wip_limit", None)
        else:
            unit["wip_limit"] = limit
    return docs


def build_documents(workdir: Path, docs: dict[str, dict]):
    """Write the policy under workdir/rules and build it from there."""
    rules = workdir / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    shutil.copytree(BASE, rules)
    for name, doc in docs.items():
        (rules / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return build(rules)


# --------------------------------------------------------------------------------------- databases

class Databases:
    """Create databases on the session cluster, optionally as copies of a template; drop them all."""

    def __init__(self, cluster):
        self.cluster, self.names = cluster, []

    def create(self, template: str | None = None) -> str:
        name = f"prop_{uuid.uuid4().hex[:12]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.cluster.url_for("postgres"), autocommit=True) as conn:
            conn.execute(statement)
        self.names.append(name)
        return name

    def drop(self, name: str) -> None:
        with psycopg.connect(self.cluster.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.names.remove(name)


@pytest.fixture(scope="module")
def databases(pg_cluster):
    dbs = Databases(pg_cluster)
    yield dbs
    for name in list(dbs.names):
        dbs.drop(name)


@pytest.fixture(scope="module")
def base_template(databases, pg_cluster):
    """A database holding the base policy, cloned for every example."""
    workdir = Path(tempfile.mkdtemp(prefix="rulesctl-prop-"))
    try:
        policy, objects = build_documents(workdir, base_documents())
        name = databases.create()
        apply(pg_cluster.url_for(name), objects, policy)
        return name
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def live_objects(url: str) -> dict:
    """Every object introspection sees, as {key: definition}, without cluster-wide roles."""
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        return {key: obj.definition for key, obj in introspect(conn).items() if obj.kind != "role"}


def plan_keys(url, policy, objects) -> list[str]:
    return [f"{step.action} {step.key}" for step in build_plan(url, policy, objects, DEFAULT_TEMPLATES).steps]


# --------------------------------------------------------------------------------------- the property

@pytest.mark.db
@settings(max_examples=6, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(EDITS, min_size=3, max_size=5))
def test_any_edit_sequence_converges_to_a_fresh_install(edits, databases, base_template, pg_cluster):
    workdir = Path(tempfile.mkdtemp(prefix="rulesctl-prop-"))
    live_name = databases.create(template=base_template)
    fresh_name = None
    try:
        url = pg_cluster.url_for(live_name)
        docs = base_documents()
        for number, edit in enumerate(edits, start=1):
            docs = apply_edit(docs, edit)
            note(f"edit {number}: {edit}")
            policy, objects = build_documents(workdir, docs)
            result = apply(url, objects, policy, allowed=ALLOWED)
            assert result.outcome in ("applied", "no_change"), result.message
            assert plan_keys(url, policy, objects) == [], f"not converged after edit {number}: {edit}"

        fresh_name = databases.create()
        fresh_url = pg_cluster.url_for(fresh_name)
        apply(fresh_url, objects, policy)
        live, fresh = live_objects(url), live_objects(fresh_url)
        assert live.keys() == fresh.keys()
        assert [key for key in sorted(live) if live[key] != fresh[key]] == []
    finally:
        databases.drop(live_name)
        if fresh_name:
            databases.drop(fresh_name)
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_edits_keep_the_policy_valid(tmp_path):
    """Every edit kind, applied in turn to the base policy, leaves it valid (it builds)."""
    examples = [("sla", 0, "urgent", 5, 30), ("add_skill", 1), ("remove_skill", 0), ("precedence", "rule-urgent", 50),
                ("precedence", "rule-all", 3), ("strategy", "rule-all", "round_robin"), ("weight", "rule-urgent", 3),
                ("add_type", "audit"), ("warning_level", 95), ("breach_level", 100), ("wip", "unit-desk", 7),
                ("wip", "unit-ops", None), ("sla", 1, "low", 60, 30)]
    docs = base_documents()
    for edit in examples:
        docs = apply_edit(docs, edit)
    policy, _ = build_documents(tmp_path, docs)
    assert [t.id for t in policy.work_item_types] == ["ticket", "audit"]
    # clamped: rule-urgent stays first
    assert {r.id: r.precedence for r in policy.rules} == {"rule-urgent": 19, "rule-all": 20}
    assert [s.id for s in policy.skills] == ["skill-network", "skill-extra-1"]
    assert {(u.id, u.wip_limit) for u in policy.units} >= {("unit-desk", 7), ("unit-ops", 3)}
