"""Where a simulation runs. Input: a server URL (any database on it; nothing is written to that
database), or nothing; and a policy. Output: a new database `rulesctl_sim_<label>_<random>` with
the policy installed by the real `rulesctl apply` code path and the replay driver (sql/replay.sql)
beside it.

By default the scratch databases live in a private throwaway cluster (`ScratchCluster`: a temp
directory, settings for data nobody keeps, removed whole at the end), so the replay neither
competes with a real server's work nor waits on it: on a server whose pg_cron 1.4 runs jobs, each
DROP DATABASE waits for the running job (~25 s). Given a server URL instead (`--scratch-url`, or
no PostgreSQL binaries here), they go on that server and are dropped one by one."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from engine.compiler.catalog import ACTIVE_STATUSES
from engine.compiler.objects import SqlObject
from engine.compiler.sqltext import literal_list
from engine.database.connect import connect
from engine.database.local import LocalCluster, find_pg_bindir
from engine.errors import DatabaseError, LocalClusterError
from engine.migrate.apply import apply
from engine.policy.model import Policy

PREFIX = "rulesctl_sim_"
CLUSTER_PREFIX = "rulesctl-sim-"
# Settings for data nobody keeps: no flushes to disk, no full-page images, no WAL beyond what
# crash recovery of a cluster we delete anyway would need, and no checkpoint while the replay runs
# (a month's replay writes a few GB of WAL; the checkpoint at the hour would otherwise write out
# every dirty buffer mid-run). Buffers sized for the scratch data (a month: ~1 GB for two policies,
# the hot part well under this).
THROWAWAY_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "1d",
    "max_wal_size": "'32GB'",
    "shared_buffers": "'256MB'",
}
NO_SERVER_BINARIES = ("no PostgreSQL server binaries on this machine for a private scratch cluster: the scratch "
                      "databases go on the server of --database-url (pass --scratch-url URL to choose the server)")


def replay_sql() -> str:
    """The driver, with the engine's active statuses quoted in."""
    text = resources.files("engine.simulate").joinpath("sql", "replay.sql").read_text()
    return text.replace("{active_statuses}", literal_list(ACTIVE_STATUSES))


class ScratchDatabase:
    """`with ScratchDatabase(server_url, "baseline") as scratch: scratch.install(policy, objects)`."""

    def __init__(self, server_url: str, label: str, keep: bool = False) -> None:
        self.server_url = server_url
        self.name = f"{PREFIX}{label}_{secrets.token_hex(4)}"
        self.keep = keep
        self.url = make_conninfo(server_url, dbname=self.name)

    def __enter__(self) -> ScratchDatabase:
        with connect(self.server_url, autocommit=True) as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
            except psycopg.Error as exc:
                raise DatabaseError(f"cannot create the scratch database {self.name}: {str(exc).strip()} "
                                    "(the role needs CREATEDB)") from None
        return self

    def install(self, policy: Policy, objects: list[SqlObject], rules_dir: Path) -> None:
        """The policy through `rulesctl apply` (plan, lock, ledger: the same path as production),
        then the replay driver."""
        apply(self.url, objects, policy, rules_dir=rules_dir)
        with connect(self.url, autocommit=True) as conn:
            conn.execute(replay_sql())

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.keep:
            return
        with connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


def private_cluster_possible() -> bool:
    """Whether this machine can start a ScratchCluster (PostgreSQL's server binaries are here)."""
    try:
        find_pg_bindir()
    except LocalClusterError:
        return False
    return True


@dataclass(frozen=True)
class KeptCluster:
    """A scratch cluster left running (--keep): where it is and how to stop it."""
    url: str                          # its maintenance database; the scratch databases sit beside it
    base_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"


class ScratchCluster:
    """`with ScratchCluster() as cluster: ScratchDatabase(cluster.url, ...)`: a private PostgreSQL
    cluster in a new temp directory, stopped and deleted on exit. Kept running when `keep` and the
    run ended normally; a run that failed or was interrupted removes it all the same (nothing
    would say where it is)."""

    base_dir: Path
    cluster: LocalCluster

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep

    @property
    def url(self) -> str:
        return self.cluster.url

    def kept(self) -> KeptCluster | None:
        return KeptCluster(self.url, self.base_dir) if self.keep else None

    def __enter__(self) -> ScratchCluster:
        self.base_dir = Path(tempfile.mkdtemp(prefix=CLUSTER_PREFIX))
        # No pg_cron: the replay runs the engine's jobs itself, in virtual time.
        self.cluster = LocalCluster(self.base_dir, dbname="postgres", settings=THROWAWAY_SETTINGS, pg_cron=False,
                                    durable=False)
        try:
            self.cluster.start()
        except LocalClusterError as exc:
            self.remove()
            raise LocalClusterError(f"cannot start a private cluster for the scratch databases: {exc}\n"
                                    "(--scratch-url URL puts them on a server instead)") from None
        except BaseException:           # Ctrl-C meanwhile
            self.remove()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if not self.keep or error is not None:
            self.remove()

    def remove(self) -> None:
        """Stop the server at once (its data is about to go) and delete the directory."""
        try:
            self.cluster.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
