"""Reading the ledger (rulesctl.applies) for `history` and `show`. Input: a database URL.
Output: rows as dicts. Writing happens in apply.py, in the apply's own transaction."""

from __future__ import annotations

from psycopg.rows import dict_row

from .db import connect


def read_history(url: str, limit: int) -> list[dict]:
    with connect(url, row_factory=dict_row) as conn:
        if conn.execute("SELECT to_regclass('rulesctl.applies')").fetchone()["to_regclass"] is None:
            return []
        return conn.execute("SELECT id, finished_at, outcome, statement_count, policy_hash, applied_by, os_user, "
                            "coalesce(message, '') AS message FROM rulesctl.applies ORDER BY id DESC LIMIT %s",
                            (limit,)).fetchall()


def read_apply(url: str, apply_id: int) -> dict | None:
    with connect(url, row_factory=dict_row) as conn:
        if conn.execute("SELECT to_regclass('rulesctl.applies')").fetchone()["to_regclass"] is None:
            return None
        return conn.execute("SELECT * FROM rulesctl.applies WHERE id = %s", (apply_id,)).fetchone()
