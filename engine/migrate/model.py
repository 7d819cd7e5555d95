"""The migrate stage's data: what introspection finds (`LiveObject`), what the diff finds
(`Change`) and what a plan runs (`Step`, with its `Action`). Keys are `ObjectKey`s
(engine/compiler/objects.py); actions and change types are str-valued enums, so plan.json,
the ledger and the golden files hold the same text as ever."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.compiler.objects import ObjectKey
from engine.migrate.hazards import Hazard

ACTIVE_SEGMENT, ENUM_SEGMENT = 1, 0


class Action(StrEnum):
    """What a plan step does (its text is what plans, plan.json and the ledger show)."""
    CREATE = "create"
    REPLACE = "replace"
    ALTER = "alter"
    ENABLE = "enable"
    DROP = "drop"
    INSERT = "insert"
    UPDATE = "update"
    RENAME = "rename"                  # a policy row's id, in place: every reference follows
    DELETE = "delete"
    ADD_VALUE = "add-value"
    REMOVE_VALUE = "remove-value"
    REVOKE = "revoke"
    SCHEDULE = "schedule"
    RESCHEDULE = "reschedule"
    UNSCHEDULE = "unschedule"
    RUN = "run"

    @property
    def removes(self) -> bool:
        """Takes something away: ordered after every other step, dependents first."""
        return self in (Action.DROP, Action.DELETE, Action.REVOKE, Action.UNSCHEDULE)


class ChangeType(StrEnum):
    CREATE = "create"
    CHANGE = "change"
    DROP = "drop"


@dataclass(frozen=True)
class LiveObject:
    kind: str
    name: str
    definition: Any          # JSON-like, normalised; equality is the diff's notion of "same"
    usage: Any = field(default=None, compare=False)   # what live data references it (engine/migrate/usage.py)

    @functools.cached_property
    def key(self) -> ObjectKey:
        return ObjectKey(f"{self.kind}:{self.name}")


@dataclass(frozen=True)
class Change:
    action: ChangeType
    key: ObjectKey
    desired: LiveObject | None
    live: LiveObject | None

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def name(self) -> str:
        """What a reason names: `public.units`, `anon`, `public.skills/skill-network`."""
        return self.key.body

    @property
    def wanted(self) -> Any:
        """The desired definition (a create or a change has one)."""
        assert self.desired is not None, f"{self.action} {self.key} has no desired definition"
        return self.desired.definition

    @property
    def found(self) -> Any:
        """The live definition (a change or a drop has one)."""
        assert self.live is not None, f"{self.action} {self.key} has no live definition"
        return self.live.definition


# How a step on a live object changed outside rulesctl begins its reason (plan.py marks it).
DRIFT_REASON = "drift: changed outside rulesctl; "


@dataclass(frozen=True)
class Step:
    action: Action
    key: ObjectKey                     # the object it acts on
    sql: str
    reason: str
    hazards: tuple[Hazard, ...] = ()
    origin: str | None = None          # rules/sla.yaml:12
    segment: int = ACTIVE_SEGMENT      # 0: enum values, committed on their own first
    drift: bool = False                # the live object was changed outside rulesctl
    after: tuple[str, ...] = field(default=(), compare=False)

    @property
    def kind(self) -> str:
        return self.key.kind

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "key": str(self.key), "sql": self.sql, "reason": self.reason,
                "hazards": [h.slug for h in self.hazards], "origin": self.origin, "segment": self.segment,
                "drift": self.drift}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(Action(data["action"]), ObjectKey(data["key"]), data["sql"], data["reason"],
                   tuple(Hazard.from_slug(h) for h in data["hazards"]), data["origin"], data["segment"], data["drift"])
