"""409 for a conflicting change: the optimistic-lock version a caller read no longer matches."""

from __future__ import annotations

import json

import psycopg
import pytest
from api_support import running_server
from engine_calls import uid
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

DESK_A, DESK_B, SUPERVISOR = uid(801), uid(802), uid(803)
OVERRIDE = "/functions/v1/assignments/manual-override"
AVAILABILITY = "/functions/v1/staff/availability"


@pytest.fixture
def api(engine_url):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        for staff_id, role in ((DESK_A, "staff"), (DESK_B, "staff"), (SUPERVISOR, "supervisor")):
            conn.execute("SELECT upsert_staff_profile(%s)", [Jsonb({"id": staff_id, "unit_id": "unit-hr",
                                                                    "full_name": staff_id[-3:], "role": role})])
    with running_server(engine_url) as server:
        yield server, engine_url


def test_override_with_a_stale_version_is_a_conflict(api):
    server, url = api
    with psycopg.connect(url, autocommit=True) as conn:
        item = conn.execute("SELECT auto_assign(%s)", [Jsonb({"work_item_id": "c-1", "work_item_type": "ticket",
                                                               "priority": "normal", "target_unit_id": "unit-hr"})]
                            ).fetchone()[0]
        version = conn.execute("SELECT version FROM assignments WHERE id = %s", (item["assignment_id"],)).fetchone()[0]
        conn.execute("UPDATE assignments SET status = 'in_progress' WHERE id = %s", (item["assignment_id"],))
    other = DESK_B if item["assignee_id"] == DESK_A else DESK_A
    supervisor = server.as_("authenticated", SUPERVISOR)
    request = {"assignment_id": item["assignment_id"], "assignee_id": other, "reason": "rebalance"}
    stale = supervisor.post(OVERRIDE, json={**request, "version": version})
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"] == "conflict" and stale.json()["field"] == "version"
    fresh = supervisor.post(OVERRIDE, json={**request, "version": version + 1})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["assignee_id"] == other


def test_availability_with_a_stale_version_is_a_conflict_and_changes_nothing(api):
    server, url = api
    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.execute("SELECT version FROM staff_profiles WHERE id = %s", (DESK_A,)).fetchone()[0]
        conn.execute("SELECT set_staff_availability(%s)", [Jsonb({"staff_id": DESK_A, "status": "busy"})])
    supervisor = server.as_("authenticated", SUPERVISOR)
    stale = supervisor.post(AVAILABILITY, json={"staff_id": DESK_A, "status": "on_leave", "version": version})
    assert stale.status_code == 409 and stale.json()["field"] == "version"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT availability_status::text FROM staff_profiles WHERE id = %s",
                            (DESK_A,)).fetchone() == ("busy",)
    bad = supervisor.post(AVAILABILITY, json={"staff_id": DESK_A, "status": "on_leave", "version": "one"})
    assert bad.status_code == 400 and bad.json()["field"] == "version"


def test_the_sql_api_raises_55000_for_a_stale_version_and_changes_nothing(api):
    """The SQL API itself (as PostgREST would call it, as the unit's supervisor), not only its
    HTTP translation: a stale `version` is SQLSTATE 55000 naming the field, and nothing moves."""
    _, url = api
    with psycopg.connect(url, autocommit=True) as conn:
        item = conn.execute("SELECT auto_assign(%s)", [Jsonb({"work_item_id": "c-2", "work_item_type": "ticket",
                                                               "priority": "normal", "target_unit_id": "unit-hr"})]
                            ).fetchone()[0]
        version = conn.execute("SELECT version FROM assignments WHERE id = %s", (item["assignment_id"],)).fetchone()[0]
        other = DESK_B if item["assignee_id"] == DESK_A else DESK_A
        request = {"assignment_id": item["assignment_id"], "assignee_id": other, "reason": "rebalance"}
        for stale in (version - 1, version + 1):
            with pytest.raises(psycopg.Error) as error, conn.transaction():
                conn.execute("SET LOCAL ROLE authenticated")
                conn.execute("SELECT set_config('request.jwt.claims', %s, true)",
                             [json.dumps({"role": "authenticated", "sub": SUPERVISOR})])
                conn.execute("SELECT manual_override(%s)", [Jsonb({**request, "version": stale})])
            assert error.value.sqlstate == "55000", error.value
            assert error.value.diag.message_primary.startswith("version")
        row = conn.execute("SELECT assignee_id::text, version FROM assignments WHERE id = %s",
                           (item["assignment_id"],)).fetchone()
        assert row == (item["assignee_id"], version)
