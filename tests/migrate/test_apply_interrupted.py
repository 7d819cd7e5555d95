"""A killed apply leaves its trace. `rulesctl apply` runs as a real process,
is held on a table lock in its second segment (after its enum value was committed), and gets
SIGKILL. Its 'started' ledger row was committed before the first segment; history shows it
interrupted at once; the next apply records it as 'interrupted' and converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from apply_support import invoke, ledger, rows, wait_for_lock_wait

from engine.migrate.apply import apply

pytestmark = pytest.mark.db

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NEW_TYPE = {path.stem: path.read_text() for path in (GOLDEN / "add_work_item_type" / "after").glob("*.yaml")}
RULESCTL = Path(sys.executable).parent / "rulesctl"


def backend_alive(url: str, pid: int) -> bool:
    return rows(url, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid) == [(1,)]


def test_a_killed_apply_is_recorded_as_interrupted(base_url, policies):
    policy, objects = policies.build("after", **NEW_TYPE)
    rules = policies.rules("after", **NEW_TYPE)
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    with psycopg.connect(base_url) as blocker:
        blocker.execute("LOCK TABLE public.sla_configs IN SHARE MODE")      # the SLA inserts of segment 2 wait
        process = subprocess.Popen([str(RULESCTL), "apply", "--rules", str(rules), "--database-url", base_url,
                                    "--auto-approve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            pid = wait_for_lock_wait(base_url, timeout=60)
            started = rows(base_url, "SELECT id, outcome, backend_pid, finished_at FROM rulesctl.applies "
                                     "ORDER BY id DESC LIMIT 1")
            assert started == [(2, "started", pid, None)]               # committed before the first segment
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            # the server notices the dead client within its check interval, though the lock is still held
            killed_at = time.monotonic()
            while backend_alive(base_url, pid) and time.monotonic() - killed_at < 20:
                time.sleep(0.05)
            gone_after = time.monotonic() - killed_at
            assert not backend_alive(base_url, pid), "the killed apply's backend still waits on the lock"
            assert gone_after < 5, gone_after
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        blocker.rollback()

    # the first segment (the enum value) was committed; the second (its SLA rows) was not
    assert rows(base_url, "SELECT 'survey_task' = ANY (enum_range(NULL::public.work_item_type)::text[])") == [(True,)]
    assert rows(base_url, "SELECT count(*) FROM public.sla_configs WHERE work_item_type = 'survey_task'") == [(0,)]
    # history shows the attempt as interrupted before any apply records it so
    shown = invoke("history", "--database-url", base_url)
    assert shown.exit_code == 0
    assert [line.split()[3] for line in shown.stdout.splitlines()] == ["interrupted", "applied"]
    assert ledger(base_url)[-1][1] == "started"

    again = apply(base_url, objects, policy)
    assert again.outcome == "applied"
    assert "apply #2 was interrupted before it finished (its session is gone); the ledger now says so" in again.notes
    entries = rows(base_url, "SELECT id, outcome, message, finished_at IS NOT NULL FROM rulesctl.applies ORDER BY id")
    assert [(entry[0], entry[1]) for entry in entries] == [(1, "applied"), (2, "interrupted"), (3, "applied")]
    assert entries[1][2].startswith("interrupted: the apply's session ended before it finished")
    assert "enum values of its first segment were committed" in entries[1][2] and entries[1][3]
    assert rows(base_url, "SELECT count(*) FROM public.sla_configs WHERE work_item_type = 'survey_task'") == [(2,)]
    shown = invoke("show", "2", "--database-url", base_url)
    assert shown.exit_code == 0 and shown.stdout.startswith("apply #2: interrupted at ")


def test_a_failed_apply_updates_its_started_row(base_url, policies):
    """One row per attempt: the started row becomes 'failed', no second row is written."""
    policy, objects = policies.build("after", **NEW_TYPE)
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.no_surveys() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'no_surveys'; END $$")
        conn.execute("CREATE TRIGGER no_surveys BEFORE INSERT ON public.sla_configs "
                     "FOR EACH ROW EXECUTE FUNCTION public.no_surveys()")
    with pytest.raises(Exception, match="no_surveys"):
        apply(base_url, objects, policy)
    assert [(entry[0], entry[1]) for entry in ledger(base_url)] == [(1, "applied"), (2, "failed")]
    assert rows(base_url, "SELECT backend_pid IS NOT NULL, finished_at IS NOT NULL FROM rulesctl.applies "
                          "WHERE id = 2") == [(True, True)]


OLD_LEDGER = """
CREATE SCHEMA rulesctl;
CREATE TABLE rulesctl.applies (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  outcome text NOT NULL CHECK (outcome IN ('applied', 'no_change', 'refused', 'failed')),
  policy_hash text NOT NULL, desired_hash text NOT NULL, tool_version text NOT NULL, git_commit text,
  applied_by text NOT NULL, os_user text, client_host text, statement_count integer NOT NULL,
  statements jsonb NOT NULL DEFAULT '[]', message text);
INSERT INTO rulesctl.applies (started_at, outcome, policy_hash, desired_hash, tool_version, applied_by, statement_count)
VALUES (now(), 'refused', 'old', 'old', '0.0', 'postgres', 0);
"""


def test_a_ledger_made_by_an_older_rulesctl_is_brought_up_to_date(database_url, policies):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(OLD_LEDGER)
    assert [line.split()[3] for line in invoke("history", "--database-url", database_url).stdout.splitlines()] == [
        "refused"]
    policy, objects = policies.build("base")
    assert apply(database_url, objects, policy).outcome == "applied"
    entries = rows(database_url, "SELECT id, outcome, backend_pid IS NOT NULL, git_dirty IS NULL "
                                 "FROM rulesctl.applies ORDER BY id")
    assert entries == [(1, "refused", False, True), (2, "applied", True, False)]     # git_dirty added in place
