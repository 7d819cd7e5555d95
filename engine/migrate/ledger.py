"""The ledger (rulesctl.applies): every apply attempt and its outcome. Writing: `LedgerWriter`,
used by apply.py on the apply's own connection. Reading: `read_history` and `read_apply` for
`history` and `show`. Input: a connection or a database URL. Output: ledger rows (as dicts).

An apply that runs steps commits a 'started' row (with its backend's pid) before its first
step and turns it into 'applied' (in the transaction that applies) or 'failed'. A process
killed mid-way (kill -9, a lost server) leaves its row 'started'; once that backend is gone,
the next apply marks it 'interrupted', and history shows it so at once.

Each row names the git commit the rules directory is checked out at and whether that directory
had uncommitted changes (`git_dirty`; NULL when it is not in a git checkout), so a commit in the
ledger is only trusted as the applied policy when git_dirty is false.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg.rows import dict_row, tuple_row

from engine import __version__
from engine.database.connect import connect
from engine.errors import DatabaseError
from engine.migrate.fetch import fetch_value

if TYPE_CHECKING:
    from engine.migrate.plan import Plan

# A 'started' row whose backend is no longer running (pid reuse by this very session aside).
_GONE = ("outcome = 'started' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
         "WHERE a.pid = rulesctl.applies.backend_pid AND a.pid <> pg_backend_pid())")
INTERRUPTED = ("interrupted: the apply's session ended before it finished (process killed or connection lost); "
               "PostgreSQL rolled back its open transaction")
ENUMS_KEPT = (" The enum values of its first segment were committed before it and stay (harmless: unused until a "
              "policy uses them).")


# Who owns schema rulesctl and what this role may do there. By catalog joins: naming a table in
# a schema without USAGE (even to_regclass) raises "permission denied for schema".
_ACCESS = """
SELECT n.nspowner::regrole::text, quote_ident(current_user), has_schema_privilege(n.oid, 'USAGE'),
       has_schema_privilege(n.oid, 'CREATE'), coalesce(bool_and(has_table_privilege(c.oid, 'SELECT')), true),
       coalesce(bool_and(has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE')), true)
FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r'
WHERE n.nspname = 'rulesctl' GROUP BY n.oid, n.nspowner"""


class LedgerClosed(DatabaseError):
    """Schema rulesctl (the ledger and the record of what rulesctl installed) is another role's,
    and this role may not read it, or not write it to apply."""


def require_ledger_access(conn: psycopg.Connection[Any], write: bool = False) -> None:
    """Stop with whose the ledger is and what to do when this role may not read it (or, to apply,
    write it): every command would otherwise fail on its first read of it with a bare
    "permission denied for schema rulesctl" (e.g. a superuser installed, then the owner plans).
    Nothing to check before any apply has made the schema."""
    row = conn.cursor(row_factory=tuple_row).execute(_ACCESS).fetchone()
    if row is None:
        return
    owner, user, usage, create, readable, writable = row
    if usage and readable and (not write or (create and writable)):
        return
    if not write:
        raise LedgerClosed(
            f"schema rulesctl (the ledger of applies and the record of what rulesctl installed) belongs to role "
            f"{owner}, which installed the engine here, and {user} may not read it. Run rulesctl as {owner}, or "
            f"have {owner} let {user} read it: GRANT USAGE ON SCHEMA rulesctl TO {user}; "
            f"GRANT SELECT ON ALL TABLES IN SCHEMA rulesctl TO {user};")
    raise LedgerClosed(
        f"schema rulesctl (the ledger of applies) belongs to role {owner}, which installed the engine here, and "
        f"{user} may not record an apply in it. Apply as {owner}: the engine's tables and functions here are that "
        f"role's too, and only their owner may change them. Nothing was changed.")


def git_dirty(rules_dir: Path) -> bool | None:
    """Whether the rules directory has uncommitted changes (modified, staged, deleted or untracked
    files under it) in the git checkout holding it; None when it is not in one (or git is missing)."""
    if not rules_dir.is_dir():
        return None
    try:
        out = subprocess.run(["git", "-C", str(rules_dir), "status", "--porcelain", "--", "."],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


class LedgerWriter:
    def __init__(self, conn: psycopg.Connection[Any], url: str, started: dt.datetime, policy_hash: str,
                 commit: str | None, dirty: bool | None = None) -> None:
        self.conn, self.url, self.started, self.policy_hash, self.commit = conn, url, started, policy_hash, commit
        self.dirty = dirty
        self.started_id: int | None = None

    def _values(self, plan: Plan) -> tuple[Any, ...]:
        from engine.migrate.plan import fingerprint_of
        statements = [{"step": str(step.key), "action": step.action.value, "segment": step.segment, "sql": step.sql}
                      for step in plan.steps]
        return (self.started, self.policy_hash, fingerprint_of(plan.desired_hashes), __version__, self.commit,
                self.dirty, getpass.getuser(), socket.gethostname(), len(statements), json.dumps(statements))

    def write(self, outcome: str, plan: Plan, message: str) -> int:
        """A finished attempt in one row (refused, no_change)."""
        return int(fetch_value(
            self.conn, """INSERT INTO rulesctl.applies (started_at, policy_hash, desired_hash, tool_version, git_commit,
                                             git_dirty, applied_by, os_user, client_host, statement_count, statements,
                                             outcome, message)
               VALUES (%s, %s, %s, %s, %s, %s, current_user, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (*self._values(plan), outcome, message)))

    def start(self, plan: Plan) -> int:
        """The 'started' row, committed before the first step runs (the connection is in autocommit)."""
        self.started_id = started = int(fetch_value(
            self.conn, """INSERT INTO rulesctl.applies (started_at, policy_hash, desired_hash, tool_version, git_commit,
                                             git_dirty, applied_by, os_user, client_host, statement_count, statements,
                                             outcome, finished_at, backend_pid, message)
               VALUES (%s, %s, %s, %s, %s, %s, current_user, %s, %s, %s, %s, 'started', NULL, pg_backend_pid(),
                       'started: running its steps') RETURNING id""",
            self._values(plan)))
        return started

    def finish(self, outcome: str, message: str, conn: psycopg.Connection | None = None) -> None:
        """The started row's outcome: in the caller's transaction for 'applied' (so it commits with
        the changes), on its own for 'failed'."""
        (conn or self.conn).execute("UPDATE rulesctl.applies SET outcome = %s, message = %s, "
                                    "finished_at = clock_timestamp() WHERE id = %s",
                                    (outcome, message, self.started_id))

    def finish_elsewhere(self, outcome: str, message: str) -> bool:
        """The outcome through a new connection, when the apply's own is gone. False if that fails too."""
        try:
            with connect(self.url, autocommit=True) as other:
                self.finish(outcome, message, other)
            return True
        except Exception:                   # the server itself is gone: the next apply marks it interrupted
            return False

    def mark_interrupted(self) -> list[int]:
        """Mark 'started' rows whose backend is gone as 'interrupted' (called under the apply lock)."""
        rows = self.conn.execute(
            f"""UPDATE rulesctl.applies SET outcome = 'interrupted', finished_at = clock_timestamp(),
                      message = %s || CASE WHEN statements @> '[{{"segment": 0}}]' THEN %s ELSE '' END
                WHERE {_GONE} RETURNING id""", (INTERRUPTED, ENUMS_KEPT)).fetchall()
        return sorted(row[0] for row in rows)


def _outcome(conn: psycopg.Connection[Any]) -> str | None:
    """The outcome column as history shows it: a 'started' row whose backend is gone reads
    'interrupted' (the next apply records it so). None when there is no ledger."""
    columns = {row["attname"] for row in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('rulesctl.applies') AND attnum > 0")}
    if not columns:
        return None
    return f"CASE WHEN {_GONE} THEN 'interrupted' ELSE outcome END" if "backend_pid" in columns else "outcome"


def read_history(url: str, limit: int) -> list[dict[str, Any]]:
    with connect(url, row_factory=dict_row) as conn:
        require_ledger_access(conn)
        if (outcome := _outcome(conn)) is None:
            return []
        return cast(list[dict[str, Any]], conn.execute(
            f"SELECT id, coalesce(finished_at, started_at) AS finished_at, {outcome} AS outcome, "
            f"statement_count, policy_hash, git_commit, {_git_dirty(conn)} AS git_dirty, applied_by, os_user, "
            "coalesce(message, '') AS message FROM rulesctl.applies ORDER BY id DESC LIMIT %s", (limit,)).fetchall())


def read_apply(url: str, apply_id: int) -> dict[str, Any] | None:
    with connect(url, row_factory=dict_row) as conn:
        require_ledger_access(conn)
        if (outcome := _outcome(conn)) is None:
            return None
        row = cast(dict[str, Any] | None, conn.execute(
            f"SELECT *, coalesce(finished_at, started_at) AS shown_at, {outcome} AS shown_outcome "
            "FROM rulesctl.applies WHERE id = %s", (apply_id,)).fetchone())
        if row is not None:
            row["finished_at"], row["outcome"] = row.pop("shown_at"), row.pop("shown_outcome")
            row.setdefault("git_dirty", None)               # a ledger no apply has brought up to date yet
        return row


def _git_dirty(conn: psycopg.Connection[Any]) -> str:
    """The git_dirty column, or NULL in a ledger made before it (history never alters the table)."""
    found = conn.execute("SELECT 1 AS found FROM pg_attribute WHERE attrelid = 'rulesctl.applies'::regclass "
                         "AND attname = 'git_dirty' AND NOT attisdropped").fetchone()
    return "git_dirty" if found else "NULL::boolean"


def describe_git(commit: str | None, dirty: bool | None, width: int = 12) -> str:
    """How history and show name the policy's source: `git 1a2b3c4d5e6f`, with `+dirty` when the
    rules directory had uncommitted changes (the commit is then not what was applied); `git -`
    outside a git checkout (and in rows from before git_dirty was recorded, with no commit)."""
    if commit is None and dirty is None:
        return "git -"
    return f"git {(commit or 'no-commit')[:width]}" + ("+dirty" if dirty else "")
