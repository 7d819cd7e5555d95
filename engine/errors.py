"""The error hierarchy. The library raises these; only cli.py turns them into exit codes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RulesctlError(Exception):
    """Base of every error rulesctl reports to a user (no traceback, a clear message)."""


class PolicyError(RulesctlError):
    """The policy in rules/ is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Any]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the policy")


class RenderError(RulesctlError):
    """A template failed to render or rendered SQL that does not parse."""


class LocalClusterError(RulesctlError):
    """The local throwaway PostgreSQL cluster could not be found, started or stopped."""


class DatabaseError(RulesctlError):
    """The database could not be reached or refused a statement."""


class ApplyRefused(RulesctlError):
    """apply stopped before changing anything (the database is not in a state it can handle)."""


class HazardsBlocked(ApplyRefused):
    """The plan has hazards that were not allowed by name (--allow-hazard)."""


class UnknownKind(RulesctlError):
    """An object kind no module under engine/migrate/kinds/ registers (a rulesctl bug, never empty SQL)."""
