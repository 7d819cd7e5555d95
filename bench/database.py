"""The benchmark database: a local cluster under .rulesctl-bench/ (fresh database per run) or
the DATABASE_URL given; the shipped policy installed with `rulesctl apply`'s own code; the
bench schema's helpers; the server's settings reported with the figures."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from engine.database.local import LocalCluster, find_pg_bindir

DEFAULT_BASE_DIR = Path(".rulesctl-bench")
BENCH_DB = "bench"
HELPERS = Path(__file__).resolve().parent / "sql" / "helpers.sql"

# Server settings of the benchmark's own cluster (ALTER SYSTEM, kept in postgresql.auto.conf).
# Everything else stays at PostgreSQL's defaults plus engine/database/local.py's (jit off,
# max_connections 200, wal_level logical). synchronous_commit stays on: commits are durable.
LOCAL_SETTINGS = {
    "shared_buffers": "1GB",          # the 1M-assignment set and its indexes fit in memory
    "max_wal_size": "8GB",            # no forced checkpoints in the middle of bulk loads
    "checkpoint_timeout": "15min",
    "autovacuum_naptime": "1s",
}
# pg_stat_statements is preloaded too (defaults: 5000 statements, track = top; --profile
# switches the benchmark database to track = all, which sees inside the engine's functions).
REPORTED_SETTINGS = ("server_version", "shared_buffers", "synchronous_commit", "jit", "max_connections",
                     "work_mem", "wal_level", "fsync", "max_wal_size", "shared_preload_libraries")

# Tables holding runtime data (staff are data, not policy); truncated between datasets.
RUNTIME_TABLES = ("escalation_events", "assignment_audit", "assignment_queue", "assignments", "staff_skills",
                  "capacity_snapshots", "staff_profiles", "engine_events")


class BenchSetupError(Exception):
    pass


@dataclass
class Target:
    url: str
    local: LocalCluster | None
    description: str


def prepare_local(base_dir: Path, log=print) -> Target:
    """Start (or reuse) the benchmark cluster, make sure its settings are in force, and
    create a brand-new benchmark database."""
    cluster = LocalCluster(base_dir)
    cluster.start()
    if _configure(cluster.url_for("postgres"), _preload_libraries()):
        log("restarting the benchmark cluster to apply its settings")
        cluster.stop()
        cluster.start()
    with psycopg.connect(cluster.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    return Target(cluster.url_for(BENCH_DB), cluster, f"local cluster {cluster.base_dir}, fresh database {BENCH_DB!r}")


def prepare_url(url: str, wipe: bool) -> Target:
    """Use a database given by URL. Its runtime data is truncated between workloads, so it
    must be empty, or a database this benchmark made (it carries the bench schema), or --wipe."""
    with psycopg.connect(url, autocommit=True) as conn:
        marked = conn.execute("SELECT to_regclass('bench.marker') IS NOT NULL").fetchone()[0]
        busy = []
        for table in RUNTIME_TABLES:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()[0]
            if exists and conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                    sql.Identifier("public", table))).fetchone()[0]:
                busy.append(table)
    if busy and not marked and not wipe:
        raise BenchSetupError(
            f"the database at DATABASE_URL holds data ({', '.join(busy)}) and was not made by the benchmark; "
            "the benchmark truncates these tables: point it at an empty database, or pass --wipe")
    return Target(url, None, "DATABASE_URL")


def _preload_libraries() -> list[str]:
    done = subprocess.run([str(find_pg_bindir() / "pg_config"), "--pkglibdir"], capture_output=True, text=True)
    libdir = Path(done.stdout.strip() or "/nonexistent")
    return [name for name in ("pg_cron", "pg_stat_statements") if (libdir / f"{name}.so").exists()]


def _configure(admin_url: str, libraries: list[str]) -> bool:
    """ALTER SYSTEM the benchmark settings; True when a restart is needed for them."""
    settings = dict(LOCAL_SETTINGS)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_preload_libraries = {}").format(
            sql.SQL(", ").join(sql.Literal(name) for name in libraries) if libraries else sql.Literal("")))
        for name, value in settings.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")
        loaded = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        pending = conn.execute("SELECT count(*) FROM pg_settings WHERE pending_restart").fetchone()[0]
    wanted = set(libraries)
    have = {part.strip() for part in loaded.split(",") if part.strip()}
    return bool(pending) or wanted != have


def install(url: str, repo_root: Path, log=print) -> dict:
    """Install the shipped policy the way `rulesctl apply` does, then the bench helpers."""
    from engine.migrate.apply import apply
    from engine.project import build

    cwd = os.getcwd()
    os.chdir(repo_root)            # origins in the rendered SQL are relative to the project
    try:
        policy, objects = build(Path("rules"))
        result = apply(url, objects, policy)
    finally:
        os.chdir(cwd)
    log(f"installed the shipped policy: {result.outcome} ({sum(result.done.values())} steps, {result.seconds:.1f} s)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(HELPERS.read_text())
        if conn.execute("SELECT 'pg_stat_statements'"
                        " = ANY (string_to_array(current_setting('shared_preload_libraries'), ', '))"
                        " AND EXISTS (SELECT 1 FROM pg_available_extensions"
                        " WHERE name = 'pg_stat_statements')").fetchone()[0]:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return {"policy": policy, "objects": objects}


def server_conditions(conn: psycopg.Connection) -> dict:
    values = {}
    for name in REPORTED_SETTINGS:
        values[name] = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0]
    values["server_version"] = re.sub(r"\s.*", "", values["server_version"] or "")
    values["cpu_count"] = os.cpu_count()
    values["superuser"] = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    values["pg_stat_statements"] = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')").fetchone()[0]
    return values
