"""The diff. Input: the desired and live snapshots (both in PostgreSQL's normal form) and the
keys rulesctl owns. Output: `Change`s, as set algebra over keys, in sorted order:

    added   = desired - live                      -> create / insert
    changed = {k in both if desired[k] != live[k]} -> replace / alter / update
    removed = (live - desired) & owned            -> drop / delete
    foreign = (live - desired) - owned            -> reported, never touched
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.migrate.introspect import LiveObject

# Kinds reported when found unowned (grants and rows inside other objects are not news).
REPORTED_KINDS = {"table", "view", "function", "enum", "index", "trigger", "policy", "cron_job"}


@dataclass(frozen=True)
class Change:
    action: str                       # create | change | drop
    kind: str
    name: str
    desired: LiveObject | None
    live: LiveObject | None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Diff:
    changes: tuple[Change, ...]
    foreign: tuple[str, ...]          # live objects rulesctl does not own: reported only


def diff(desired: dict[str, LiveObject], live: dict[str, LiveObject], owned: set[str]) -> Diff:
    changes = []
    for key in sorted(desired.keys() - live.keys()):
        obj = desired[key]
        changes.append(Change("create", obj.kind, obj.name, obj, None))
    for key in sorted(desired.keys() & live.keys()):
        if desired[key] != live[key]:
            obj = desired[key]
            changes.append(Change("change", obj.kind, obj.name, obj, live[key]))
    extra = live.keys() - desired.keys()
    for key in sorted(extra & owned):
        obj = live[key]
        changes.append(Change("drop", obj.kind, obj.name, None, obj))
    foreign = sorted(key for key in extra - owned if live[key].kind in REPORTED_KINDS)
    return Diff(tuple(changes), tuple(foreign))
