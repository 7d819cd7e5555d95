"""Plan steps. Input: the diff's changes, the rendered objects (their SQL and origins) and the
templates. Output: `Step`s, each with the SQL apply will run, a one-line reason, its hazards
and the policy line that caused it. Each change goes to its kind (engine/migrate/kinds/), which
makes the steps: create and replace steps run the rendered SQL itself (the text generated/
holds); alter and drop steps are rendered from templates/changes/<kind>/."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.compiler import catalog
from engine.compiler.objects import ObjectKey, SqlObject
from engine.compiler.render import template_env
from engine.migrate.kinds import kind_of
from engine.migrate.kinds.base import Context, where
from engine.migrate.kinds.function import routine_and_args
from engine.migrate.model import ACTIVE_SEGMENT, ENUM_SEGMENT, Action, Change, ChangeType, LiveObject, Step
from engine.migrate.sla_moves import SlaMoves, schedules_clocks

__all__ = ["ACTIVE_SEGMENT", "ENUM_SEGMENT", "Action", "Step", "StepBuilder"]


class StepBuilder:
    def __init__(self, objects: list[SqlObject], templates_dir: Path, live: Mapping[ObjectKey, LiveObject],
                 schema: str = catalog.SCHEMA):
        self.objects = {obj.key: obj for obj in objects}
        self.context = Context(schema, live, template_env(Path(templates_dir)))
        self.schema = schema

    def steps(self, change: Change) -> list[Step]:
        kind = kind_of(change.kind)
        obj = self.objects.get(change.key)
        if change.action is ChangeType.DROP:
            return [kind.drop(self.context, change)]
        if obj is None:
            if change.kind == "grant":
                # A privilege rulesctl grants to nobody (e.g. INSERT on a table): only extra holders matter.
                if change.action is ChangeType.CREATE or not change.found:
                    return []
                return [kind.drop(self.context, change)]
            raise AssertionError(f"{change.action} {change.key}: the render produced no such object")
        if change.action is ChangeType.CREATE:
            return [kind.create(self.context, change, obj)]
        return kind.change(self.context, change, obj)

    def reschedule_steps(self, steps: list[Step], moves: SlaMoves | None = None) -> list[Step]:
        """A last step when the plan changes what the SLA schedule of work is computed from (SLA
        targets, escalation levels, calendars): deadlines, levels passed and next checks of
        running and queued work are recomputed under the new policy; the reason says what moves
        (`moves`, counted in the plan's transaction). None on a first install (no work yet)."""
        s = self.schema
        if not self.context.exists(f"table:{s}.assignments"):
            return []
        causes = [step for step in steps if schedules_clocks(step.key, s)
                  and not (step.action is Action.INSERT and step.key.name == "sla_configs")]
        if not causes:
            return []
        # A new SLA configuration row is for a new type or priority: no running clock reads it yet.
        what = ", ".join(sorted({f"{cause.key.schema}.{self._base_name(cause.key)}" for cause in causes}))
        origin = next((cause.origin for cause in causes if cause.origin), None)
        moved = f"; {moves.summary()}" if moves is not None else ""
        return [Step(Action.RUN, ObjectKey.of("reschedule", "sla_next_checks", s),
                     self.context.render("reschedule_sla_checks.sql.j2"),
                     f"recompute the SLA deadlines and next checks of running and queued work: the plan changes "
                     f"{what}{where(origin)}{moved}",
                     origin=origin)]

    @staticmethod
    def _base_name(key: ObjectKey) -> str:
        return routine_and_args(key)[0] if key.kind == "function" else key.name

