"""Over-long input is bad input, never an outage. A 20 KB work_item_id used to
reach a btree index, fail with SQLSTATE 54000 (a program limit) and come back as 503 "retry
later", so clients retried it forever. Now:

- the SQL API's field reader (api_text) refuses an id over ID_MAX_LENGTH and free text over
  TEXT_MAX_LENGTH with 22023 naming the field, before anything reaches an index; the OpenAPI
  document states the same limits (models.py), and the HTTP answer is 400 naming the field;
- no SQLSTATE of class 22 (data exception) or 54 (program limit exceeded) maps to a 503:
  every one PostgreSQL defines is raised for real and translated (a table, not a sample).
"""

from __future__ import annotations

import psycopg
import pytest
from api_support import (  # noqa: F401 -- module fixtures these tests use
    add_staff,
    assert_error,
    installed,
    reset_runtime_data,
    server,
)
from engine_calls import uid
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from engine.api import create_app, models
from engine.api.errors import from_database

pytestmark = pytest.mark.db

V1 = "/functions/v1"
HUGE = "x" * 20_000
ID_MAX, TEXT_MAX = models.ID_MAX_LENGTH, models.TEXT_MAX_LENGTH
DESK, SUPERVISOR = uid(901), uid(902)


@pytest.fixture
def api(installed, server):
    reset_runtime_data(installed)
    add_staff(installed, DESK, "unit-it-support", wip_limit=5)
    add_staff(installed, SUPERVISOR, "unit-it-support", role="supervisor", wip_limit=0)
    return server


def refused(response, field: str):
    body = assert_error(response, 400, field, "invalid_input")
    assert "Retry-After" not in response.headers
    return body


def test_a_20_kb_work_item_id_is_a_400_naming_the_field_not_a_503(api):
    response = api.as_("service_role").post(f"{V1}/assignments/auto-assign", json={
        "work_item_id": HUGE, "work_item_type": "ticket", "priority": "normal"})
    body = refused(response, "work_item_id")
    assert f"at most {ID_MAX} characters" in body["message"] and len(response.content) < 1000


@pytest.mark.parametrize("path, body, field", [
    ("/assignments/auto-assign", {"work_item_id": "L-1", "work_item_type": "ticket", "priority": "normal",
                                  "target_unit_id": HUGE}, "target_unit_id"),
    ("/assignments/auto-assign", {"work_item_id": "L-1", "work_item_type": HUGE, "priority": "normal"},
     "work_item_type"),
    ("/assignments/manual-override", {"work_item_id": HUGE, "assignee_id": DESK, "reason": "r"}, "work_item_id"),
    ("/assignments/manual-override", {"work_item_id": "L-1", "assignee_id": DESK, "reason": HUGE}, "reason"),
    ("/assignments/escalate", {"assignment_id": uid(1), "reason": HUGE}, "reason"),
    ("/assignments/escalate", {"assignment_id": HUGE, "reason": "r"}, "assignment_id"),
    ("/staff/availability", {"staff_id": DESK, "status": "busy", "reason": HUGE}, "reason"),
    ("/staff/availability", {"staff_id": DESK, "status": HUGE}, "status"),
])
def test_every_over_long_field_is_a_400_naming_it(api, path, body, field):
    refused(api.as_("service_role").post(V1 + path, json=body), field)


@pytest.mark.parametrize("path, params", [
    ("/capacity/check", {"unit_id": HUGE}),
    ("/assignments/queue", {"unit_id": HUGE}),
    ("/assignments/queue", {"priority": HUGE}),
])
def test_over_long_query_parameters_are_a_400_naming_them(api, path, params):
    refused(api.as_("service_role").get(V1 + path, params=params), next(iter(params)))


def test_the_sql_api_takes_exactly_the_documented_lengths(installed):
    def read(field: str, value: str):
        with psycopg.connect(installed, autocommit=True) as conn:
            return conn.execute("SELECT api_text(%s, %s)", [Jsonb({field: value}), field]).fetchone()[0]

    for field, limit in (("work_item_id", ID_MAX), ("unit_id", ID_MAX), ("reason", TEXT_MAX),
                         ("full_name", TEXT_MAX), ("email", TEXT_MAX)):
        assert read(field, "é" * limit) == "é" * limit          # characters, not bytes
        with pytest.raises(psycopg.Error) as error:
            read(field, "é" * (limit + 1))
        assert (error.value.sqlstate, error.value.diag.column_name) == ("22023", field)
    # straight into the SQL API, the 20 KB id is 22023 before it can reach an index (it was 54000)
    with psycopg.connect(installed, autocommit=True) as conn, pytest.raises(psycopg.Error) as error:
        conn.execute("SELECT auto_assign(%s)", [Jsonb({"work_item_id": HUGE, "work_item_type": "ticket",
                                                      "priority": "normal"})])
    assert (error.value.sqlstate, error.value.diag.column_name) == ("22023", "work_item_id")


def test_the_openapi_document_states_the_same_limits():
    document = create_app("postgresql://unused@127.0.0.1:1/unused", "x" * 32).openapi()
    body = document["paths"][f"{V1}/assignments/auto-assign"]["post"]["requestBody"]["content"]
    properties = body["application/json"]["schema"]["properties"]
    assert properties["work_item_id"]["maxLength"] == ID_MAX
    override = document["paths"][f"{V1}/assignments/manual-override"]["post"]["requestBody"]["content"]
    assert override["application/json"]["schema"]["properties"]["reason"]["maxLength"] == TEXT_MAX
    capacity = document["paths"][f"{V1}/capacity/check"]["get"]["parameters"]
    assert [p["schema"]["maxLength"] for p in capacity if p["name"] == "unit_id"] == [ID_MAX]


def sqlstates(*classes: str) -> list[str]:
    return sorted(code for code in pg_errors._sqlcodes if len(code) == 5 and code[:2] in classes)


# (SQLSTATE, HTTP status, error): what the client is told, so what it does next (retry or not)
MAPPED = [
    *[(code, 400, "invalid_input") for code in sqlstates("22", "54") if code != "22023"],
    ("22023", 400, "invalid_input"),
    ("42501", 403, "forbidden"),
    ("55000", 409, "conflict"),
    ("40001", 503, "busy"), ("40P01", 503, "busy"), ("57014", 503, "busy"), ("55P03", 503, "busy"),
    ("08006", 503, "unavailable"), ("53200", 503, "unavailable"), ("53300", 503, "unavailable"),
    ("57P01", 503, "unavailable"), ("57P03", 503, "unavailable"), ("58030", 503, "unavailable"),
    ("XX000", 500, "internal"), ("2F005", 500, "internal"), ("55006", 500, "internal"), ("P0001", 500, "internal"),
]


def test_the_program_limit_and_data_classes_exist():
    assert len(sqlstates("22")) > 40 and {"54000", "54001", "54011", "54023"} <= set(sqlstates("54"))


@pytest.mark.parametrize("sqlstate, status, error", MAPPED, ids=[row[0] for row in MAPPED])
def test_each_sqlstate_maps_to_what_the_client_should_do(installed, sqlstate, status, error):
    with psycopg.connect(installed, autocommit=True) as conn, pytest.raises(psycopg.Error) as raised:
        conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'raised for the test' USING ERRCODE = '{sqlstate}'; END $$")
    assert raised.value.sqlstate == sqlstate
    translated = from_database(raised.value)
    assert (translated.status, translated.error) == (status, error)
    assert (translated.status == 503) == ("Retry-After" in translated.headers)
