"""The decision record's candidate counts and ranking against a reference computed here from the
staff rows, over the cases the pick and explain_assignment_candidates take different paths for:
a one-unit and a whole-subtree target, no required skills (no skill check per person) and
required skills at a proficiency rank, weight 1 and weight 2 (room for one slot but not two),
every availability status, and the pick's ranking and explanation (p_explain) equal to
explain's own.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import at, call, uid

pytestmark = pytest.mark.db

T0 = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=3)))
OPERATIONS = ["unit-data-processing", "unit-field-survey", "unit-methodology", "unit-operations"]
EXPERT, PROFICIENT = 3, 2
PICK = "SELECT staff_id::text, ranking, candidates FROM pick_staff_with_ranking(%s, %s, %s, %s, %s, %s)"


def staff(conn, n, unit_id, **fields):
    call(conn, "upsert_staff_profile", {"id": uid(n), "unit_id": unit_id, "full_name": f"Person {n}", **fields})


def give_load(conn, n, items):
    """items assignments straight onto person n (the capacity trigger moves the load)."""
    for i in range(items):
        conn.execute("INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id, unit_id,"
                     " target_unit_id, arrived_at, assigned_at, sla_deadline)"
                     " SELECT %s, 'survey_task', 'normal', s.id, s.unit_id, s.unit_id, %s, %s, %s"
                     " FROM staff_profiles s WHERE s.id = %s",
                     [f"load-{n}-{i}", T0, T0 + timedelta(minutes=n), T0 + timedelta(days=3), uid(n)])


@pytest.fixture
def people(conn):
    """Operations' people in every state: free, loaded, full, one slot short of two, away."""
    at(conn, T0)
    sampling = {"skill-sampling": "expert", "skill-census": "proficient"}
    staff(conn, 1, "unit-field-survey", skills=sampling)
    staff(conn, 2, "unit-field-survey", skills={"skill-sampling": "proficient"})
    staff(conn, 3, "unit-field-survey", skills=sampling, wip_limit=2)
    staff(conn, 4, "unit-data-processing", skills=["skill-sql"])
    staff(conn, 5, "unit-data-processing", skills=sampling, availability_status="busy")
    staff(conn, 6, "unit-methodology", skills=sampling, availability_status="on_leave")
    staff(conn, 7, "unit-methodology", availability_status="offline")
    staff(conn, 8, "unit-methodology", skills=sampling, wip_limit=1)
    staff(conn, 9, "unit-operations", skills=sampling)
    staff(conn, 10, "unit-it-support", skills=sampling)                  # outside the target
    give_load(conn, 1, 1)
    give_load(conn, 3, 1)                                                # one slot left of two
    give_load(conn, 8, 1)                                                # full
    give_load(conn, 9, 2)
    return conn


def reference(conn, units, skills, rank, weight) -> dict:
    """What the record must say, counted person by person from the rows."""
    rows = conn.execute("""
        SELECT s.id::text, s.availability_status::text, s.current_assignment_count,
               coalesce(s.wip_limit, u.default_wip_limit), s.skills @> %(skills)s::text[]
                 AND (SELECT count(*) FROM staff_skills k JOIN proficiency_levels l ON l.id = k.proficiency
                      WHERE k.staff_id = s.id AND k.skill_id = ANY (%(skills)s) AND l.rank >= %(rank)s)
                     >= CASE WHEN %(rank)s <= 1 THEN 0 ELSE cardinality(%(skills)s::text[]) END
        FROM staff_profiles s JOIN organizational_units u ON u.id = s.unit_id
        WHERE s.unit_id = ANY (%(units)s)""", {"units": units, "skills": skills, "rank": rank}).fetchall()
    excluded: dict[str, int] = {}
    eligible = 0
    for _, status, load, limit, skilled in rows:
        reason = (f"not available: {status}" if status != "available"
                  else "missing a required skill or proficiency" if not skilled
                  else "no room under WIP limit" if load + weight > limit else None)
        if reason:
            excluded[reason] = excluded.get(reason, 0) + 1
        else:
            eligible += 1
    return {"considered": len(rows), "eligible": eligible, "excluded": excluded}


CASES = [
    pytest.param(OPERATIONS, [], 0, 1, id="subtree-no-skills"),
    pytest.param(OPERATIONS, [], 0, 2, id="subtree-no-skills-weight-2"),
    pytest.param(OPERATIONS, ["skill-sampling"], PROFICIENT, 1, id="subtree-skill-proficient"),
    pytest.param(OPERATIONS, ["skill-census", "skill-sampling"], EXPERT, 2, id="subtree-two-skills-expert"),
    pytest.param(["unit-field-survey"], [], EXPERT, 1, id="one-unit-rank-without-skills"),
    pytest.param(["unit-methodology"], ["skill-sampling"], 0, 1, id="one-unit-skill-any-level"),
]


@pytest.mark.parametrize(("units", "skills", "rank", "weight"), CASES)
@pytest.mark.parametrize("strategy", ["least_loaded", "round_robin"])
def test_counts_and_ranking_match_the_rows(people, units, skills, rank, weight, strategy):
    conn = people
    args = [units, skills, rank, weight, strategy]
    explained = conn.execute("SELECT explain_assignment_candidates(%s, %s, %s, %s, %s)", args).fetchone()[0]
    expected = reference(conn, *args[:4])
    assert {k: explained[k] for k in ("considered", "eligible", "excluded")} == expected
    eligible = conn.execute("SELECT staff_id::text FROM find_eligible_staff_for_assignment(%s, %s, %s, %s, %s, 3)",
                            args).fetchall()
    assert [c["staff_id"] for c in explained["ranking"]] == [r[0] for r in eligible]
    assert len(explained["ranking"]) == min(3, expected["eligible"])
    with conn.transaction():                   # the pick ranks the same people and explains them alike
        picked, ranking, candidates = conn.execute(PICK, [*args, True]).fetchone()
        assert ranking == explained["ranking"] and candidates == explained
        assert picked == (ranking[0]["staff_id"] if ranking else None)
    with conn.transaction():
        assert conn.execute(PICK, [*args, False]).fetchone() == (picked, ranking, None)


def test_the_pick_skips_a_held_candidate_and_records_the_full_ranking(people, engine_url):
    """The ranking is what the arrival saw; the pick takes the best one nobody holds."""
    conn = people
    args = [OPERATIONS, [], 0, 1, "least_loaded"]
    ranking = conn.execute("SELECT explain_assignment_candidates(%s, %s, %s, %s, %s)", args).fetchone()[0]["ranking"]
    assert len(ranking) == 3
    with psycopg.connect(engine_url) as other:                           # holds the best one's row
        other.execute("SELECT 1 FROM staff_profiles WHERE id = %s FOR NO KEY UPDATE", [ranking[0]["staff_id"]])
        with conn.transaction():
            picked, seen, candidates = conn.execute(PICK, [*args, True]).fetchone()
        assert seen == ranking == candidates["ranking"] and picked == ranking[1]["staff_id"]
