"""The managed kinds of object, one module each, registered here and nowhere else. A `Kind`
(base.py) holds its install and drop order, how introspection finds it, how the desired side
gets it, and its create / change / drop steps with their hazards; its change templates live in
templates/changes/<kind>/. Adding a kind: a module here, its line in KINDS, its templates, and
a golden case (tests/golden/). A kind that is not registered is an error wherever it shows up.
"""

from __future__ import annotations

from engine.errors import UnknownKind
from engine.migrate.kinds.base import Kind
from engine.migrate.kinds.cron_job import CronJob
from engine.migrate.kinds.enum import Enum
from engine.migrate.kinds.extension import Extension
from engine.migrate.kinds.function import Function
from engine.migrate.kinds.grant import Grant
from engine.migrate.kinds.index import Index
from engine.migrate.kinds.policy import Policy
from engine.migrate.kinds.publication import Publication
from engine.migrate.kinds.publication_table import PublicationTable
from engine.migrate.kinds.rls import Rls
from engine.migrate.kinds.role import Role
from engine.migrate.kinds.seed import Seed
from engine.migrate.kinds.table import Table
from engine.migrate.kinds.trigger import Trigger
from engine.migrate.kinds.view import View

# In install rank order (ties and readability of generated/ and plans); introspection runs in this order too.
KINDS: dict[str, Kind] = {kind.name: kind for kind in sorted(
    (Role(), Extension(), Function(), Enum(), Table(), Index(), View(), Trigger(), Rls(), Policy(), Grant(),
     Publication(), PublicationTable(), Seed(), CronJob()), key=lambda kind: kind.rank)}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(f"unknown object kind {name!r}; rulesctl manages {', '.join(KINDS)}") from None


__all__ = ["KINDS", "Kind", "kind_of"]


def install_rank(kind: str) -> int:
    """A kind's install rank, for engine.compiler.order.install_order."""
    return kind_of(kind).rank
