"""How long `plan` takes with the Impact on the shipped policy and 100,000 assignments in
history (target: 2 s). Prints the figure; not a timed assertion (shared machines vary).

    .venv/bin/pytest -s -m db tests/migrate/test_plan_impact_speed.py
"""

from __future__ import annotations

import shutil
import statistics
import time

import psycopg
import pytest
from engine_calls import call, uid

from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES, build

pytestmark = pytest.mark.db

ASSIGNMENTS = 100_000
WINDOW_DAYS = 30

# i = 1..100000: type and priority cycle, every 10th needs a legal translator, arrivals spread
# over the last 60 days (i % 60 days ago, plus an hour): half of them inside a 30-day window.
LOAD = """
INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id, unit_id, rule_id, target_unit_id,
                         status, required_skills, arrived_at, assigned_at, completed_at)
SELECT 'BENCH-' || i, t, p, %(staff)s::uuid, 'unit-it-support', m.rule_id, m.target_unit_id, 'completed', s,
       now() - make_interval(days => i %% 60, hours => 1), now() - make_interval(days => i %% 60),
       now() - make_interval(days => i %% 60)
FROM generate_series(1, %(n)s) i,
     LATERAL (SELECT (enum_range(NULL::work_item_type))[1 + i %% 4] AS t,
                     (enum_range(NULL::priority_level))[1 + (i / 4) %% 4] AS p,
                     CASE WHEN i %% 10 = 0 THEN ARRAY['skill-legal-translation'] ELSE '{}'::text[] END AS s) item,
     LATERAL (SELECT * FROM match_assignment_rule(item.t, item.p, item.s)) m
"""


def test_plan_with_impact_on_100k_assignments(engine_url, repo_root, tmp_path, capsys):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        call(conn, "upsert_staff_profile", {"id": uid(1), "unit_id": "unit-it-support", "full_name": "Desk"})
        conn.execute("SET session_replication_role = replica")     # history, not new work: no triggers
        conn.execute(LOAD, {"staff": uid(1), "n": ASSIGNMENTS})
        conn.execute("RESET session_replication_role")
        conn.execute("ANALYZE assignments")
        assert conn.execute("SELECT count(*) FROM assignments").fetchone()[0] == ASSIGNMENTS

    rules = tmp_path / "rules"
    shutil.copytree(repo_root / "rules", rules)
    routing = (rules / "assignment_rules.yaml").read_text()
    assert "      priorities: [urgent, high]\n" in routing
    (rules / "assignment_rules.yaml").write_text(routing.replace("      priorities: [urgent, high]\n",
                                                                 "      priorities: [urgent]\n", 1))
    units = (rules / "units.yaml").read_text()
    (rules / "units.yaml").write_text(units.replace("    wip_limit: 8 ", "    wip_limit: 6 ", 1))
    policy, objects = build(rules)

    build_plan(engine_url, policy, objects, DEFAULT_TEMPLATES)             # warm-up
    runs, impacts = [], []
    for _ in range(3):
        clock = time.perf_counter()
        plan = build_plan(engine_url, policy, objects, DEFAULT_TEMPLATES, impact_days=WINDOW_DAYS)
        runs.append(time.perf_counter() - clock)
        impacts.append(plan.timings["impact"])
    impact = plan.impact
    assert impact.arrivals == sum(1 for i in range(1, ASSIGNMENTS + 1) if i % 60 < WINDOW_DAYS)
    # high tickets leave rule-critical-tickets for rule-tickets (same unit): 1 in 16 items
    assert [(r.from_rule, r.to_rule) for r in impact.routes if r.moves] == [("rule-critical-tickets", "rule-tickets")]
    assert [c.unit_id for c in impact.capacity] == ["unit-field-survey"]
    with capsys.disabled():
        print(f"\nplan with impact, shipped policy, {ASSIGNMENTS} assignments: median {statistics.median(runs):.3f} s "
              f"(runs {', '.join(f'{r:.3f}' for r in runs)}); impact stage median {statistics.median(impacts):.3f} s; "
              f"{impact.arrivals} arrivals in {WINDOW_DAYS} days, {impact.moved} re-routed")
