"""engine/api/calls.py and errors.py against a real PostgreSQL: serialization failures and deadlocks
are retried and never reach the caller; the role and claims of one request do not leak into the
next on the same pooled connection; an unexpected error becomes a 500 naming only a request id,
with the traceback in the log. Test-only functions are created in the test's own database."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest
from engine_calls import uid

from engine.api.auth import Caller
from engine.api.calls import Database
from engine.api.errors import ApiError

pytestmark = pytest.mark.db

SETUP = """
CREATE SEQUENCE api_test_attempts;
CREATE FUNCTION api_test_flaky(p_failures integer, p_sqlstate text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint := nextval('api_test_attempts');          -- a sequence: not rolled back with the failure
BEGIN
  IF v <= p_failures THEN
    RAISE EXCEPTION 'transient failure %', v USING ERRCODE = p_sqlstate;
  END IF;
  RETURN v;
END $$;
CREATE FUNCTION api_test_boom() RETURNS void LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'an engine bug, with internals'; END $$;
GRANT USAGE, UPDATE ON SEQUENCE api_test_attempts TO service_role;
"""


def run(coroutine_function):
    return asyncio.run(coroutine_function())


def test_retries_leaks_and_internal_errors(engine_url, caplog):
    with psycopg.connect(engine_url, autocommit=True) as conn:
        conn.execute(SETUP)
    service = Caller("service_role", {"role": "service_role"})
    person = Caller("authenticated", {"role": "authenticated", "sub": uid(7)})

    async def scenario():
        database = Database(engine_url, min_size=1, max_size=1)      # one connection: every call reuses it
        await database.open()
        try:
            results = {}
            # two serialization failures, then success: retried inside, the caller sees only the result
            results["serialization"] = await database.one(service, "SELECT api_test_flaky(2, '40001')")
            await database.one(service, "SELECT setval('api_test_attempts', 1, false)")
            results["deadlock"] = await database.one(service, "SELECT api_test_flaky(1, '40P01')")
            await database.one(service, "SELECT setval('api_test_attempts', 1, false)")
            with pytest.raises(ApiError) as busy:
                await database.one(service, "SELECT api_test_flaky(1000, '40001')")
            results["busy"] = busy.value
            # role and claims are the request's own, and gone afterwards on the same connection
            results["as person"] = await database.one(
                person, "SELECT jsonb_build_array(current_user, current_user_id())")
            async with database.pool.connection() as conn:
                cursor = await conn.execute("SELECT current_user, current_setting('request.jwt.claims', true)")
                results["after"] = await cursor.fetchone()
            with pytest.raises(ApiError) as boom:
                await database.one(service, "SELECT api_test_boom()")
            results["boom"] = boom.value
            return results
        finally:
            await database.close()

    with caplog.at_level(logging.ERROR, logger="rulesctl.api"):
        results = run(scenario)

    assert results["serialization"] == 3 and results["deadlock"] == 2
    assert (results["busy"].status, results["busy"].error) == (503, "busy")
    assert results["as person"] == ["authenticated", uid(7)]
    assert results["after"]["current_user"] == "postgres"
    assert results["after"]["current_setting"] in (None, "")
    boom = results["boom"]
    assert (boom.status, boom.error) == (500, "internal")
    assert "internals" not in boom.message and "request id" in boom.message
    request_id = boom.message.rsplit(" ", 1)[1]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None          # the traceback is in the log, not the answer


def test_the_pool_replaces_dead_connections_and_says_busy_only_when_every_connection_is_in_use(engine_url):
    service = Caller("service_role", {"role": "service_role"})

    async def scenario():
        database = Database(engine_url, min_size=2, max_size=2, timeout=0.3)
        await database.open()
        try:
            results = {"opened": database.pool.stats()}
            # both pooled connections killed while idle (what a database restart leaves behind)
            with psycopg.connect(engine_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE application_name = 'rulesctl-api' AND datname = current_database()")
            results["after kill"] = await database.one(service, "SELECT 1")
            # both connections busy for longer than the wait: the third request is told "busy"
            sleepers = [asyncio.create_task(database.one(service, "SELECT pg_sleep(1)")) for _ in range(2)]
            await asyncio.sleep(0.1)
            started = asyncio.get_running_loop().time()
            with pytest.raises(ApiError) as busy:
                await database.one(service, "SELECT 1")
            results["busy"] = (busy.value.status, busy.value.error, asyncio.get_running_loop().time() - started)
            await asyncio.gather(*sleepers)
            # a request cancelled while it waits or runs gives its connection back
            waiting = asyncio.create_task(database.one(service, "SELECT pg_sleep(5)"))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            results["after cancel"] = [await database.one(service, "SELECT 2") for _ in range(3)]
            results["size"] = database.pool.stats()["size"]
            return results
        finally:
            await database.close()

    results = run(scenario)
    assert results["opened"] == {"size": 2, "idle": 2}
    assert results["after kill"] == 1
    status, error, waited = results["busy"]
    assert (status, error) == (503, "busy") and 0.25 < waited < 1.0
    assert results["after cancel"] == [2, 2, 2] and results["size"] <= 2
