"""The unit every later stage works with: one database object rulesctl manages, with its
identity (an `ObjectKey`), its SQL, what it must come after, and the policy line that caused it.
What each kind of object is (its install order, catalog query, create/alter/drop SQL, hazards)
lives in its own module under engine/migrate/kinds/."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import cast

from engine.policy.model import Origin


class ObjectKey(str):
    """The identity of a managed object: `kind:schema.name/member`, e.g. `table:public.units`,
    `function:public.engine_now()`, `seed:public.skills/skill-network`, `enum:public.priority_level/high`
    (a value of the enum), `publication_table:supabase_realtime/public.assignments`, `role:anon`.

    It is its text form (a str: plan.json, the ledger, golden files and managed_objects hold that
    very text, and it sorts as it), and its parts are typed fields parsed in this one place:
    `kind`, `schema` (None for objects outside a schema), `name` and `member` (None for a whole
    object). Immutable like any str.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> ObjectKey:
        if ":" not in text or not text.split(":", 1)[1]:
            raise ValueError(f"not an object key (kind:name): {text!r}")
        return super().__new__(cls, text)

    @classmethod
    def of(cls, kind: str, name: str, schema: str | None = None, member: str | None = None) -> ObjectKey:
        body = f"{schema}.{name}" if schema else name
        return cls(f"{kind}:{body}" + (f"/{member}" if member is not None else ""))

    @property
    def kind(self) -> str:
        return _parts(str(self))[0]

    @property
    def schema(self) -> str | None:
        return _parts(str(self))[1]

    @property
    def name(self) -> str:
        """The object's name within its schema: `units`, `engine_now()`, `assignments.policy_name`."""
        return _parts(str(self))[2]

    @property
    def member(self) -> str | None:
        """What inside the object the key is about: a seed row's primary key, an enum value, a
        publication's table; None for the object itself."""
        return _parts(str(self))[3]

    @property
    def body(self) -> str:
        """Everything after `kind:` (what reasons print: `public.units`, `public.skills/skill-network`)."""
        return str(self).split(":", 1)[1]

    @property
    def whole(self) -> ObjectKey:
        """The key of the object itself (an enum value's key -> the enum's key)."""
        return self if self.member is None else ObjectKey.of(self.kind, self.name, self.schema)

    def __repr__(self) -> str:
        return f"ObjectKey({str(self)!r})"


@functools.lru_cache(maxsize=65536)
def _parts(text: str) -> tuple[str, str | None, str, str | None]:
    kind, body = text.split(":", 1)
    whole, slash, member = body.partition("/")
    schema, dot, name = whole.partition(".")
    if not dot:                         # roles, jobs, the publication, extensions: no schema
        schema, name = "", whole
    return kind, schema or None, name, member if slash else None


@dataclass(frozen=True)
class SqlObject:
    kind: str                      # a registered kind (engine/migrate/kinds/)
    name: str                      # identity within the kind, e.g. public.assignments
    sql: str                       # exactly what is written to generated/ and executed
    depends_on: tuple[str, ...]          # keys of objects that must exist first (ObjectKeys once built)
    file: str                      # where in generated/ it is written
    template: str = field(compare=False)
    origin: Origin | None = field(compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depends_on", tuple(ObjectKey(str(dep)) for dep in self.depends_on))

    @property
    def dependencies(self) -> tuple[ObjectKey, ...]:
        """depends_on, typed: its keys are ObjectKeys once built (__post_init__)."""
        return cast(tuple[ObjectKey, ...], self.depends_on)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(f"{self.kind}:{self.name}")
