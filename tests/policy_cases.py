"""Build a policy directory for a test: the small base policy with a case's files laid over it."""

from __future__ import annotations

import shutil
from pathlib import Path

POLICIES = Path(__file__).parent / "policies"
BASE = POLICIES / "base"
INVALID_CASES = sorted(p for p in (POLICIES / "invalid").iterdir() if p.is_dir())


def make_policy(workdir: Path, case: Path | None = None) -> Path:
    """workdir/rules = base policy + the case's *.yaml files, minus the files its remove.txt names."""
    rules = workdir / "rules"
    shutil.copytree(BASE, rules)
    if case is not None:
        for overlay in case.glob("*.yaml"):
            shutil.copy(overlay, rules / overlay.name)
        remove = case / "remove.txt"
        if remove.exists():
            for name in remove.read_text().split():
                (rules / name).unlink()
    return rules
