"""The escalation and health endpoints over HTTP: `escalate_assignment` and `engine_health`.

A ticket follows the service-desk chain of rules/escalation.yaml (assignee, supervisor, unit
head, parent unit head). Health is degraded where pg_cron is absent (the test databases) and
healthy where pg_cron runs the jobs (the application database of a cluster of the test's own).
Only service_role reads the details; any other caller, and a request with no token at all (a
load balancer's probe), gets the bare status with the same HTTP status, database up or down.
"""

from __future__ import annotations

import pytest
from api_support import (  # noqa: F401 -- module fixtures these tests use
    add_staff,
    assert_error,
    bearer,
    installed,
    reset_runtime_data,
    running_server,
    server,
    token,
)
from engine_calls import uid

pytestmark = pytest.mark.db

V1 = "/functions/v1"
ESCALATE = f"{V1}/assignments/escalate"
HEALTH = f"{V1}/health/assignment-engine"

DESK_A, DESK_B = uid(101), uid(102)
IT_SUPERVISOR, IT_HEAD = uid(109), uid(110)
STRANGER = uid(4343)


@pytest.fixture
def api(installed, server):
    reset_runtime_data(installed)
    add_staff(installed, DESK_A, "unit-it-support", wip_limit=5)
    add_staff(installed, DESK_B, "unit-it-support", wip_limit=0)
    add_staff(installed, IT_SUPERVISOR, "unit-it-support", role="supervisor", wip_limit=0)
    add_staff(installed, IT_HEAD, "unit-it-support", role="unit_head", wip_limit=0)
    return server


def test_escalate_walks_the_chain_one_level_per_call(api):
    item = api.as_("service_role").post(f"{V1}/assignments/auto-assign", json={
        "work_item_id": "E-1", "work_item_type": "ticket", "priority": "normal"}).json()
    assert item["assignee_id"] == DESK_A
    body = {"assignment_id": item["assignment_id"], "reason": "the customer is waiting"}

    assert_error(api.as_("authenticated", DESK_B).post(ESCALATE, json=body), 403, error="forbidden")
    assert_error(api.as_("anon").post(ESCALATE, json=body), 403, error="forbidden")

    first = api.as_("authenticated", DESK_A).post(ESCALATE, json=body)
    assert first.status_code == 200, first.text
    assert (first.json()["level"], first.json()["recipient_id"], first.json()["reason"]) == (1, DESK_A, "manual")
    second = api.as_("authenticated", IT_SUPERVISOR).post(ESCALATE, json=body)
    assert (second.json()["level"], second.json()["recipient_id"]) == (2, IT_SUPERVISOR)
    third = api.as_("service_role").post(ESCALATE, json=body)
    assert (third.json()["level"], third.json()["recipient_id"]) == (3, IT_HEAD)
    assert api.as_("service_role").post(ESCALATE, json=body).json()["level"] == 4
    last = assert_error(api.as_("service_role").post(ESCALATE, json=body), 400, "assignment_id", "invalid_input")
    assert "last level" in last["message"]


def test_escalate_errors(api):
    client = api.as_("authenticated", IT_SUPERVISOR)
    assert_error(client.post(ESCALATE, json={"assignment_id": STRANGER, "reason": "x"}), 404, "assignment_id",
                 "not_found")
    assert_error(client.post(ESCALATE, json={"assignment_id": "E-1", "reason": "x"}), 400, "assignment_id")
    assert_error(client.post(ESCALATE, json={"assignment_id": STRANGER}), 400, "reason")
    assert_error(client.post(ESCALATE, json={"reason": "x"}), 400, "assignment_id")
    assert_error(client.post(ESCALATE, json=[1]), 400, "request")


def test_health_is_503_degraded_without_pg_cron(api):
    response = api.as_("service_role").get(HEALTH)
    assert response.status_code == 503, response.text
    health = response.json()
    assert health["status"] == "degraded"
    assert "pg_cron is not installed in this database: the scheduled jobs do not run" in health["reasons"]
    assert health["checks"]["database"]["ok"] is True
    assert health["version"]["policy_hash"]
    # everyone else, a load balancer with no token included, gets the bare status
    assert statuses_without_details(api) == (503, "degraded")
    assert_error(api.client.get(HEALTH, headers=bearer("anon", expires_in=-60)), 401, error="unauthorized")


def statuses_without_details(server) -> tuple[int, str]:
    """Health as every caller but service_role sees it, by the curl path and the function name
    alike: the same status code and `{status}` alone for all of them."""
    answers = set()
    for path in (HEALTH, f"{V1}/health-assignment-engine"):
        for headers in ({}, bearer("anon"), {"apikey": token("anon")}, bearer("authenticated", DESK_A),
                        bearer("authenticated")):
            response = server.client.get(path, headers=headers)
            assert list(response.json()) == ["status"], (path, headers, response.text)
            answers.add((response.status_code, response.json()["status"]))
    assert len(answers) == 1, answers
    return answers.pop()


def test_health_is_200_where_pg_cron_runs_the_jobs(shipped_objects):
    """A cluster of its own: pg_cron lives in the cluster's application database, and the shared
    one belongs to tests/test_jobs.py (which checks what the first install there reports)."""
    from cluster_support import make_traversable_tempdir

    from engine.database.local import LocalCluster
    from engine.migrate.apply import apply

    cluster = LocalCluster(make_traversable_tempdir("rulesctl-api-cron-"))
    try:
        url = cluster.start()
        if not cluster.status().pg_cron_available:
            pytest.skip("pg_cron is not installed on this machine")
        policy, objects = shipped_objects
        apply(url, objects, policy)                    # as conftest's engine_url installs it
        with running_server(url) as server:
            response = server.as_("service_role").get(HEALTH)
            assert statuses_without_details(server) == (200, "healthy")
    finally:
        cluster.destroy()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "healthy" and response.json()["reasons"] == []
    # every job of rules/jobs.yaml (sla-monitoring, event-relay, ...)
    assert {job["name"] for job in response.json()["checks"]["pg_cron_jobs"]} == {job.name for job in policy.jobs}


def test_health_says_degraded_when_the_database_is_unreachable(engine_url, pg_cluster):
    """The server keeps answering health in its own shape (503) when the database goes away."""
    import psycopg
    with running_server(engine_url, pool_timeout=0.5) as server:
        assert server.as_("service_role").get(HEALTH).status_code == 503   # (no pg_cron here) the pool is warm
        with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
            conn.execute("ALTER DATABASE " + engine_url.rsplit("/", 1)[1] + " ALLOW_CONNECTIONS false")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                         [engine_url.rsplit("/", 1)[1]])
        try:
            response = server.as_("service_role").get(HEALTH)
            assert response.status_code == 503, response.text
            assert response.json()["status"] == "degraded"
            assert response.json()["checks"]["database"]["ok"] is False
            assert statuses_without_details(server) == (503, "degraded")
            other = server.as_("service_role").get(f"{V1}/capacity/check", params={"unit_id": "unit-hr"})
            assert_error(other, 503, error="unavailable")
        finally:
            with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
                conn.execute("ALTER DATABASE " + engine_url.rsplit("/", 1)[1] + " ALLOW_CONNECTIONS true")
