"""Plan steps. Input: the diff's changes, the rendered objects (their SQL and origins) and the
templates. Output: `Step`s, each with the SQL apply will run, a one-line reason, its hazards
and the policy line that caused it. Create and replace steps run the rendered SQL itself (the
text generated/ holds); alter and drop steps are rendered from templates/changes/."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.compiler.render import template_env
from engine.migrate.diff import Change
from engine.migrate.hazards import Hazard

ACTIVE_SEGMENT, ENUM_SEGMENT = 1, 0
_EXPLICIT_LOCK = re.compile(r"^LOCK TABLE (\w+\.\w+) IN", re.MULTILINE)   # what a rendered object locks itself


@dataclass(frozen=True)
class Step:
    action: str                        # create | replace | alter | drop | insert | update | delete | add-value ...
    key: str                           # kind:name of the object it acts on
    sql: str
    reason: str
    hazards: tuple[Hazard, ...] = ()
    origin: str | None = None          # rules/sla.yaml:12
    segment: int = ACTIVE_SEGMENT      # 0: enum values, committed on their own first
    drift: bool = False                # the live object was changed outside rulesctl
    after: tuple[str, ...] = field(default=(), compare=False)

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]

    def as_dict(self) -> dict:
        return {"action": self.action, "key": self.key, "sql": self.sql, "reason": self.reason,
                "hazards": [h.slug for h in self.hazards], "origin": self.origin, "segment": self.segment,
                "drift": self.drift}


class StepBuilder:
    def __init__(self, objects: list[SqlObject], templates_dir, live: dict, schema: str = catalog.SCHEMA):
        self.objects = {obj.key: obj for obj in objects}
        self.live = live                      # key -> LiveObject: what the database holds now
        self.live_keys = set(live)
        self.env = template_env(templates_dir)
        self.schema = schema

    def _sql(self, template: str, **context) -> str:
        return self.env.get_template(f"changes/{template}").render(schema=self.schema, **context).strip() + "\n"

    def steps(self, change: Change) -> list[Step]:
        obj = self.objects.get(change.key)
        if obj is None and change.kind == "grant" and change.action != "drop":
            # A privilege rulesctl grants to nobody (e.g. INSERT on a table): only extra holders matter.
            if change.action == "create" or not change.live.definition:
                return []
            return [self._drop(change)]
        origin = str(obj.origin) if obj and obj.origin else None
        where = f" ({origin})" if origin else ""
        label = f"{change.kind.replace('_', ' ')} {change.name}"
        if change.action == "create":
            return [self._create(change, obj, label, where, origin)]
        if change.action == "drop":
            return [self._drop(change)]
        method = getattr(self, f"_change_{change.kind}", None)
        if method:
            return method(change, obj, label, where, origin)
        return [Step("replace", change.key, obj.sql, f"replace {label}: definition changed{where}",
                     self._auth(change.kind), origin)]

    def reschedule_steps(self, steps: list[Step]) -> list[Step]:
        """A last step when the plan changes what running SLA clocks are scheduled from (SLA
        targets, escalation levels, calendars): their next checks are recomputed under the new
        policy. None on a first install (no assignments yet)."""
        s = self.schema
        if f"table:{s}.assignments" not in self.live_keys:
            return []
        seeds = tuple(f"seed:{s}.{table}/" for table in catalog.SLA_SCHEDULE_SEEDS)
        functions = tuple(f"function:{s}.{name}(" for name in catalog.SLA_SCHEDULE_FUNCTIONS)
        # A new SLA configuration row is for a new type or priority: no running clock reads it yet.
        causes = [step for step in steps if step.key.startswith(seeds + functions)
                  and not (step.action == "insert" and step.key.startswith(f"seed:{s}.sla_configs/"))]
        if not causes:
            return []
        what = ", ".join(sorted({cause.key.split(":", 1)[1].split("/", 1)[0].split("(", 1)[0] for cause in causes}))
        origin = next((cause.origin for cause in causes if cause.origin), None)
        where = f" ({origin})" if origin else ""
        return [Step("run", f"reschedule:{s}.sla_next_checks", self._sql("reschedule_sla_checks.sql.j2"),
                     f"recompute the next SLA check of running assignments: the plan changes {what}{where}",
                     origin=origin)]

    def _auth(self, kind: str, name: str = "", creating: bool = False) -> tuple[Hazard, ...]:
        """Access rules on objects that already exist are a hazard; on objects this plan
        creates they are part of creating them."""
        if kind not in ("policy", "grant", "rls"):
            return ()
        if creating and not self._target_exists(kind, name):
            return ()
        return (Hazard.AUTHORIZATION,)

    def _target_exists(self, kind: str, name: str) -> bool:
        schema, rest = name.split(".", 1)
        target = rest.split(".", 1)[0] if kind in ("policy", "grant") else rest
        if kind == "grant" and rest.endswith(".execute"):
            return f"function:{schema}.{rest.rsplit('.', 1)[0]}" in self.live_keys
        return f"table:{schema}.{target}" in self.live_keys or f"view:{schema}.{target}" in self.live_keys

    # --- create ---------------------------------------------------------------------------------
    def _create(self, change, obj, label, where, origin) -> Step:
        action = {"seed": "insert", "cron_job": "schedule"}.get(change.kind, "create")
        if change.kind == "seed":
            what = f"insert seed row {change.name}"
        elif change.kind == "cron_job":
            what = f"schedule job {change.name}: {_schedule(change.desired.definition['schedule'])}"
        else:
            what = f"create {label}"
        hazards = self._auth(change.kind, change.name, creating=True)
        locked = [name for name in _EXPLICIT_LOCK.findall(obj.sql) if f"table:{name}" in self.live_keys]
        if locked:                      # e.g. a new table filled from a live one it must not miss writes to
            hazards += (Hazard.LOCK,)
            what += f" (holds a write lock on {', '.join(locked)} until the apply commits)"
        return Step(action, change.key, obj.sql, f"{what}{where}", hazards, origin)

    # --- drop -----------------------------------------------------------------------------------
    def _drop(self, change: Change) -> Step:
        kind, name, live = change.kind, change.name, change.live.definition
        short = name.split(".", 1)[1] if "." in name and kind not in ("cron_job", "publication_table") else name
        hazards: tuple[Hazard, ...] = ()
        if kind == "seed":
            table, _ = short.split("/", 1)
            key = {column: live[column] for column in catalog.TABLES_BY_NAME[table].pk}
            return Step("delete", change.key, self._sql("seed_delete.sql.j2", table=table, key=key),
                        f"delete seed row {name}: no longer in rules/", (Hazard.SEED_ROW_DELETED,))
        if kind == "grant":
            target, privilege = short.rsplit(".", 1)
            object_type = self._grant_object_type(target, privilege)
            sql = self._sql("revoke.sql.j2", privilege=privilege.upper(), object_type=object_type,
                            target=self._grant_target(target, object_type), roles=live)
            if not live:                              # granted to nobody: the record goes, no one loses a right
                return Step("revoke", change.key, sql, f"forget {privilege} on {target}: nobody holds it", ())
            return Step("revoke", change.key, sql, f"revoke {privilege} on {target} from {', '.join(live)}",
                        (Hazard.AUTHORIZATION,))
        context = {"kind": kind, "name": short}
        if kind == "function":
            function_name, args = short.split("(", 1)
            context.update(name=function_name, args=args.rstrip(")"), procedure="PROCEDURE" in live["definition"][:40])
        elif kind in ("trigger", "policy"):
            table = live["table"] if kind == "trigger" else short.split(".", 1)[0]
            context.update(table=table, name=short.split(".", 1)[1] if kind == "policy" else short)
        elif kind == "publication_table":
            publication, table = name.split("/", 1)
            context.update(publication=publication, name=table.split(".", 1)[1])
        hazards = {"table": (Hazard.DATA_LOSS,), "cron_job": (Hazard.JOB_UNSCHEDULED,), "policy": (Hazard.AUTHORIZATION,),
                   "rls": (Hazard.AUTHORIZATION,), "enum": (Hazard.DATA_LOSS,)}.get(kind, ())
        verb = "unschedule" if kind == "cron_job" else "drop"
        return Step(verb, change.key, self._sql("drop.sql.j2", **context),
                    f"{verb} {kind.replace('_', ' ')} {name}: no longer in rules/ or the engine", hazards)

    def _grant_object_type(self, target: str, privilege: str) -> str:
        """TABLE for a table's or view's privileges; for EXECUTE, FUNCTION or PROCEDURE as the
        live routine is (REVOKE ... ON FUNCTION fails on a procedure)."""
        if privilege != "execute":
            return "TABLE"
        routine = self.live.get(f"function:{self.schema}.{target}")
        if routine is not None and isinstance(routine.definition, dict) and "kind" in routine.definition:
            return "PROCEDURE" if routine.definition["kind"] == "p" else "FUNCTION"
        return "PROCEDURE" if target.split("(", 1)[0] in catalog.PROCEDURES else "FUNCTION"

    def _grant_target(self, target: str, object_type: str) -> str:
        """A table's quoted name, or a function's name(argument types) as PostgreSQL printed it."""
        from engine.compiler.sqltext import ident
        if object_type == "TABLE":
            return ident(target)
        # FUNCTION or PROCEDURE: name(argument types)
        name, args = target.split("(", 1)
        return f"{ident(name)}({args}"

    # --- change, per kind ---------------------------------------------------------------------------
    def _change_seed(self, change, obj, label, where, origin) -> list[Step]:
        table, _ = change.name.split(".", 1)[1].split("/", 1)
        desired, live = change.desired.definition, change.live.definition
        changed = {column: desired[column] for column in desired if desired[column] != live.get(column)}
        key = {column: desired[column] for column in catalog.TABLES_BY_NAME[table].pk}
        detail = "; ".join(f"{column} {_short(live.get(column))} → {_short(value)}" for column, value in changed.items())
        return [Step("update", change.key, self._sql("seed_update.sql.j2", table=table, changes=changed, key=key),
                     f"update seed row {change.name}: {detail}{where}", (), origin)]

    def _change_function(self, change, obj, label, where, origin) -> list[Step]:
        if change.desired.definition["returns"] != change.live.definition["returns"]:
            function_name, args = change.name.split(".", 1)[1].split("(", 1)
            drop = self._sql("drop.sql.j2", kind="function", name=function_name, args=args.rstrip(")"),
                             procedure=False)
            return [Step("replace", change.key, drop + obj.sql,
                         f"drop and create {label}: its result type changes{where}", (), origin)]
        return [Step("replace", change.key, obj.sql, f"replace {label}: definition changed{where}", (), origin)]

    def _change_enum(self, change, obj, label, where, origin) -> list[Step]:
        desired, live = change.desired.definition, change.live.definition
        if [value for value in desired if value in live] != live:
            removed = [value for value in live if value not in desired]
            migration = (f"-- {label}: values {', '.join(removed) or '(reordered)'} cannot be removed or reordered "
                         "in place.\n-- Migrate rows off them, then recreate the type by hand; rulesctl will not.\n")
            return [Step("remove-value", change.key, migration,
                         f"{label} loses or reorders values ({', '.join(removed) or 'order'}){where}",
                         (Hazard.ENUM_VALUE_REMOVAL,), origin)]
        steps = []
        for index, value in enumerate(desired):
            if value in live:
                continue
            following = next((v for v in desired[index + 1:] if v in live), None)
            previous = desired[index - 1] if index else None      # exists by now: live, or added just before
            sql = self._sql("add_enum_value.sql.j2", name=change.name.split(".", 1)[1], value=value,
                            before=following, after=None if following else previous)
            steps.append(Step("add-value", f"{change.key}/{value}", sql, f"add value {value!r} to {label}{where}",
                              (), origin, segment=ENUM_SEGMENT))
        return steps

    def _change_table(self, change, obj, label, where, origin) -> list[Step]:
        from engine.compiler.sqltext import ident
        desired, live = change.desired.definition, change.live.definition
        actions, hazards, notes = [], set(), []
        for column, spec in desired["columns"].items():
            old = live["columns"].get(column)
            if old is None:
                definition = f"ADD COLUMN {ident(column)} {spec['type']}"
                if spec["default"] is not None:
                    definition += f" DEFAULT {spec['default']}"
                if spec["not_null"]:
                    definition += " NOT NULL"
                    if spec["default"] is None:
                        hazards.add(Hazard.LOCK)
                actions.append(definition)
                notes.append(f"add column {column}")
                continue
            if old["type"] != spec["type"]:
                actions.append(f"ALTER COLUMN {ident(column)} TYPE {spec['type']} USING {ident(column)}::{spec['type']}")
                hazards.add(Hazard.LOCK)
                notes.append(f"column {column} type {old['type']} → {spec['type']}")
            if old["default"] != spec["default"]:
                actions.append(f"ALTER COLUMN {ident(column)} " +
                               (f"SET DEFAULT {spec['default']}" if spec["default"] is not None else "DROP DEFAULT"))
                notes.append(f"column {column} default")
            if old["not_null"] != spec["not_null"]:
                actions.append(f"ALTER COLUMN {ident(column)} {'SET' if spec['not_null'] else 'DROP'} NOT NULL")
                if spec["not_null"]:
                    hazards.add(Hazard.LOCK)
                notes.append(f"column {column} {'NOT NULL' if spec['not_null'] else 'nullable'}")
        for column in live["columns"].keys() - desired["columns"].keys():
            actions.append(f"DROP COLUMN {ident(column)}")
            hazards.add(Hazard.DATA_LOSS)
            notes.append(f"drop column {column}")
        for name, definition in desired["constraints"].items():
            if live["constraints"].get(name) != definition:
                if name in live["constraints"]:
                    actions.append(f"DROP CONSTRAINT {ident(name)}")
                actions.append(f"ADD CONSTRAINT {ident(name)} {definition}")
                hazards.add(Hazard.LOCK)
                notes.append(f"constraint {name}")
        for name in live["constraints"].keys() - desired["constraints"].keys():
            actions.append(f"DROP CONSTRAINT {ident(name)}")
            notes.append(f"drop constraint {name}")
        if desired["options"] != live["options"]:
            # options come as "name=value"; ones no longer declared go back to their defaults
            dropped = sorted({o.split("=", 1)[0] for o in live["options"]} - {o.split("=", 1)[0] for o in desired["options"]})
            if dropped:
                actions.append(f"RESET ({', '.join(dropped)})")
            if desired["options"]:
                actions.append(f"SET ({', '.join(desired['options'])})")
            notes.append("storage options")
        sql = self._sql("alter_table.sql.j2", table=change.name.split(".", 1)[1], actions=actions)
        return [Step("alter", change.key, sql, f"alter {label}: {', '.join(notes)}{where}",
                     tuple(sorted(hazards, key=lambda h: h.slug)), origin)]

    def _drop_then_create(self, change, obj, label, where, origin, hazards) -> list[Step]:
        drop = self._drop(Change("drop", change.kind, change.name, None, change.live)).sql
        return [Step("replace", change.key, drop + obj.sql, f"drop and create {label}: definition changed{where}",
                     hazards, origin)]

    def _change_index(self, change, obj, label, where, origin):
        return self._drop_then_create(change, obj, label, where, origin, (Hazard.LOCK,))

    def _change_trigger(self, change, obj, label, where, origin):
        desired, live = change.desired.definition, change.live.definition
        if {**live, "enabled": desired["enabled"]} != desired:
            return self._drop_then_create(change, obj, label, where, origin, ())
        # only its enabled state moved (ALTER TABLE ... DISABLE TRIGGER): what it keeps up to date drifts
        sql = self._sql("enable_trigger.sql.j2", table=desired["table"], name=change.name.split(".", 1)[1],
                        state=TRIGGER_STATES[desired["enabled"]])
        return [Step("enable", change.key, sql, f"enable {label} on {desired['table']}: it is "
                     f"{TRIGGER_WORDS.get(live['enabled'], live['enabled'])}; what it keeps up to date may have "
                     f"drifted meanwhile{where}", (), origin)]

    def _change_role(self, change, obj, label, where, origin):
        """A managed role's powers and memberships are restored: a role that gained BYPASSRLS,
        LOGIN, SUPERUSER ... or another managed role's rights changes who may see or do what."""
        desired, live = change.desired.definition, change.live.definition
        attributes = [ROLE_ATTRIBUTES[name][0 if wanted else 1] for name, wanted in desired.items()
                      if name in ROLE_ATTRIBUTES and live.get(name) != wanted]
        revoke = sorted(set(live.get("member_of", [])) - set(desired["member_of"]))
        grant = sorted(set(desired["member_of"]) - set(live.get("member_of", [])))
        what = [f"{'has' if live.get(name) else 'lacks'} {ROLE_ATTRIBUTES[name][0]}" for name, wanted in desired.items()
                if name in ROLE_ATTRIBUTES and live.get(name) != wanted]
        what += [f"is a member of {role}" for role in revoke] + [f"is not a member of {role}" for role in grant]
        sql = self._sql("alter_role.sql.j2", name=change.name, attributes=attributes, revoke=revoke, grant=grant)
        return [Step("alter", change.key, sql, f"restore {label}: it {', '.join(what)}{where}",
                     (Hazard.AUTHORIZATION,), origin)]

    def _change_policy(self, change, obj, label, where, origin):
        return self._drop_then_create(change, obj, label, where, origin, (Hazard.AUTHORIZATION,))

    def _change_grant(self, change, obj, label, where, origin):
        target, privilege = change.name.split(".", 1)[1].rsplit(".", 1)
        object_type = self._grant_object_type(target, privilege)
        revoke = self._sql("revoke.sql.j2", privilege=privilege.upper(), object_type=object_type,
                           target=self._grant_target(target, object_type), roles=change.live.definition)
        return [Step("replace", change.key, revoke + obj.sql,
                     f"regrant {privilege} on {target}: {_holders(change.live.definition)} → "
                     f"{_holders(change.desired.definition)}{where}", (Hazard.AUTHORIZATION,), origin)]

    def _change_cron_job(self, change, obj, label, where, origin):
        old, new = change.live.definition, change.desired.definition
        what = [f"{field} {old.get(field)!r} → {new[field]!r}" for field in ("command", "active")
                if old.get(field) != new[field]]
        if old.get("schedule") != new["schedule"]:
            what.insert(0, f"schedule {_schedule(old.get('schedule'))} → {_schedule(new['schedule'])}")
        return [Step("reschedule", change.key, obj.sql, f"reschedule job {change.name}: {'; '.join(what)}{where}",
                     (), origin)]


