"""The mutation check's fast subset in CI: `scripts/mutate --ci` (the entries of
scripts/mutations.toml marked `ci = true`, a few of each tag) must kill every mutation it
applies. Each runs alone on a scratch copy of the tree: about a minute on 2 cores. The whole
list (`scripts/mutate`, every tag) is run by hand: under five minutes.

Also: every entry of the list still applies (its original text is in its file exactly once).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MUTATE = REPO_ROOT / "scripts" / "mutate.py"


def mutate(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MUTATE), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_every_mutation_in_the_list_still_applies():
    listed = mutate("--list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert int(listed.stdout.strip().splitlines()[-1].split()[0]) >= 25


@pytest.mark.db
def test_the_ci_subset_of_mutations_is_killed():
    run = mutate("--ci", "--no-baseline", timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " 0 survived, 0 broken" in run.stdout
