"""Tests written for mutations of scripts/mutations.toml that nothing else killed: each names the
behaviour a mutation breaks, and fails when it is broken.

Plan hazards (engine/migrate/steps.py): dropping a table rulesctl owned, or a column added by hand, is
data-loss; rebuilding a changed index is lock; changing who holds a privilege is authorization.
Each is planned with its hazard and `apply` refuses it until that hazard is allowed by name,
leaving the database as it was. Real PostgreSQL, the small base policy.

Escalation races (the shipped policy): the SLA sweep and a manual escalation of one assignment,
truly overlapping (one holds its transaction open while the other runs), never write the same
level and never make the other fail or wait where it should not.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from engine_calls import at, call, uid

from engine.migrate.apply import HazardsBlocked, apply
from engine.migrate.hazards import Hazard
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES


def execute(url: str, statement: str, *params) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def rows(url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def planned(url: str, base) -> dict[str, tuple[str, tuple[Hazard, ...]]]:
    """key -> (action, hazards) of every planned step."""
    return {s.key: (s.action, s.hazards) for s in build_plan(url, base[0], base[1], DEFAULT_TEMPLATES).steps}


def assert_refused_until_allowed(url: str, base, hazard: Hazard) -> None:
    """apply refuses the plan naming the hazard; allowed by name, it applies and converges."""
    with pytest.raises(HazardsBlocked, match=hazard.slug):
        apply(url, base[1], base[0], allowed=set(Hazard) - {hazard})
    assert apply(url, base[1], base[0], allowed={hazard}).outcome == "applied"
    assert planned(url, base) == {}


def test_dropping_a_table_rulesctl_owned_is_a_data_loss_hazard(base_url, base):
    """A table an older engine version created (recorded as owned) and this one no longer has."""
    execute(base_url, "CREATE TABLE public.retired_log (note text)")
    execute(base_url, "INSERT INTO public.retired_log VALUES ('a row that a drop would lose')")
    execute(base_url, "INSERT INTO rulesctl.managed_objects (key, definition_hash) VALUES ('table:public.retired_log', 'older')")
    assert planned(base_url, base) == {"table:public.retired_log": ("drop", (Hazard.DATA_LOSS,))}
    with pytest.raises(HazardsBlocked, match="data-loss"):
        apply(base_url, base[1], base[0], allowed=set(Hazard) - {Hazard.DATA_LOSS})
    assert rows(base_url, "SELECT note FROM public.retired_log") == [("a row that a drop would lose",)]
    assert_refused_until_allowed(base_url, base, Hazard.DATA_LOSS)
    assert rows(base_url, "SELECT to_regclass('public.retired_log') IS NULL") == [(True,)]


def test_dropping_a_column_is_a_data_loss_hazard(base_url, base):
    """A column added by hand to an engine table is drift; restoring the table drops its data."""
    execute(base_url, "ALTER TABLE public.staff_profiles ADD COLUMN nickname text")
    steps = planned(base_url, base)
    assert steps == {"table:public.staff_profiles": ("alter", (Hazard.DATA_LOSS,))}
    assert_refused_until_allowed(base_url, base, Hazard.DATA_LOSS)


def test_a_changed_index_is_rebuilt_with_a_lock_hazard(base_url, base):
    """An engine index redefined by hand is dropped and built again: writers wait meanwhile."""
    execute(base_url, "DROP INDEX public.idx_staff_profiles_unit")
    execute(base_url, "CREATE INDEX idx_staff_profiles_unit ON public.staff_profiles (unit_id, id)")
    assert planned(base_url, base) == {"index:public.idx_staff_profiles_unit": ("replace", (Hazard.LOCK,))}
    assert_refused_until_allowed(base_url, base, Hazard.LOCK)


def test_a_changed_grant_is_an_authorization_hazard(base_url, base):
    """A privilege granted by hand to one more role: restoring it changes who may read what."""
    execute(base_url, "GRANT SELECT ON public.organizational_units TO anon")
    steps = planned(base_url, base)
    assert list(steps.values()) == [("replace", (Hazard.AUTHORIZATION,))], steps
    assert_refused_until_allowed(base_url, base, Hazard.AUTHORIZATION)
    assert rows(base_url, "SELECT has_table_privilege('anon', 'public.organizational_units', 'SELECT')") == [(False,)]


# ------------------------------------------------------------------------------------------ escalation races
# The SLA sweep (sla_check_and_escalate) and a manual escalation (escalate_assignment) of one
# assignment never write the same level: the sweep skips a row the manual escalation holds, and
# the manual escalation waits for a row the sweep holds, then escalates from the level the sweep
# reached. (So the sweep's ON CONFLICT guard never fires: see its template.)

T0 = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=3)))
DESK, IT_HEAD, IT_SUP = uid(2011), uid(2017), uid(2018)


def urgent_ticket(conn) -> str:
    """An urgent ticket (2 h, always-on calendar, the service-desk chain: 50% to the assignee,
    75% to the supervisor, ...) assigned at T0 to the only desk worker of IT Support."""
    at(conn, T0 - timedelta(hours=1))
    for staff_id, role, wip in ((DESK, "staff", 4), (IT_HEAD, "unit_head", 0), (IT_SUP, "supervisor", 0)):
        call(conn, "upsert_staff_profile", {"id": staff_id, "unit_id": "unit-it-support", "full_name": role,
                                            "role": role, "wip_limit": wip})
    at(conn, T0)
    return call(conn, "auto_assign", {"work_item_id": "tk-race", "work_item_type": "ticket",
                                      "priority": "urgent"})["assignment_id"]


def levels(conn, assignment_id) -> list[tuple]:
    return conn.execute("SELECT level, reason::text FROM escalation_events WHERE assignment_id = %s ORDER BY level",
                        [assignment_id]).fetchall()


def wait_until_waiting_for_a_lock(conn, pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() != ("Lock",):
        assert time.monotonic() < deadline, "the manual escalation never waited for the sweep"
        time.sleep(0.02)


def test_a_manual_escalation_waits_for_the_sweep_holding_the_row_then_takes_the_next_level(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as setup, psycopg.connect(engine_url) as sweep, \
            psycopg.connect(engine_url, autocommit=True) as manual, \
            psycopg.connect(engine_url, autocommit=True) as observer:
        aid = urgent_ticket(setup)
        for conn in (sweep, manual):
            at(conn, T0 + timedelta(minutes=60))                  # the 50% level is due
        assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (1,)   # level 1, not committed
        outcome = {}

        def escalate():
            try:
                outcome["result"] = call(manual, "escalate_assignment", {"assignment_id": aid, "reason": "urgent"})
            except psycopg.Error as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=escalate)
        thread.start()
        try:
            wait_until_waiting_for_a_lock(observer, manual.info.backend_pid)
            assert outcome == {}
        finally:
            sweep.commit()
            thread.join(10)
        assert "error" not in outcome, outcome
        assert outcome["result"]["level"] == 2
        assert levels(setup, aid) == [(1, "sla_warning"), (2, "manual")]
        assert setup.execute("SELECT escalation_level FROM assignments WHERE id = %s", [aid]).fetchone() == (2,)


def test_the_sweep_skips_a_row_a_manual_escalation_holds_and_carries_on_after_it(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as setup, psycopg.connect(engine_url) as manual, \
            psycopg.connect(engine_url, autocommit=True) as sweep:
        aid = urgent_ticket(setup)
        for conn in (sweep, manual):
            at(conn, T0 + timedelta(minutes=60))
        assert call(manual, "escalate_assignment", {"assignment_id": aid, "reason": "urgent"})["level"] == 1
        sweep.execute("SET lock_timeout = '2s'")                  # it must not wait for the held row
        try:
            assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (0,)
        finally:
            manual.commit()
        assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (0,)   # level 1 was taken by hand
        at(sweep, T0 + timedelta(minutes=90))
        assert sweep.execute("SELECT sla_check_and_escalate()").fetchone() == (1,)
        assert levels(setup, aid) == [(1, "manual"), (2, "sla_warning")]
