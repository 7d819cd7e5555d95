"""Tables: created from their template; a changed one is altered column by column (ADD,
ALTER TYPE, SET/DROP DEFAULT, SET/DROP NOT NULL, identity, DROP COLUMN), constraint by
constraint, and its storage options reset or set. Never replaced: that would lose its rows.
A new identity column numbers the rows already there in the order the catalog declares
(`numbered_by`), its sequence continuing after them."""

from __future__ import annotations

from typing import Any

from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.compiler.sqltext import ident
from engine.migrate.hazards import Hazard
from engine.migrate.kinds.base import Action, Change, Context, Kind, Step, origin_of, where


class Table(Kind):
    name = "table"
    rank, drop_rank = 5, 9
    query = "tables.sql"
    reported = True
    drop_hazards = (Hazard.DATA_LOSS,)

    def change(self, ctx: Context, change: Change, obj: SqlObject) -> list[Step]:
        desired, live = change.wanted, change.found
        actions: list[str] = []
        hazards: set[Hazard] = set()
        notes: list[str] = []
        numbered: dict[str, bool] = {}      # columns made identities: rows to number first?
        self._columns(desired["columns"], live["columns"], actions, hazards, notes, numbered)
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
            dropped = sorted({o.partition("=")[0] for o in live["options"]}
                             - {o.partition("=")[0] for o in desired["options"]})
            if dropped:
                actions.append(f"RESET ({', '.join(dropped)})")
            if desired["options"]:
                actions.append(f"SET ({', '.join(desired['options'])})")
            notes.append("storage options")
        sql = ctx.render("table/alter.sql.j2", table=change.key.name, actions=actions) if actions else ""
        for column, renumber in numbered.items():
            sql += self._make_identity(ctx, change.key.name, column, desired["columns"][column]["identity"], renumber)
        origin = origin_of(obj)
        return [Step(Action.ALTER, change.key, sql,
                     f"alter {self.label(change.key)}: {', '.join(notes)}{where(origin)}",
                     tuple(sorted(hazards, key=lambda h: h.slug)), origin)]

    @staticmethod
    def _make_identity(ctx: Context, table: str, column: str, identity: str, renumber: bool) -> str:
        declared = catalog.TABLES_BY_NAME.get(table)
        keys = declared.pk if declared else ("id",)
        return ctx.render("table/make_identity.sql.j2", table=table, column=column, keys=keys, renumber=renumber,
                          order=(declared.numbered_by if declared else "") or ", ".join(keys),
                          generated=_GENERATED[identity])

    @staticmethod
    def _columns(desired: dict[str, Any], live: dict[str, Any], actions: list[str], hazards: set[Hazard],
                 notes: list[str], numbered: dict[str, bool]) -> None:
        for column, spec in desired.items():
            old = live.get(column)
            if old is None and spec.get("identity"):
                actions.append(f"ADD COLUMN {ident(column)} {spec['type']}")     # numbered, then made the identity
                numbered[column] = True
                hazards.add(Hazard.LOCK)
                notes.append(f"add identity column {column}")
                continue
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
                actions.append(f"ALTER COLUMN {ident(column)} TYPE {spec['type']} "
                               f"USING {ident(column)}::{spec['type']}")
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
            was, wanted = old.get("identity") or "", spec.get("identity") or ""
            if was != wanted:
                if not was:
                    numbered[column] = False                # its values stay; the sequence continues after them
                    hazards.add(Hazard.LOCK)
                else:
                    actions.append(f"ALTER COLUMN {ident(column)} "
                                   + (f"SET GENERATED {_GENERATED[wanted]}" if wanted else "DROP IDENTITY"))
                notes.append(f"column {column} identity")
        for column in live.keys() - desired.keys():
            actions.append(f"DROP COLUMN {ident(column)}")
            hazards.add(Hazard.DATA_LOSS)
            notes.append(f"drop column {column}")


_GENERATED = {"a": "ALWAYS", "d": "BY DEFAULT"}      # pg_attribute.attidentity

