"""The policy a live database runs, as a directory to simulate (`--baseline-live`, `plan --simulate`).
Input: the database URL (read-only: one ledger query) and the checkout holding the rules. Output:
the rules/ directory of the git commit the last successful apply recorded, extracted under `into`,
checked to be that apply's policy (same policy hash); or a SimulationError saying why not."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from engine.compiler.objects import SqlObject
from engine.database.connect import connect
from engine.errors import RulesctlError
from engine.migrate.ledger import require_ledger_access
from engine.policy.model import Policy
from engine.policy.validate import validate_directory
from engine.project import build
from engine.simulate.run import PolicyUnderTest, Report, Simulation, WorkloadSpec, simulate
from engine.simulate.workload import DEFAULT_PER_DAY


class SimulationError(RulesctlError):
    """The simulation cannot run as asked (no live policy to compare with, ...)."""


def live_rules(url: str, rules_dir: Path, into: Path) -> Path:
    with connect(url) as conn:
        require_ledger_access(conn)
        found = conn.execute("SELECT to_regclass('rulesctl.applies') IS NOT NULL").fetchone()
        row = conn.execute("""
            SELECT id, policy_hash, git_commit, git_dirty FROM rulesctl.applies
            WHERE outcome IN ('applied', 'no_change') ORDER BY id DESC LIMIT 1""").fetchone() \
            if found and found[0] else None
    if row is None:
        raise SimulationError("the database has no successful rulesctl apply in its ledger: nothing to compare "
                              "with; pass --baseline DIR")
    apply_id, policy_hash, commit, dirty = row
    if not commit or dirty:
        raise SimulationError(f"apply #{apply_id} was made from "
                              f"{'uncommitted rules' if dirty else 'outside a git checkout'}, so its policy cannot be "
                              "read back; pass --baseline DIR")
    prefix = _git(rules_dir, "rev-parse", "--show-prefix").decode().strip()
    top = Path(_git(rules_dir, "rev-parse", "--show-toplevel").decode().strip())
    archive = _git(top, "archive", "--format=tar", f"{commit}:{prefix}")
    target = into / "rules"
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    if validate_directory(target).policy_hash != policy_hash:
        raise SimulationError(f"commit {commit[:12]}'s {prefix or 'rules/'} is not the policy apply #{apply_id} "
                              "installed (their policy hashes differ); pass --baseline DIR")
    return target


def _git(where: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SimulationError(f"git could not run: {exc}") from None
    if done.returncode != 0:
        raise SimulationError(f"git {args[0]} failed in {where}: {done.stderr.decode().strip()}")
    return done.stdout


def simulate_against_live(url: str, rules_dir: Path, policy: Policy, objects: list[SqlObject], days: int,
                          seed: int = 11, progress: Report | None = None,
                          per_day: int = DEFAULT_PER_DAY, scratch_url: str | None = None) -> Simulation:
    """`plan --simulate`: the live policy (baseline) against rules_dir (proposed), on a synthetic
    stretch of `days`, in scratch databases on scratch_url's server (None: a private throwaway
    cluster). url is only read."""
    with tempfile.TemporaryDirectory(prefix="rulesctl-live-") as tmp:
        live = live_rules(url, rules_dir, Path(tmp))
        baseline = PolicyUnderTest("baseline", live, *build(live))
        proposed = PolicyUnderTest("proposed", rules_dir, policy, objects)
        return simulate(scratch_url, [baseline, proposed], WorkloadSpec(days=days, per_day=per_day), seed,
                        progress=progress)
