"""Shared fixtures: one throwaway PostgreSQL cluster per test session, a fresh database per test.

Fixtures: repo_root, pg_cluster (session), database_url (a new empty database, dropped after
the test), cron_database_url (the cluster's application database, where pg_cron lives),
traversable_tmp_path (a fresh 0755 temp dir the server's OS user can reach).

A test that needs PostgreSQL is marked `db` (a module's `pytestmark = pytest.mark.db`), so that
`pytest -m "not db"` runs the database-free tests in seconds and starts no cluster. The marking
is enforced: an unmarked test that asks for the cluster (pg_cluster or any fixture built on it)
or starts a LocalCluster of its own fails at setup.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cluster_support import REPO_ROOT, drop_database, make_traversable_tempdir
from psycopg import sql

from engine.database.local import LocalCluster

# Hypothesis profiles, for every module's property tests (a test's own @settings still wins for
# what it sets). "ci": the same examples on every run (derandomized, no example database), so a
# red CI run is a regression and not a new draw; chosen when CI is set. "explore": many more
# examples, new ones each run, for hunting locally (HYPOTHESIS_PROFILE=explore). Otherwise
# Hypothesis's defaults. HYPOTHESIS_PROFILE names a profile explicitly.
try:
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings
except ImportError:                 # the test extra is not installed: no property tests run anyway
    hypothesis_settings = None
if hypothesis_settings is not None:
    hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                                         suppress_health_check=[HealthCheck.too_slow])
    hypothesis_settings.register_profile("explore", max_examples=1000, deadline=None, print_blob=True,
                                         suppress_health_check=[HealthCheck.too_slow])
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                                     or ("ci" if os.environ.get("CI") else "default"))


@pytest.fixture
def traversable_tmp_path():
    path = make_traversable_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "pg_cluster" in getattr(item, "fixturenames", ()) and item.get_closest_marker("db") is None:
        pytest.fail(f"{item.nodeid} uses PostgreSQL (the pg_cluster fixture) but is not marked db: "
                    f"add @pytest.mark.db, or pytestmark = pytest.mark.db to its module", pytrace=False)


@pytest.fixture(autouse=True)
def _no_cluster_unless_marked_db(request, monkeypatch):
    """A test not marked db cannot start a PostgreSQL cluster of its own either."""
    if request.node.get_closest_marker("db") is None:
        def refuse(self, *args, **kwargs):
            raise AssertionError(f"{request.node.nodeid} starts a PostgreSQL cluster but is not marked db")
        monkeypatch.setattr(LocalCluster, "start", refuse)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = LocalCluster(make_traversable_tempdir())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def database_url(pg_cluster: LocalCluster):
    """URL of a brand-new empty database on the session cluster."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_cluster.url_for(name)
    finally:
        drop_database(pg_cluster, name)


@pytest.fixture
def cron_database_url(pg_cluster: LocalCluster) -> Iterator[str]:
    """URL of the cluster's application database: the one pg_cron schedules jobs in. The jobs a
    test schedules there are stopped after it: while a job runs (on pg_cron 1.4 the event relay
    is one call lasting most of every minute) the pg_cron launcher does not answer the
    ProcSignalBarrier of DROP DATABASE, so every later test's database drop waited up to a minute."""
    yield pg_cluster.url
    stop_cron_jobs(pg_cluster.url)


def stop_cron_jobs(url: str) -> None:
    """Unschedule every pg_cron job and end the job connections still running. Then touch
    cron.job once more a moment later (an UPDATE of no row fires pg_cron's cache-invalidation
    statement trigger): in one CI run pg_cron 1.4's launcher went on starting the removed jobs
    every minute after a test that scheduled and stopped them within two seconds, and every
    DROP DATABASE waited for them for 14 minutes."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('cron.job') IS NOT NULL").fetchone()[0]:
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")
            time.sleep(1.5)
            conn.execute("UPDATE cron.job SET active = active WHERE false")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_cron'"
                         " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


@pytest.fixture(scope="session")
def shipped_objects():
    """The shipped policy (rules/), validated and rendered once per session."""
    from engine.project import build

    return build(REPO_ROOT / "rules")


@pytest.fixture
def engine_url(database_url, shipped_objects):
    """A fresh database with the shipped policy installed by `rulesctl apply`."""
    from engine.migrate.apply import apply

    policy, objects = shipped_objects
    apply(database_url, objects, policy)
    return database_url


@pytest.fixture
def conn(engine_url):
    """An autocommit connection to a freshly installed engine: each call is its own transaction."""
    with psycopg.connect(engine_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def policies(tmp_path):
    """Policy folders under tmp_path: the base policy with some files replaced (policy_cases.Policies)."""
    from policy_cases import Policies

    return Policies(tmp_path)


@pytest.fixture
def base(policies):
    """(policy, objects) of the base policy (tests/policies/base), built from policies.rules("base")."""
    return policies.build("base")


@pytest.fixture
def base_url(database_url, base) -> str:
    """A fresh database with the base policy installed (ledger #1)."""
    from engine.migrate.apply import apply

    policy, objects = base
    assert apply(database_url, objects, policy).outcome == "applied"
    return database_url
