"""The unit every later stage works with: one database object rulesctl manages, with its
identity, its SQL, what it must come after, and the policy line that caused it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Origin

# Install order between kinds when dependencies leave a choice (readability of generated/ and plans).
KIND_RANK = {"role": 0, "schema": 1, "function": 2, "enum": 3, "table": 4, "index": 5, "view": 6, "trigger": 7,
             "rls": 8, "policy": 9, "grant": 10, "seed": 11}


@dataclass(frozen=True)
class SqlObject:
    kind: str                      # one of KIND_RANK
    name: str                      # identity within the kind, e.g. public.assignments
    sql: str                       # exactly what is written to generated/ and executed
    depends_on: tuple[str, ...]    # keys of objects that must exist first
    file: str                      # where in generated/ it is written
    template: str = field(compare=False)
    origin: Origin | None = field(compare=False, default=None)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"
