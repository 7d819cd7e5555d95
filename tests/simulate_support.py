"""Helpers of the simulation tests: policy variants made from the shipped rules/ by small text
edits, and the invariants every replay must end with."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from engine.project import build
from engine.simulate.run import PolicyUnderTest

REPO_RULES = Path(__file__).resolve().parent.parent / "rules"


def variant(tmp_path: Path, label: str, edits: dict[str, list[tuple[str, str]]],
            appended: dict[str, str] | None = None) -> PolicyUnderTest:
    """The shipped rules with regex substitutions (each must match) and text appended, built."""
    rules = tmp_path / label / "rules"
    shutil.copytree(REPO_RULES, rules)
    for name, substitutions in edits.items():
        text = (rules / name).read_text()
        for pattern, replacement in substitutions:
            text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            assert count, f"{pattern!r} matches nothing in {name}"
        (rules / name).write_text(text)
    for name, text in (appended or {}).items():
        (rules / name).write_text((rules / name).read_text() + text)
    policy, objects = build(rules)
    return PolicyUnderTest(label, rules, policy, objects)


def assert_sound(result) -> None:
    """The runtime's invariants at the end of every replay: nobody over WIP, counters equal to the
    real load, nothing lost, nobody idle while work they could take waits."""
    for label, found in result.violations.items():
        assert found == {name: 0 for name in found}, f"{label}: {found}"
        assert result.summary["policies"][label]["over_wip"] == 0
        m = result.summary["policies"][label]
        assert m["assigned"] + m["queued_at_end"] + m["rejected"] >= m["items"], f"{label}: items lost"
