"""Golden plans: one folder per policy change under tests/golden/, each a real PostgreSQL run.

A case folder holds `before/` and `after/` (YAML files laid over tests/policies/base, either may
be empty), optionally `live.sql` (a hand change made after `before` is installed) and
`expected.txt`: the plan from `before` (+ live.sql) to `after`, one step a line, written from the
step fields as `<action> <key> [hazard,...] drift` (hazards and `drift` only when present; `#`
starts a comment). A case whose folder has a `needs-pg-cron` file runs where pg_cron lives.

Each case: install `before`, run live.sql, plan `after` and compare the lines exactly; then apply
`after` allowing exactly the plan's hazards and plan again: nothing is left (convergence), except
an enum value removal, which rulesctl refuses to do and keeps reporting.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from policy_cases import make_policy

from engine.database.local import LocalCluster
from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES, build

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p for p in GOLDEN.iterdir() if p.is_dir())
ORIGIN = re.compile(r"^rules/[a-z_]+\.yaml:\d+$")
# Steps that exist because a line of the policy asks for something: each must name that line.
FROM_A_POLICY_LINE = {"insert", "update", "add-value", "schedule", "reschedule", "remove-value"}


def step_line(step) -> str:
    parts = [step.action, step.key]
    if step.hazards:
        parts.append("[" + ",".join(h.slug for h in step.hazards) + "]")
    if step.drift:
        parts.append("drift")
    return " ".join(parts)


def plan_lines(plan) -> list[str]:
    return [step_line(step) for step in plan.steps]


def expected_lines(case: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (case / "expected.txt").read_text().splitlines())
    return [line for line in lines if line]


_BUILT: dict[tuple, tuple] = {}                     # built policies (frozen), by overlay contents


def build_case(workdir: Path, overlay: Path):
    """The base policy with `overlay`'s files laid over it, in workdir/rules (origins read rules/...)."""
    workdir.mkdir()
    rules = make_policy(workdir, overlay if overlay.is_dir() else None)
    key = tuple(sorted((path.name, path.read_text()) for path in overlay.glob("*.yaml")))
    if key not in _BUILT:
        _BUILT[key] = build(rules)
    return _BUILT[key]


@pytest.fixture(scope="module")
def pg_cron_url():
    """A private cluster whose application database runs pg_cron.

    The session's cron_database_url is shared with tests/test_jobs.py, which expects to make the
    first install there and runs jobs against live data; these cases install the small base
    policy and move its jobs around, so they get a cluster of their own.
    """
    base = Path(tempfile.mkdtemp(prefix="rulesctl-golden-cron-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base)
    try:
        url = cluster.start()
        if not cluster.status().pg_cron_available:
            pytest.skip("pg_cron is not installed on this machine")
        yield url
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.db
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_plan_then_convergence(case: Path, request, tmp_path):
    needs_cron = (case / "needs-pg-cron").exists()
    url = request.getfixturevalue("pg_cron_url" if needs_cron else "database_url")
    before_policy, before_objects = build_case(tmp_path / "before", case / "before")
    after_policy, after_objects = build_case(tmp_path / "after", case / "after")

    # install `before` exactly (on the pg_cron cluster, shared by the cron cases, this also undoes the last case)
    apply(url, before_objects, before_policy, allowed=set(Hazard))
    assert plan_lines(build_plan(url, before_policy, before_objects, DEFAULT_TEMPLATES)) == []
    if (case / "live.sql").exists():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((case / "live.sql").read_text())

    plan = build_plan(url, after_policy, after_objects, DEFAULT_TEMPLATES)
    assert plan_lines(plan) == expected_lines(case)
    allowed = plan.hazards
    removal = [step for step in plan.steps if step.action == "remove-value"]
    if Hazard.ENUM_VALUE_REMOVAL in allowed:
        with pytest.raises(HazardsBlocked, match="enum-value-removal"):
            apply(url, after_objects, after_policy, allowed=allowed - {Hazard.ENUM_VALUE_REMOVAL})
        assert plan_lines(build_plan(url, after_policy, after_objects, DEFAULT_TEMPLATES)) == expected_lines(case)
    result = apply(url, after_objects, after_policy, allowed=allowed)
    assert result.outcome == "applied", result.message

    again = build_plan(url, after_policy, after_objects, DEFAULT_TEMPLATES)
    assert plan_lines(again) == [step_line(step) for step in removal]

    assert_reviewable(plan, needs_cron)


def assert_reviewable(plan, needs_cron: bool) -> None:
    """What a reviewer reads: enum values in their own first segment, drift said as such, and the
    policy line behind every step a policy edit caused (inserts, updates, schedules, and functions
    replaced because the policy compiled into them changed)."""
    if needs_cron:
        assert not any("not scheduled" in note for note in plan.notes), plan.notes
    for step in plan.steps:
        assert (step.segment == 0) == (step.action == "add-value"), f"{step.key}: segment {step.segment}"
        if step.drift:
            assert step.reason.startswith("drift: changed outside rulesctl"), step.reason
        elif step.action in FROM_A_POLICY_LINE or (step.action == "replace" and step.kind == "function"):
            assert step.origin and ORIGIN.match(step.origin), \
                f"{step.action} {step.key}: no policy origin ({step.reason})"
            assert step.reason.endswith(f"({step.origin})"), step.reason


def test_every_case_folder_is_complete():
    assert len(CASES) >= 14
    for case in CASES:
        assert (case / "expected.txt").is_file(), case.name
        assert (case / "before").is_dir() and (case / "after").is_dir(), case.name
        assert expected_lines(case), f"{case.name}: a golden case plans at least one step"


@pytest.mark.db
def test_a_removed_enum_value_is_never_recreated(database_url, tmp_path):
    """The removal step only explains the migration; after the apply the value is still there."""
    case = GOLDEN / "remove_work_item_type"
    before = build_case(tmp_path / "before", case / "before")
    after = build_case(tmp_path / "after", case / "after")
    apply(database_url, before[1], before[0])
    plan = build_plan(database_url, after[0], after[1], DEFAULT_TEMPLATES)
    (removal,) = [step for step in plan.steps if step.action == "remove-value"]
    assert all(line.startswith("--") for line in removal.sql.strip().splitlines()), removal.sql   # says, never does
    assert "survey_task" in removal.reason and removal.origin == "rules/work_items.yaml:2"
    apply(database_url, after[1], after[0], allowed=set(Hazard))
    with psycopg.connect(database_url) as conn:
        values = conn.execute("SELECT enum_range(NULL::public.work_item_type)::text[]").fetchone()[0]
    assert values == ["ticket", "survey_task"]
