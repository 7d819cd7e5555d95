"""Helpers the fixtures of conftest.py and some tests share: the repository root, a temp dir the
database server's OS user can traverse, dropping a test database. A module of its own, so tests
import it by name rather than from `conftest` (which names a different module in each folder
that has one)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from engine.database.local import LocalCluster

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_traversable_tempdir(prefix: str = "rulesctl-test-") -> Path:
    """A fresh temp dir the server's OS user can traverse (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def drop_database(cluster: LocalCluster, name: str) -> None:
    with psycopg.connect(cluster.url_for("postgres"), autocommit=True) as conn:
        # A logical replication slot (wal2json tests) pins its database: end its walsender
        # and drop the slot, or DROP DATABASE fails even WITH (FORCE).
        conn.execute(
            "SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots"
            " WHERE database = %s AND active_pid IS NOT NULL",
            (name,),
        )
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = %s",
            (name,),
        )
        # A pg_cron job still running anywhere (jobs left scheduled, or started from a stale job
        # list) holds up DROP DATABASE until it ends -- pg_cron 1.4's launcher does not answer the
        # drop's barrier meanwhile -- so end those connections first (seen in CI: a minute a drop).
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = 'pg_cron'"
                     " AND backend_type = 'client backend'")
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
