"""--from-history: the live database's recent arrivals, handling times and staff, read-only."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from engine_calls import at, call, uid
from simulate_support import assert_sound

from engine.simulate.run import WorkloadSpec, simulate

pytestmark = pytest.mark.db


def test_the_last_days_of_a_live_database_are_replayed_without_writing_to_it(engine_url, server_url, shipped):
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    with psycopg.connect(engine_url, autocommit=True) as conn:
        at(conn, start)
        for n in (1, 2):
            call(conn, "upsert_staff_profile", {"id": uid(n), "unit_id": "unit-it-support", "full_name": f"Desk {n}",
                                                "wip_limit": 1})
        for n in range(12):
            at(conn, start + dt.timedelta(minutes=10 * n))
            result = call(conn, "auto_assign", {"work_item_id": f"live-{n}", "work_item_type": "ticket",
                                                "priority": "normal"})
            if n % 3 == 0 and result["status"] == "assigned":
                at(conn, start + dt.timedelta(minutes=10 * n + 7))
                conn.execute("SELECT complete_assignment(%s)", [result["assignment_id"]])
        before = conn.execute("SELECT (SELECT count(*) FROM assignments), (SELECT count(*) FROM assignment_queue),"
                              " (SELECT max(updated_at) FROM assignments)").fetchone()

    result = simulate(server_url, [shipped], WorkloadSpec(history_url=engine_url, history_days=3), seed=1)

    with psycopg.connect(engine_url) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM assignments), (SELECT count(*) FROM assignment_queue),"
                            " (SELECT max(updated_at) FROM assignments)").fetchone() == before
    s = result.summary
    assert s["workload"]["source"] == "history"
    assert s["workload"]["items"] == 12
    assert s["workload"]["staff"] == 2
    m = s["policies"]["baseline"]
    assert m["items"] == 12 and m["rejected"] == 0
    assert m["assigned"] + m["queued_at_end"] == 12
    assert m["by_unit"]["unit-it-support"]["items"] == 12
    assert_sound(result)
