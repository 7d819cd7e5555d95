"""The unit every later stage works with: one database object rulesctl manages, with its
identity, its SQL, what it must come after, and the policy line that caused it."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.policy.model import Origin

# Install order between kinds when dependencies leave a choice (readability of generated/ and plans).
KIND_RANK = {"role": 0, "extension": 1, "schema": 2, "function": 3, "enum": 4, "table": 5, "index": 6, "view": 7,
             "trigger": 8, "rls": 9, "policy": 10, "grant": 11, "publication": 12, "publication_table": 13,
             "seed": 14, "cron_job": 15}


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
