"""The diff. Input: the desired and live snapshots (both in PostgreSQL's normal form) and the
keys rulesctl owns. Output: `Change`s, as set algebra over keys, in sorted order:

    added   = desired - live                      -> create / insert
    changed = {k in both if desired[k] != live[k]} -> replace / alter / update
    removed = (live - desired) & owned            -> drop / delete
    foreign = (live - desired) - owned            -> reported, never touched (kinds that say `reported`)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from engine.compiler.objects import ObjectKey
from engine.migrate.kinds import kind_of
from engine.migrate.model import Change, ChangeType, LiveObject

__all__ = ["Change", "ChangeType", "Diff", "diff"]


@dataclass(frozen=True)
class Diff:
    changes: tuple[Change, ...]
    foreign: tuple[ObjectKey, ...]          # live objects rulesctl does not own: reported only


def diff(desired: Mapping[ObjectKey, LiveObject], live: Mapping[ObjectKey, LiveObject], owned: Collection[str]) -> Diff:
    changes = []
    for key in sorted(desired.keys() - live.keys()):
        obj = desired[key]
        changes.append(Change(ChangeType.CREATE, obj.key, obj, None))
    for key in sorted(desired.keys() & live.keys()):
        if desired[key] != live[key]:
            obj = desired[key]
            changes.append(Change(ChangeType.CHANGE, obj.key, obj, live[key]))
    extra = live.keys() - desired.keys()
    for key in sorted(extra & set(owned)):
        obj = live[key]
        changes.append(Change(ChangeType.DROP, obj.key, None, obj))
    foreign = sorted(live[key].key for key in extra - set(owned) if kind_of(live[key].kind).reported)
    return Diff(tuple(changes), tuple(foreign))
