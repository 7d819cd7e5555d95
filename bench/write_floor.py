"""What an arrival and its completion cost at three depths of the engine, so the distance between
the simulation's speed and its target can be split into what the engine decides and what it only
writes. A benchmark, not a test (issue 19: a month of ~97,000 arrivals under two policies in 60 s
asks for ~0.55 ms of one CPU per arrival with its completion, sweeps and driver).

    python -m bench.write_floor [--items 4000] [--staff-per-unit 20]

In a private throwaway cluster (the simulation's settings: fsync and full-page writes off), the
shipped policy installed by `rulesctl apply`, `--staff-per-unit` people in each of its units, then
`--items` arrivals each completed at once, round the units (so that, as in the replay, a person
is changed about once per transaction), committing every 200 and vacuuming the staff every 400
(as the replay does every simulated hour: the load updates leave dead pick-index entries that
later picks would walk), three ways:

- `rows`: only the rows an arrival and its completion write — the assignment inserted and
  completed, the person's load moved up and down, two outbox events — with triggers and
  foreign-key checks off (session_replication_role = replica): the floor of this schema;
- `rows + triggers`: the assignment inserted and completed by hand, the engine's triggers doing
  the rest (load, outbox, SLA clocks, the freed slot's queue probe);
- `engine`: `auto_assign` and `complete_assignment`, i.e. also the rules, the pick, the decision
  record and the SLA deadlines.

Prints the replaying backend's CPU (and wall) microseconds per arrival with its completion.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMIT_EVERY = 200
VACUUM_EVERY = 400

# One procedure per depth, each arrival completed at once; the clock moves a second per item.
PROCEDURES = """
CREATE PROCEDURE pg_temp.rows_only(p_staff uuid[], p_units text[], p_first integer, p_last integer,
                                   p_triggers boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_staff uuid;
  v_unit text;
  v_id uuid;
BEGIN
  IF NOT p_triggers THEN
    SET LOCAL session_replication_role = replica;
  END IF;
  FOR i IN p_first .. p_last LOOP
    v_staff := p_staff[1 + i % cardinality(p_staff)];
    v_unit := p_units[1 + i % cardinality(p_staff)];
    PERFORM set_config('rulesctl.now', (timestamptz '2027-01-04 09:00+00' + i * interval '1 second')::text, false);
    INSERT INTO assignments (work_item_id, work_item_type, priority, assignee_id, unit_id, target_unit_id,
                             arrived_at, assigned_at, sla_deadline, next_check_at, response_deadline, decision)
    VALUES ('floor-' || i, 'ticket', 'normal', v_staff, v_unit, v_unit, engine_now(),
            engine_now(), engine_now() + interval '1 day', engine_now() + interval '12 hours',
            engine_now() + interval '2 hours', jsonb_build_object('source', 'write_floor'))
    RETURNING id INTO v_id;
    IF NOT p_triggers THEN
      UPDATE staff_profiles SET current_assignment_count = current_assignment_count + 1,
                                last_assigned_at = engine_now() WHERE id = v_staff;
      INSERT INTO engine_events (channel, payload) VALUES ('assignment_changes', jsonb_build_object(
        'assignment_id', v_id, 'assignee_id', v_staff, 'op', 'insert')::text);
    END IF;
    UPDATE assignments SET status = 'completed', completed_at = engine_now(), next_check_at = NULL WHERE id = v_id;
    IF NOT p_triggers THEN
      UPDATE staff_profiles SET current_assignment_count = current_assignment_count - 1 WHERE id = v_staff;
      INSERT INTO engine_events (channel, payload) VALUES ('assignment_changes', jsonb_build_object(
        'assignment_id', v_id, 'assignee_id', v_staff, 'op', 'update')::text);
    END IF;
    IF i % """ + str(COMMIT_EVERY) + """ = 0 THEN
      COMMIT;
      IF NOT p_triggers THEN
        SET LOCAL session_replication_role = replica;
      END IF;
    END IF;
  END LOOP;
END
$fn$;

CREATE PROCEDURE pg_temp.through_engine(p_units text[], p_first integer, p_last integer)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_result jsonb;
BEGIN
  FOR i IN p_first .. p_last LOOP
    PERFORM set_config('rulesctl.now', (timestamptz '2027-01-04 09:00+00' + i * interval '1 second')::text, false);
    v_result := auto_assign(jsonb_build_object('work_item_id', 'engine-' || i, 'work_item_type', 'ticket',
                                               'priority', 'normal', 'target_unit_id',
                                               p_units[1 + i % cardinality(p_units)]));
    PERFORM complete_assignment((v_result ->> 'assignment_id')::uuid);
    IF i % """ + str(COMMIT_EVERY) + """ = 0 THEN
      COMMIT;
    END IF;
  END LOOP;
END
$fn$;
"""


def measure(items: int, per_unit: int) -> tuple[list[tuple[str, float, float]], int, int]:
    from psycopg.types.json import Jsonb

    from engine.database.connect import connect
    from engine.project import build
    from engine.simulate.replay import backend_cpu_s
    from engine.simulate.scratch import ScratchCluster, ScratchDatabase
    policy, objects = build(REPO_ROOT / "rules")
    units = sorted(unit.id for unit in policy.units if not unit.retired)
    people = [(str(uuid.UUID(int=n + 1)), units[n % len(units)]) for n in range(per_unit * len(units))]
    results = []
    with ScratchCluster() as cluster, ScratchDatabase(cluster.url, "floor") as scratch:
        scratch.install(policy, objects, REPO_ROOT / "rules")
        with connect(scratch.url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute("SELECT upsert_staff_profile(p) FROM unnest(%s::jsonb[]) p", [[Jsonb(
                {"id": person, "unit_id": unit, "full_name": f"Floor {n}", "role": "staff", "wip_limit": 50})
                for n, (person, unit) in enumerate(people)]])
            conn.execute(PROCEDURES)
            staff, homes = [person for person, _ in people], [unit for _, unit in people]
            runs = [("rows", "CALL pg_temp.rows_only(%s, %s, %s, %s, false)", [staff, homes]),
                    ("rows + triggers", "CALL pg_temp.rows_only(%s, %s, %s, %s, true)", [staff, homes]),
                    ("engine", "CALL pg_temp.through_engine(%s, %s, %s)", [units])]
            for label, call, params in runs:
                conn.execute("DELETE FROM engine_events")
                conn.execute("DELETE FROM assignments")
                conn.execute("VACUUM ANALYZE assignments, staff_profiles, engine_events")
                cpu = wall = 0.0
                for first in range(1, items + 1, VACUUM_EVERY):
                    before, clock = backend_cpu_s(conn.info.backend_pid), time.perf_counter()
                    conn.execute(call, [*params, first, min(first + VACUUM_EVERY - 1, items)])
                    wall += time.perf_counter() - clock
                    after = backend_cpu_s(conn.info.backend_pid)
                    cpu += after - before if after is not None and before is not None else float("nan")
                    conn.execute("VACUUM staff_profiles, assignment_queue")
                results.append((label, cpu / items * 1e6, wall / items * 1e6))
    return results, len(people), len(units)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=4000, help="arrivals (each completed at once) per depth")
    parser.add_argument("--staff-per-unit", type=int, default=20, help="people in each unit of the shipped policy")
    args = parser.parse_args(argv)
    results, staff, units = measure(args.items, args.staff_per_unit)
    print(f"write floor: {args.items:,} arrivals each completed at once, round {units} units, {staff} staff, "
          f"commit every {COMMIT_EVERY}, staff vacuumed every {VACUUM_EVERY}, private scratch cluster")
    print(f"{'depth':<16} {'cpu us/item':>12} {'wall us/item':>13}")
    for label, cpu_us, wall_us in results:
        print(f"{label:<16} {cpu_us:>12.0f} {wall_us:>13.0f}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} (other work on the host slows the wall figures more than the CPU ones)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
