"""Shared by the apply tests (tests/migrate, tests/cli): policy files that change the base policy,
and small helpers that read the database, the ledger and the plan, or run the CLI in-process (with
--rules and absolute paths: the tests never change the working directory)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from click.testing import CliRunner

from engine.cli import cli
from engine.migrate.introspect import introspect
from engine.migrate.plan import build_plan
from engine.project import DEFAULT_TEMPLATES

SLA_TIGHTER = """\
defaults:
  calendar: office
  escalation_chain: standard
  warning_at: 75%
matrix:
  ticket:
    low: {response: 1h, resolution: 8h}
    urgent: {response: 10m, resolution: 1h}
"""
SKILLS_WITHOUT_NETWORK = """\
proficiency_levels: [basic, expert]
skills:
  - id: skill-arabic
    name: Arabic
    category: language
"""
SKILLS_PLUS_SQL = """\
proficiency_levels: [basic, expert]
skills:
  - id: skill-arabic
    name: Arabic
    category: language
  - id: skill-network
    name: Networking
    category: technology
  - id: skill-sql
    name: SQL
    category: data
"""
SLA_UPDATE = "update seed:public.sla_configs/ticket,urgent"
RESCHEDULE = "run reschedule:public.sla_next_checks"     # follows any SLA change


def rows(url: str, query: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def execute(url: str, statement: str, *params) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def snapshot(url: str) -> dict:
    """Every object rulesctl can see in public, with its normalised definition (seed rows included)."""
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        return {key: obj.definition for key, obj in introspect(conn).items()}


def step_keys(url: str, policy, objects) -> list[str]:
    return [f"{s.action} {s.key}" for s in build_plan(url, policy, objects, DEFAULT_TEMPLATES).steps]


def ledger(url: str) -> list[tuple]:
    return rows(url, "SELECT id, outcome, policy_hash, message FROM rulesctl.applies ORDER BY id")


POLICY_COMMANDS = {"validate", "render", "plan", "apply", "drift"}


def invoke(*args: str | Path):
    """Run the CLI in-process. The cwd is the test runner's (the checkout, whose rules/ is the shipped
    policy), so a command that reads a policy must name it: `--rules` with an absolute path."""
    argv = [str(arg) for arg in args]
    if argv and argv[0] in POLICY_COMMANDS:
        assert "--rules" in argv and Path(argv[argv.index("--rules") + 1]).is_absolute(), \
            f"rulesctl {argv[0]} in a test names its policy: --rules /absolute/rules"
    return CliRunner().invoke(cli, argv)


def wait_for_lock_wait(url: str, timeout: float = 10.0) -> int:
    """The pid of the rulesctl backend waiting on a table lock in this database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                          "AND application_name = 'rulesctl' AND wait_event_type = 'Lock'")
        if found:
            return found[0][0]
        time.sleep(0.05)
    raise AssertionError("no rulesctl apply started waiting on the held table lock")
