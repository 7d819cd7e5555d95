"""Another role's ledger: every command says whose it is and what to do, and changes nothing.

A superuser installs the engine (schema rulesctl, the ledger, is then the superuser's), and the
database owner runs rulesctl next, as on a Supabase project set up by hand: plan, apply, history,
show and status used to fail on their first read of the ledger with a bare "permission denied
for schema rulesctl" (history and show with "internal error ... a rulesctl bug")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from engine_calls import scalar
from test_non_superuser import as_user, supabase_like_cluster

from engine.migrate.apply import DEFAULT_TEMPLATES, apply
from engine.migrate.ledger import LedgerClosed, read_history
from engine.migrate.plan import build_plan
from engine.operations.status import read_status

pytestmark = pytest.mark.db

REPO_RULES = Path(__file__).resolve().parents[2] / "rules"
READ_GRANT = "GRANT USAGE ON SCHEMA rulesctl TO owner; GRANT SELECT ON ALL TABLES IN SCHEMA rulesctl TO owner;"


@pytest.fixture(scope="module")
def installed_by_superuser(shipped_objects):
    policy, objects = shipped_objects
    with supabase_like_cluster("rulesctl-ledger-access-") as cluster:
        assert apply(cluster.url, objects, policy).outcome == "applied"
        yield cluster


def rulesctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          cwd="/", timeout=120)


def test_every_command_names_the_ledgers_owner_and_what_to_run(installed_by_superuser, shipped_objects):
    policy, objects = shipped_objects
    cluster = installed_by_superuser
    owner = as_user(cluster.url, "owner")
    with psycopg.connect(cluster.url) as admin:
        applies_before = scalar(admin, "SELECT count(*) FROM rulesctl.applies")

    for command in (["plan", "--rules", str(REPO_RULES)], ["history"], ["show", "1"], ["status"]):
        run = rulesctl(*command, "--database-url", owner)
        assert run.returncode == 1, (command, run.stdout, run.stderr)
        assert "internal error" not in run.stderr and "Traceback" not in run.stderr
        assert ("schema rulesctl (the ledger of applies and the record of what rulesctl installed) belongs to role "
                "postgres, which installed the engine here, and owner may not read it. Run rulesctl as postgres, "
                f"or have postgres let owner read it: {READ_GRANT}") in run.stderr, (command, run.stderr)

    with pytest.raises(LedgerClosed, match="owner may not record an apply in it. Apply as postgres"):
        apply(owner, objects, policy)
    with psycopg.connect(cluster.url) as admin:
        assert scalar(admin, "SELECT count(*) FROM rulesctl.applies") == applies_before     # nothing written


def test_with_the_grant_it_names_the_owner_reads_the_ledger(installed_by_superuser, shipped_objects):
    policy, objects = shipped_objects
    cluster = installed_by_superuser
    owner = as_user(cluster.url, "owner")
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute(READ_GRANT)
    assert [row["outcome"] for row in read_history(owner, 10)][-1] == "applied"
    last_apply = read_status(owner).last_apply
    assert last_apply is not None and last_apply["outcome"] == "applied"
    build_plan(owner, policy, objects, DEFAULT_TEMPLATES)       # plans (its steps are another test's subject)
    # Reading is not writing: applying still needs the ledger's owner.
    with pytest.raises(LedgerClosed, match="Apply as postgres"):
        apply(owner, objects, policy)
