"""Where the scratch databases live: by default a private throwaway cluster in a temp directory,
removed at the end (also when the run is interrupted) and kept only when asked; --scratch-url
or a machine without server binaries puts them on a given server instead. The server of
--database-url never gets a database."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from simulate_support import REPO_RULES, assert_sound

from engine.cli import cli
from engine.database.local import LocalCluster
from engine.errors import LocalClusterError
from engine.simulate import scratch
from engine.simulate.run import PolicyUnderTest, WorkloadSpec, simulate

pytestmark = pytest.mark.db

TINY = WorkloadSpec(days=1, per_day=100)
TINY_ARGS = ["simulate", "--rules", str(REPO_RULES), "--synthetic", "--days", "1", "--per-day", "100"]


@pytest.fixture
def temp_root(traversable_tmp_path, monkeypatch) -> Path:
    """The temp directory every tempfile call uses during the test, so what is left is ours."""
    monkeypatch.setattr(tempfile, "tempdir", str(traversable_tmp_path))
    return traversable_tmp_path


def databases(server_url: str) -> set[str]:
    with psycopg.connect(server_url) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


def servers_under(path: Path) -> list[int]:
    """Pids of processes whose command line names a path under `path` (a postmaster's -D)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue                    # ended meanwhile
    return found


def test_the_default_run_replays_in_a_private_cluster_and_leaves_nothing(temp_root, server_url, shipped):
    before = databases(server_url)
    seen: list[tuple[list[str], list[int], set[str]]] = []

    def look(label, day, days, filed):
        seen.append((sorted(p.name for p in temp_root.iterdir()), servers_under(temp_root), databases(server_url)))

    result = simulate(None, [shipped], TINY, seed=3, progress=look)

    assert_sound(result)
    assert result.summary["policies"]["baseline"]["items"] > 50
    (during, pids, elsewhere), = seen
    assert len(during) == 1 and during[0].startswith(scratch.CLUSTER_PREFIX)    # the replay ran in a cluster of its own
    assert pids                                                                 # ... whose server was running
    assert elsewhere == before                                                  # nothing on the other server
    assert list(temp_root.iterdir()) == []
    assert servers_under(temp_root) == []
    assert result.cluster is None and result.databases == {}


def test_the_command_by_default_writes_nothing_to_the_database_url_server(temp_root, database_url, pg_cluster):
    before = databases(pg_cluster.url)
    run = CliRunner().invoke(cli, [*TINY_ARGS, "--format", "json", "--database-url", database_url])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["policies"]["proposed"]["items"] > 50
    assert databases(pg_cluster.url) == before
    assert list(temp_root.iterdir()) == []
    assert servers_under(temp_root) == []


def test_keep_leaves_a_cluster_to_query_and_says_how_to_stop_it(temp_root):
    run = CliRunner().invoke(cli, [*TINY_ARGS, "--format", "json", "--keep"])
    assert run.exit_code == 0, run.output
    (base,) = temp_root.iterdir()
    try:
        kept = re.search(r"kept the scratch cluster: (\S+) \(data directory (\S+)\); "
                         r"stop it with `rulesctl local stop --dir (\S+)`, then delete that directory", run.stderr)
        assert kept, run.stderr
        assert (kept[2], kept[3]) == (str(base / "data"), str(base))
        database = re.search(r"kept the proposed scratch database: (\S+)", run.stderr)
        assert database and database[1].startswith(kept[1].removesuffix("/postgres"))
        with psycopg.connect(database[1]) as conn:
            assert conn.execute("SELECT count(*) FROM assignments").fetchone()[0] > 50
            assert conn.execute("SHOW fsync").fetchone()[0] == "off"
        stop = CliRunner().invoke(cli, ["local", "stop", "--dir", kept[3]])
        assert stop.exit_code == 0, stop.output
        assert servers_under(base) == []
    finally:
        LocalCluster(base).destroy()


def test_an_interrupted_run_still_removes_the_cluster(temp_root, shipped):
    other = PolicyUnderTest("proposed", shipped.rules_dir, shipped.policy, shipped.objects)

    def interrupt(label, day, days, filed):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(None, [shipped, other], WorkloadSpec(days=2, per_day=100), seed=3, progress=interrupt, keep=True)
    assert list(temp_root.iterdir()) == []
    assert servers_under(temp_root) == []


def test_scratch_url_puts_the_databases_on_that_server(temp_root, server_url):
    run = CliRunner().invoke(cli, [*TINY_ARGS, "--format", "json", "--keep", "--scratch-url", server_url])
    assert run.exit_code == 0, run.output
    created = {name for name in databases(server_url) if name.startswith(scratch.PREFIX + "proposed_")}
    try:
        assert len(created) == 1
        assert "kept the scratch cluster" not in run.stderr
        assert list(temp_root.iterdir()) == []
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            for name in created:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_without_server_binaries_the_database_url_server_takes_them_with_a_note(temp_root, server_url, monkeypatch):
    def missing():
        raise LocalClusterError("PostgreSQL server binaries not found")

    monkeypatch.setattr(scratch, "find_pg_bindir", missing)
    before = databases(server_url)
    run = CliRunner().invoke(cli, [*TINY_ARGS, "--format", "json", "--database-url", server_url])
    assert run.exit_code == 0, run.output
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("note: no PostgreSQL server binaries on this machine for a private scratch cluster: "
                                 "the scratch databases go on the server of --database-url")
    assert json.loads(run.stdout)["policies"]["proposed"]["items"] > 50
    assert databases(server_url) == before                  # dropped at the end
    assert list(temp_root.iterdir()) == []


def test_a_cluster_that_cannot_start_says_so_names_the_option_and_leaves_nothing(temp_root, shipped, monkeypatch):
    def broken(self):
        (self.data_dir / "PG_VERSION").parent.mkdir(parents=True)       # half-made, as a failed initdb leaves it
        raise LocalClusterError("initdb failed (exit 1): could not create directory")

    monkeypatch.setattr(LocalCluster, "start", broken)
    with pytest.raises(LocalClusterError, match=r"(?s)cannot start a private cluster for the scratch databases: "
                                                r"initdb failed.*--scratch-url URL puts them on a server instead"):
        simulate(None, [shipped], TINY, seed=3)
    assert list(temp_root.iterdir()) == []
