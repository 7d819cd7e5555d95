"""Scratch databases for a simulation. Input: a server URL (any database on it; nothing is written
to that database) and a policy. Output: a new database `rulesctl_sim_<label>_<random>` on the same
server with the policy installed by the real `rulesctl apply` code path and the replay driver
(sql/replay.sql) beside it; dropped on exit unless kept."""

from __future__ import annotations

import secrets
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
from engine.errors import DatabaseError
from engine.migrate.apply import apply
from engine.policy.model import Policy

PREFIX = "rulesctl_sim_"


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
