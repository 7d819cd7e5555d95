"""The embedded local cluster: lifecycle, settings, errors, and which OS user runs it."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from engine.database.local import LocalCluster
from engine.errors import LocalClusterError

pytestmark = pytest.mark.db

SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture
def cluster(traversable_tmp_path: Path):
    """A cluster of its own: these tests stop and break it, which the shared one must not see."""
    cluster = LocalCluster(traversable_tmp_path)
    yield cluster
    cluster.destroy()


def query(url: str, statement: str):
    """First column of the first row, or None for a statement that returns no rows."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchone()[0] if cursor.description else None


def process_uid(pid: int) -> int:
    """Real uid of a process, from /proc (independent of anything the server reports)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def test_start_status_stop_restart(cluster: LocalCluster):
    before = cluster.status()
    assert (before.running, before.url, before.port, before.pid) == (False, None, None, None)
    assert before.pg_cron_available, "scripts/install-system-packages.sh installs pg_cron"
    assert before.server_version.startswith("15.")
    with pytest.raises(LocalClusterError, match="start it first"):
        _ = cluster.url

    url = cluster.start()
    status = cluster.status()
    assert re.fullmatch(r"postgresql://postgres@127\.0\.0\.1:\d+/rulesctl", url)
    assert status.running and status.url == url == cluster.url
    assert url.endswith(f":{status.port}/rulesctl")
    assert query(url, "select 1") == 1
    assert query(url, "show listen_addresses") == "127.0.0.1"
    assert query(url, "show wal_level") == "logical"
    assert query(url, "show jit") == "off"
    assert query(url, "show max_connections") == "200"
    assert query(url, "show shared_preload_libraries") == "pg_cron"
    assert query(url, "show cron.database_name") == "rulesctl"
    assert query(url, "show fsync") == "on"
    query(url, "create extension pg_cron")
    assert query(url, "select extversion from pg_extension where extname = 'pg_cron'")
    assert stat.S_IMODE(status.data_dir.stat().st_mode) == 0o700

    assert cluster.start() == url, "a second start is a no-op"
    assert cluster.status().pid == status.pid
    query(url, "create table kept (x int)")

    cluster.stop()
    stopped = cluster.status()
    assert not stopped.running and stopped.pid is None
    assert stopped.port == status.port and stopped.url == url
    with pytest.raises(psycopg.OperationalError):
        query(url, "select 1")
    cluster.stop()  # stopping a stopped cluster is fine

    assert cluster.start() == url, "restart keeps the port chosen at init"
    restarted = cluster.status()
    assert restarted.running and restarted.pid != status.pid
    assert query(url, "select count(*) from kept") == 0

    cluster.destroy()
    assert not cluster.base_dir.exists()


def test_port_taken_by_another_program_is_reported(cluster: LocalCluster):
    cluster.start()
    port = cluster.status().port
    cluster.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(LocalClusterError, match=f"port {port} on 127.0.0.1 is in use"):
            cluster.start()
    assert cluster.start() == cluster.url


def test_start_failure_shows_the_server_log(cluster: LocalCluster):
    cluster.start()
    cluster.stop()
    with open(cluster.data_dir / "postgresql.conf", "a") as conf:
        conf.write("shared_buffers = 'plenty'\n")
    with pytest.raises(LocalClusterError) as failure:
        cluster.start()
    message = str(failure.value)
    assert message.startswith("could not start the local PostgreSQL server")
    assert f"last lines of {cluster.log_file}" in message
    assert 'invalid value for parameter "shared_buffers": "plenty"' in message


def test_server_runs_as_an_unprivileged_user(pg_cluster: LocalCluster):
    uid = process_uid(pg_cluster.status().pid)
    owner = pg_cluster.data_dir.stat().st_uid
    if os.geteuid() == 0:
        assert uid != 0, "PostgreSQL must not run as root"
        assert pwd.getpwuid(uid).pw_name in ("postgres", "rulesctl")
    else:
        assert uid == os.getuid()
    assert owner == uid


def test_database_url_is_a_fresh_database(database_url: str, cron_database_url: str):
    name = query(database_url, "select current_database()")
    assert name.startswith("test_") and database_url.endswith(f"/{name}")
    assert query(database_url, "select count(*) from pg_tables where schemaname = 'public'") == 0
    assert query(cron_database_url, "select current_database()") == "rulesctl"
    # A replication slot left behind (as a wal2json test might) must not break the teardown.
    query(database_url, f"select pg_create_logical_replication_slot('{name}', 'wal2json')")


# Runs engine.local in a separate interpreter, as whoever invokes it.
SNIPPET = """
import json, sys
from pathlib import Path
from engine.database.local import LocalCluster
action, base_dir = sys.argv[1:]
cluster = LocalCluster(Path(base_dir))
if action == "start":
    cluster.start()
elif action == "stop":
    cluster.stop()
else:
    cluster.destroy()
    sys.exit(0)
status = cluster.status()
print(json.dumps({"running": status.running, "url": status.url, "pid": status.pid}))
"""


def test_works_when_started_by_a_normal_user(repo_root: Path, traversable_tmp_path: Path):
    """As root, start it as the `postgres` user with Debian's python; else as ourselves."""
    base_dir = traversable_tmp_path
    if os.geteuid() == 0:
        # /root is 0700, so that user cannot run our interpreter: use the system python,
        # which needs only the standard library to import engine.local.
        assert SYSTEM_PYTHON.exists(), "install python3 (scripts/install-system-packages.sh)"
        user = pwd.getpwnam("postgres")
        shutil.chown(base_dir, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--", "env", f"PYTHONPATH={repo_root}",
                  "PYTHONDONTWRITEBYTECODE=1", str(SYSTEM_PYTHON)]
        expected_uid = user.pw_uid
    else:
        prefix = ["env", f"PYTHONPATH={repo_root}", sys.executable]
        expected_uid = os.getuid()

    def run(action: str) -> dict:
        done = subprocess.run([*prefix, "-c", SNIPPET, action, str(base_dir)],
                              capture_output=True, text=True, cwd=base_dir, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    try:
        started = run("start")
        assert started["running"]
        assert process_uid(started["pid"]) == expected_uid
        assert query(started["url"], "select current_user") == "postgres"
        assert run("start") == started, "idempotent for that user too"
        assert run("stop")["running"] is False
    finally:
        run("destroy")
    assert not base_dir.exists()
