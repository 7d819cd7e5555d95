"""Install the rendered policy. Input: a database URL, objects in install order, the policy.
Output: an `ApplyResult`, and one ledger row in rulesctl.applies whatever happened.

Everything runs in one transaction under an advisory lock, so two applies never interleave
and a failure leaves the database as it was. This stage installs onto an empty database and
recognises a database already in sync; a database holding a different version of the managed
objects needs a plan (diff), and apply says so plainly instead of guessing.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psycopg

from . import __version__
from .db import connect, query_text
from .errors import ApplyRefused, DatabaseError
from .model import Policy
from .objects import SqlObject

# pg_advisory_lock key: the first 8 bytes of sha256("rulesctl apply"), fixed forever.
APPLY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"rulesctl apply").digest()[:8], "big", signed=True)


_PLURAL = {"function": "functions", "enum": "enums", "table": "tables", "index": "indexes", "trigger": "triggers",
           "seed": "seed rows", "schema": "schemas", "view": "views", "role": "roles", "rls": "tables with RLS",
           "policy": "RLS policies", "grant": "grants", "extension": "extensions", "cron_job": "cron jobs",
           "publication": "publications", "publication_table": "published tables"}


@dataclass
class ApplyResult:
    outcome: str                         # applied | no_change | refused | failed
    message: str
    ledger_id: int | None = None
    created: Counter = field(default_factory=Counter)   # objects created, by kind
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)      # what the SQL said for the operator (pg_cron ...)


def desired_hash(objects: list[SqlObject]) -> str:
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(f"{obj.key}\0{obj.sql}\0".encode())
    return digest.hexdigest()


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def apply(url: str, objects: list[SqlObject], policy: Policy, *, rules_dir: Path = Path("rules"),
          lock_timeout_s: float = 30.0, progress: Callable[[int, int, SqlObject], None] | None = None) -> ApplyResult:
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    wanted = desired_hash(objects)
    ledger = _LedgerRow(started, policy.policy_hash, wanted, git_commit(rules_dir))
    try:
        with connect(url, autocommit=True) as conn:
            notes: list[str] = []
            # Rendered SQL speaks to the operator through NOTICEs prefixed "rulesctl: ".
            conn.add_notice_handler(lambda diag: notes.append(diag.message_primary.removeprefix("rulesctl: "))
                                    if (diag.message_primary or "").startswith("rulesctl: ") else None)
            _take_lock(conn, lock_timeout_s)
            try:
                conn.execute(query_text("ledger.sql"))
                result = _apply_locked(conn, objects, ledger, progress)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK_KEY,))
    except psycopg.Error as exc:
        raise DatabaseError(f"the database refused a rulesctl query: {str(exc).strip()}") from None
    result.seconds = time.monotonic() - clock
    result.notes = notes
    if result.outcome == "refused":
        raise ApplyRefused(result.message)
    if result.outcome == "failed":
        raise DatabaseError(result.message)
    return result


def _take_lock(conn: psycopg.Connection, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (APPLY_LOCK_KEY,)).fetchone()[0]:
        if time.monotonic() > deadline:
            holder = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                                  "AND (classid::bigint << 32 | objid::bigint) = %s", (APPLY_LOCK_KEY,)).fetchone()
            who = f" (backend pid {holder[0]})" if holder else ""
            raise ApplyRefused(f"another rulesctl apply holds the apply lock{who}; waited {timeout_s:g}s, changed nothing")
        time.sleep(0.2)


@dataclass
class _LedgerRow:
    started: dt.datetime
    policy_hash: str
    desired_hash: str
    git_commit: str | None

    def write(self, conn_or_cur, outcome: str, statements: list[SqlObject], message: str) -> int:
        row = conn_or_cur.execute(
            """INSERT INTO rulesctl.applies (started_at, outcome, policy_hash, desired_hash, tool_version, git_commit,
                                             applied_by, os_user, client_host, statement_count, statements, message)
               VALUES (%s, %s, %s, %s, %s, %s, current_user, %s, %s, %s, %s, %s) RETURNING id""",
            (self.started, outcome, self.policy_hash, self.desired_hash, __version__, self.git_commit,
             getpass.getuser(), socket.gethostname(), len(statements),
             json.dumps([{"object": obj.key, "sql": obj.sql} for obj in statements]), message)).fetchone()
        return row[0]


def _apply_locked(conn: psycopg.Connection, objects: list[SqlObject], ledger: _LedgerRow, progress) -> ApplyResult:
    # Roles are cluster-wide (another database may have made them) and grants and seed rows
    # live inside other objects: only the database's own schema objects decide "empty".
    managed = [obj for obj in objects if obj.kind not in ("seed", "grant", "role", "extension", "cron_job")]
    rows = conn.execute(query_text("managed_presence.sql"), {
        "kinds": [o.kind for o in managed], "names": [o.name for o in managed], "keys": [o.key for o in managed],
    }).fetchall()
    present = {key for key, exists in rows if exists}
    last = conn.execute("SELECT desired_hash, finished_at FROM rulesctl.applies WHERE outcome IN ('applied', 'no_change') "
                        "ORDER BY id DESC LIMIT 1").fetchone()

    if present and len(present) == len(managed) and last and last[0] == ledger.desired_hash:
        message = f"in sync: all {len(managed)} managed objects present, policy unchanged since the apply at {last[1]:%Y-%m-%d %H:%M:%S %Z}; nothing to do"
        ledger_id = ledger.write(conn, "no_change", [], message)
        return ApplyResult("no_change", message, ledger_id)
    if present:
        missing = len(managed) - len(present)
        state = (f"the last apply recorded a different policy ({last[0][:12]} at {last[1]:%Y-%m-%d %H:%M})" if last
                 else "no rulesctl apply is recorded for them")
        message = (f"the database already holds {len(present)} of the {len(managed)} managed objects "
                   f"({missing} missing) and {state}. Moving a live database to a changed policy needs a "
                   f"diff and a reviewed plan (`rulesctl plan`), which this version does not do yet; nothing was changed")
        ledger_id = ledger.write(conn, "refused", [], message)
        return ApplyResult("refused", message, ledger_id)

    created: Counter = Counter()
    try:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '10s'")
            conn.execute("SET LOCAL statement_timeout = '5min'")
            for step, obj in enumerate(objects, start=1):
                if progress:
                    progress(step, len(objects), obj)
                try:
                    conn.execute(obj.sql)
                except psycopg.Error as exc:
                    raise _StepFailed(obj, exc) from None
                created[obj.kind] += 1
            summary = ", ".join(f"{count} {_PLURAL[kind] if count != 1 else kind}" for kind, count in created.items())
            message = f"installed {summary} in one transaction"
            ledger_id = ledger.write(conn, "applied", objects, message)
    except _StepFailed as failure:
        detail = str(failure.error).strip().splitlines()[0]
        origin = f" (from {failure.obj.origin})" if failure.obj.origin else ""
        message = (f"{failure.obj.key}{origin} failed: {detail}. The transaction was rolled back; "
                   f"the database is as it was")
        ledger.write(conn, "failed", objects, message)
        return ApplyResult("failed", message)
    return ApplyResult("applied", message, ledger_id, created)


class _StepFailed(Exception):
    def __init__(self, obj: SqlObject, error: psycopg.Error):
        self.obj, self.error = obj, error