# ALTER TABLE ... <state> TRIGGER by pg_trigger.tgenabled
TRIGGER_STATES = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
TRIGGER_WORDS = {"D": "disabled", "R": "enabled for replicas only", "A": "enabled always", "O": "enabled"}
# role attribute (engine/queries/roles.sql) -> (keyword to grant it, keyword to take it away)
ROLE_ATTRIBUTES = {"superuser": ("SUPERUSER", "NOSUPERUSER"), "createrole": ("CREATEROLE", "NOCREATEROLE"),
                   "createdb": ("CREATEDB", "NOCREATEDB"), "replication": ("REPLICATION", "NOREPLICATION"),
                   "bypassrls": ("BYPASSRLS", "NOBYPASSRLS"), "login": ("LOGIN", "NOLOGIN")}


def _holders(roles: list[str]) -> str:
    return ", ".join(roles) if roles else "the owner only"


def _schedule(schedule: str | None) -> str:
    """'0 2 * * *' -> "'0 2 * * *' (at 02:00 (UTC))": a reviewer should not have to read cron."""
    from engine.compiler.render import schedule_in_words
    if not schedule:
        return "(none)"
    try:
        return f"'{schedule}' ({schedule_in_words(schedule)})"
    except Exception:                      # a hand-made schedule cron-descriptor cannot read
        return f"'{schedule}'"


def _short(value) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
