"""Renames in place (`renamed_from` on a unit, skill or assignment rule). Input: the policy and
the live snapshot. Output: the live snapshot as it will be once the renames ran (what the diff
compares with the desired state, so a rename is not a delete plus an insert) and one `rename`
step per renamed id, which runs before every other change of the active segment.

The step updates the id; the foreign keys to it cascade (ON UPDATE CASCADE: staff, assignments,
queue, history, the unit tree, rules) and the text arrays that hold skill ids are rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey
from engine.migrate.kinds.base import Context
from engine.migrate.model import ENUM_SEGMENT, Action, LiveObject, Step
from engine.policy.model import Origin, Policy

# Columns holding skill ids in arrays (no foreign key can cascade into them).
SKILL_ARRAYS = (("assignment_rules", "match_skills_any"), ("staff_profiles", "skills"),
                ("assignments", "required_skills"), ("assignment_queue", "required_skills"))


@dataclass(frozen=True)
class Rename:
    table: str
    old: str
    new: str
    origin: Origin

    def key(self, schema: str, ident: str) -> ObjectKey:
        return ObjectKey.of("seed", self.table, schema, member=ident)


def find_renames(policy: Policy, live: Mapping[ObjectKey, LiveObject], schema: str = catalog.SCHEMA) -> list[Rename]:
    """The renames the policy asks for that the live database still needs (old id there, new not)."""
    declared = ([("organizational_units", u) for u in policy.units] + [("skills", s) for s in policy.skills]
                + [("assignment_rules", r) for r in policy.rules])
    found = []
    for table, item in declared:
        if item.renamed_from is None:
            continue
        rename = Rename(table, item.renamed_from, item.id, item.origin)
        if rename.key(schema, rename.old) in live and rename.key(schema, rename.new) not in live:
            found.append(rename)
    return sorted(found, key=lambda r: (r.table, r.new))


def after_renames(live: Mapping[ObjectKey, LiveObject], renames: list[Rename],
                  schema: str = catalog.SCHEMA) -> dict[ObjectKey, LiveObject]:
    """The live snapshot with the renamed ids (and every seed row's reference to them) replaced."""
    if not renames:
        return dict(live)
    moved: dict[ObjectKey, LiveObject] = {}
    for key, obj in live.items():
        if obj.kind != "seed" or key.schema != schema or key.name not in catalog.TABLES_BY_NAME:
            moved[key] = obj
            continue
        table = catalog.TABLES_BY_NAME[key.name]
        values = dict(obj.definition)
        for rename in renames:
            columns = [column for column, ref in table.seed_refs if ref == rename.table]
            if table.name == rename.table:
                columns.append("id")
            for column in columns:
                if values.get(column) == rename.old:
                    values[column] = rename.new
            if rename.table == "skills" and table.name == "assignment_rules" and values.get("match_skills_any"):
                values["match_skills_any"] = [rename.new if s == rename.old else s for s in values["match_skills_any"]]
        ident = ",".join(str(values[column]) for column in table.pk)
        renamed = LiveObject(obj.kind, f"{schema}.{table.name}/{ident}", values, obj.usage)
        moved[renamed.key] = renamed
    return moved


def rename_steps(ctx: Context, renames: list[Rename]) -> list[Step]:
    steps = []
    for rename in renames:
        arrays = SKILL_ARRAYS if rename.table == "skills" else ()
        sql = ctx.render("seed/rename.sql.j2", table=rename.table, old=rename.old, new=rename.new, arrays=arrays)
        what = rename.table.replace("organizational_", "").rstrip("s").replace("_", " ")
        steps.append(Step(Action.RENAME, rename.key(ctx.schema, rename.new), sql,
                          f"rename {what} {rename.old} → {rename.new} in place: staff, assignments, queue, history "
                          f"and rules follow ({rename.origin})", (), str(rename.origin)))
    return steps


def with_renames(ordered: list[Step], renames: list[Step]) -> list[Step]:
    """Rename steps after the enum values, before every other step."""
    enum_values = [step for step in ordered if step.segment == ENUM_SEGMENT]
    return enum_values + renames + [step for step in ordered if step.segment != ENUM_SEGMENT]
