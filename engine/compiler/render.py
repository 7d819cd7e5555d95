"""Render the policy into database objects. Input: a `Policy` and the templates/ directory.
Output: `SqlObject`s (SQL text + identity + dependencies + YAML origin), parse-checked.

One Jinja environment factory; YAML strings reach SQL only through the quoting filters
(`ident`, `literal`, `literal_list`, `qualified`, `comment`), and that is enforced, not hoped for: every
`{{ }}` passes through `_only_quoted`, which refuses text read from the policy or the file
system (`PolicyText`) and any object that is not a plain string or number (an `Origin`, a
list, None ...). Rendered SQL holds no path or line number: it depends on the policy's meaning
only; origins ride along on the objects for messages and plan reasons. Engine constants
(ENGINE_CONSTANTS) are globals of the environment, so no template retypes them. For
`rulesctl render` every statement is parsed with sqlglot (PostgreSQL
dialect) so a broken template fails there, naming the template and the policy line, before
any database sees it (plan and apply have PostgreSQL parse it in a scratch schema instead).
The text that is written and executed is the rendered text itself, never sqlglot's rewrite.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path

import jinja2

from engine.cache import cache_dir
from engine.compiler import catalog
from engine.compiler.objects import SqlObject
from engine.compiler.seed import seed_rows
from engine.compiler.sqltext import comment_line, ident, literal, literal_list, qualified
from engine.errors import RenderError
from engine.policy.model import Job, Origin, Policy, Strategy
from engine.policy.text import PolicyText

# sqlglot logs a warning for every statement it only understands as a generic command
# (CREATE FUNCTION bodies, ALTER TABLE ... ENABLE ROW LEVEL SECURITY): expected, not news.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (Jinja checks each against its source, not against
    the environment: `finalize` is compiled in, so the folder is named for it)."""
    directory = cache_dir(f"jinja-{jinja2.__version__}-only-quoted")
    return jinja2.FileSystemBytecodeCache(str(directory)) if directory else None


def _only_quoted(value: object) -> object:
    """Jinja's `finalize`: what a `{{ }}` may print. Template text, SQL built by filters or by
    engine code from the catalog, and numbers pass; policy or file-system text and any other
    object are refused, naming the type, so a template cannot print them by mistake."""
    if isinstance(value, PolicyText):
        raise ValueError(f"policy text {value!r} printed without a quoting filter (ident, literal, comment)")
    if isinstance(value, (str, int, float, jinja2.Undefined)) and not isinstance(value, bool):
        return value
    raise TypeError(f"a value of type {type(value).__name__} printed without a quoting filter "
                    "(ident, literal, comment)")


# Engine vocabulary every template sees as a global (printed through a quoting filter, like any
# value): one source in Python, never retyped in SQL.
ENGINE_CONSTANTS: dict[str, object] = {
    "active_statuses": catalog.ACTIVE_STATUSES,  # {{ active_statuses|literal_list }}
    "strategies": Strategy,                      # {{ strategies.round_robin|literal }}, {{ strategies|literal_list }}
}


@functools.lru_cache(maxsize=8)
def template_env(templates_dir: Path) -> jinja2.Environment:
    """One environment per templates folder, so a plan's two renders (the objects and their
    scratch copy) and its change steps compile each template once."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
        finalize=_only_quoted,
    )
    env.filters.update(ident=ident, literal=literal, literal_list=literal_list, qualified=qualified,
                       comment=comment_line)
    env.globals.update(ENGINE_CONSTANTS)
    return env



class Renderer:
    def __init__(self, templates_dir: Path, schema: str = catalog.SCHEMA, parse_check: bool = True) -> None:
        self.env = template_env(Path(templates_dir))
        self.schema = schema
        self.parse_check = parse_check
        self.objects: list[SqlObject] = []

    def add(self, kind: str, name: str, template: str, context: Mapping[str, object], *,
            after: Iterable[str] = (), file: str,
            origin: Origin | None = None, in_schema: bool = True) -> None:
        try:
            sql = self.env.get_template(template).render(schema=self.schema, **context).strip() + "\n"
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {exc.name} not found (rendering {kind} {name})") from None
        except jinja2.TemplateError as exc:
            where = f" for {origin}" if origin else ""
            raise RenderError(f"templates/{template}:{_template_line(exc, template)}: {exc}{where}") from None
        except (ValueError, TypeError) as exc:       # a quoting filter or _only_quoted refused a value
            where = f" ({origin})" if origin else ""
            raise RenderError(f"templates/{template}:{_template_line(exc, template)}: "
                              f"{kind} {name}{where}: {exc}") from None
        if self.parse_check:
            parse_check(sql, template, origin)
        self.objects.append(SqlObject(kind, f"{self.schema}.{name}" if in_schema else name, sql,
                                      tuple(after), file, template, origin))


def _template_line(exc: Exception, template: str) -> int | str:
    """The template line an error came from: Jinja puts template frames into the traceback."""
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return int(lineno)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(template)]
    return (frames[-1].lineno or "?") if frames else "?"


def parse_check(sql: str, template: str, origin: Origin | None) -> None:
    import sqlglot  # only `render` checks; importing it costs ~0.1 s
    from sqlglot.errors import ParseError
    try:
        sqlglot.parse(sql, read="postgres", error_level=sqlglot.ErrorLevel.RAISE)
    except ParseError as exc:
        detail = exc.errors[0] if exc.errors else {}
        where = f" (policy: {origin})" if origin else ""
        raise RenderError(f"templates/{template}: rendered SQL does not parse at line {detail.get('line', '?')}, "
                          f"column {detail.get('col', '?')}: {detail.get('description', exc)}{where}\n{sql}") from None


def render_policy(policy: Policy, templates_dir: Path, schema: str = catalog.SCHEMA,
                  parse_check: bool = True) -> list[SqlObject]:
    """parse_check=False only for re-renders of text already checked (the plan's scratch copy)."""
    r = Renderer(templates_dir, schema, parse_check)
    s = r.schema
    for function in catalog.HELPER_FUNCTIONS:
        r.add("function", f"{function}()", f"functions/{function}.sql.j2", {},
              after=() if function == "engine_now" else (f"function:{s}.engine_now()",),
              file="functions/helpers.sql")

    enum_origins = {"work_item_type": policy.work_item_types[0].origin, "priority_level": policy.priorities_origin}
    enums: dict[str, tuple[str, ...]] = dict(catalog.FIXED_ENUMS)
    enums["work_item_type"] = tuple(t.id for t in policy.work_item_types)
    enums["priority_level"] = policy.priorities
    descriptions = {"work_item_type": "Work item types (rules/work_items.yaml)",
                    "priority_level": "Priorities, lowest first, so ORDER BY priority DESC puts urgent first"}
    for name, values in enums.items():
        origin = enum_origins.get(name)
        r.add("enum", name, "types/enum.sql.j2", {"name": name, "values": values,
                                                  "description": descriptions.get(name, "")},
              file="types/enums.sql", origin=origin)

    for table in catalog.TABLES:
        after = [f"{'enum' if dep in enums else 'table'}:{s}.{dep}" for dep in table.after]
        r.add("table", table.name, f"tables/{table.name}.sql.j2", {}, after=after, file=f"tables/{table.name}.sql")
        for column, function in (("version", "increment_version_column"), ("updated_at", "update_updated_at_column")):
            wanted = table.versioned if column == "version" else table.updated_at
            if wanted:
                trigger = f"trg_{table.name}_{column}"
                r.add("trigger", trigger, "triggers/trigger.sql.j2",
                      {"name": trigger, "table": table.name, "function": function},
                      after=(f"table:{s}.{table.name}", f"function:{s}.{function}()"), file=f"tables/{table.name}.sql")
    for index in catalog.INDEXES:
        r.add("index", index.name, "indexes/index.sql.j2", {"index": index},
              after=(f"table:{s}.{index.table}",), file=f"tables/{index.table}.sql")

    _render_runtime(r, policy, enums)

    rows = seed_rows(policy)
    seeded = {(row.table, row.key) for row in rows}
    for row in rows:
        table = catalog.TABLES_BY_NAME[row.table]
        after = [f"table:{s}.{row.table}"]
        for column, ref_table in table.seed_refs:
            value = row.values.get(column)
            if value is not None and (ref_table, (value,)) in seeded:
                after.append(f"seed:{s}.{ref_table}/{value}")
        r.add("seed", seed_name(row.table, row.key), "seed/insert.sql.j2",
              {"table": row.table, "row": row.values}, after=after, file=f"seed/{row.table}.sql", origin=row.origin)
    return r.objects


def _render_runtime(r: Renderer, policy: Policy, enums: dict[str, tuple[str, ...]]) -> None:
    """The runtime: functions compiled from the policy, views, and the assignment triggers."""
    s = r.schema
    proficiency_rank: dict[str | None, int] = {None: 0}
    proficiency_rank.update((level, rank) for rank, level in enumerate(policy.proficiency_levels, 1))
    context = {
        "priorities": policy.priorities,
        "rules": policy.rules,
        "aging": policy.queue_aging,
        "max_rank": policy.priorities.index(policy.queue_aging.max_priority) + 1,
        "proficiency_rank": proficiency_rank,
        "calendars": policy.calendars,
        "job_names": [job.name for job in policy.jobs],
        "queue_head_max": catalog.QUEUE_HEAD_MAX,
    }
    # Functions whose text carries policy data name the file it comes from.
    origins = {"match_assignment_rule": policy.rules[0].origin, "queue_effective_rank": policy.queue_aging.origin,
               "priority_rank": policy.priorities_origin, "calendar_definition": policy.calendars[0].origin,
               "calendar_add_working_times": policy.calendars[0].origin,
               "calendar_working_minutes_between": policy.calendars[0].origin,
               "engine_health": policy.jobs[0].origin}
    foundations = [f"table:{s}.{t.name}" for t in catalog.TABLES] + [f"enum:{s}.{e}" for e in enums]
    foundations.append(f"function:{s}.engine_now()")
    signature = {f.name: f"{f.name}({f.args.format(schema=s)})" for f in catalog.RUNTIME_FUNCTIONS}
    for function in catalog.RUNTIME_FUNCTIONS:
        after = foundations + [f"function:{s}.{signature[dep]}" for dep in function.after]
        r.add("function", signature[function.name], function.template, context,
              after=after, file=f"functions/{function.name}.sql", origin=origins.get(function.name))
    for view, functions in catalog.VIEWS:
        after = foundations + [f"function:{s}.{signature.get(f, f + '()')}" for f in functions]
        r.add("view", view, f"views/{view}.sql.j2", {}, after=after, file=f"views/{view}.sql")
    for trigger, table, trigger_function in catalog.RUNTIME_TRIGGERS:
        if trigger == "assignment_notify_trigger" and not policy.realtime.notify_assignment_changes:
            continue                             # rules/realtime.yaml turned the notifications off
        r.add("trigger", trigger, f"triggers/{trigger}.sql.j2",
              {"name": trigger, "table": table, "function": trigger_function},
              after=(f"table:{s}.{table}", f"function:{s}.{signature[trigger_function]}"), file=f"tables/{table}.sql",
              origin=policy.realtime.origin if trigger == "assignment_notify_trigger" else None)
    _render_security(r, signature)
    _render_realtime(r)
    _render_jobs(r, policy, signature)


def _render_realtime(r: Renderer) -> None:
    s = r.schema
    r.add("publication", catalog.PUBLICATION, "realtime/publication.sql.j2", {"name": catalog.PUBLICATION},
          file="realtime/publication.sql", in_schema=False)
    for table in catalog.REALTIME_TABLES:
        r.add("publication_table", f"{catalog.PUBLICATION}/{s}.{table}", "realtime/publication_table.sql.j2",
              {"publication": catalog.PUBLICATION, "table": table},
              after=(f"publication:{catalog.PUBLICATION}", f"table:{s}.{table}"), file="realtime/publication.sql",
              in_schema=False)


def _render_jobs(r: Renderer, policy: Policy, signature: dict[str, str]) -> None:
    """pg_cron: the extension where it can live, and each job of rules/jobs.yaml by name."""
    s = r.schema
    r.add("extension", "pg_cron", "jobs/extension.sql.j2", {}, file="jobs/pg_cron.sql", in_schema=False)
    for job in policy.jobs:
        command, fallback = job_commands(job, s)
        context = {"job": job, "command": command, "seconds": seconds_of(job.schedule),
                   "words": schedule_in_words(job.schedule), "fallback": fallback}
        r.add("cron_job", job.name, "jobs/job.sql.j2", context, file="jobs/pg_cron.sql", origin=job.origin,
              after=("extension:pg_cron", f"function:{s}.{signature[job.function]}",
                     f"function:{s}.{signature['run_every_seconds']}",
                     f"function:{s}.{signature['run_batches']}"), in_schema=False)


def _render_security(r: Renderer, signature: dict[str, str]) -> None:
    """Supabase's roles, row level security on the runtime tables, and who may call what."""
    s = r.schema
    for role, bypass_rls in catalog.ROLES:
        r.add("role", role, "security/role.sql.j2", {"name": role, "bypass_rls": bypass_rls}, file="security/roles.sql",
              in_schema=False)                   # roles belong to the cluster, not a schema
    roles = [f"role:{role}" for role, _ in catalog.ROLES]
    for rls_table in catalog.RLS_TABLES:
        r.add("rls", rls_table, "security/enable_rls.sql.j2", {"table": rls_table}, after=(f"table:{s}.{rls_table}",),
              file="security/row_level_security.sql")
    for policy in catalog.RLS_POLICIES:
        using = policy.using.replace("{schema}", ident(s))
        r.add("policy", f"{policy.table}.{policy.name}", "security/policy.sql.j2",
              {"policy": dataclasses.replace(policy, using=using)},
              after=[f"rls:{s}.{policy.table}", f"function:{s}.current_user_id()",
                     f"function:{s}.caller_visible_units()", *roles], file="security/row_level_security.sql")
    for table in (table for table in catalog.TABLES if table.readable):
        # anon reads only tables whose row level security shows it nothing; service_role reads
        # everything (it bypasses row level security, as on Supabase)
        readers = (["anon"] if table.name in catalog.RLS_TABLES else []) + ["authenticated", "service_role"]
        r.add("grant", f"{table.name}.select", "security/grant.sql.j2",
              {"object_type": "TABLE", "target": f"{ident(s)}.{ident(table.name)}", "privileges": "SELECT",
               "roles": readers, "revoke_public": False},
              after=[f"table:{s}.{table.name}", *roles], file="security/grants.sql")
    for view, _ in catalog.VIEWS:
        r.add("grant", f"{view}.select", "security/grant.sql.j2",
              {"object_type": "TABLE", "target": f"{ident(s)}.{ident(view)}", "privileges": "SELECT",
               "roles": ["authenticated", "service_role"], "revoke_public": False},
              after=[f"view:{s}.{view}", *roles], file="security/grants.sql")
    # Functions execute for PUBLIC by default: take that away from every engine function and
    # give the API functions to the API roles only (the others run inside them as the owner).
    functions = [(name, f"{name}()") for name in catalog.HELPER_FUNCTIONS] + list(signature.items())
    for function, qualified_signature in functions:
        callers = list(catalog.API_ROLES) if function in catalog.API_FUNCTIONS else []
        r.add("grant", f"{qualified_signature}.execute", "security/grant.sql.j2",
              {"object_type": "PROCEDURE" if function in catalog.PROCEDURES else "FUNCTION",
               "target": f"{ident(s)}.{qualified_signature}", "privileges": "EXECUTE", "roles": callers,
               "revoke_public": True},
              after=[f"function:{s}.{qualified_signature}", *roles], file="security/grants.sql")


def job_commands(job: Job, schema: str) -> tuple[str, str | None]:
    """The SQL a job runs, and for an 'N seconds' schedule the per-minute fallback for pg_cron
    before 1.5. One source for the rendered DO block and the plan's expected cron.job row.
    A job with a `batch` runs its function on that many rows per transaction, committing
    each, until a batch comes back short (run_batches): a backlog never holds its row locks
    in one long transaction."""
    call = f"SELECT {ident(schema)}.{ident(job.function)}({literal(job.batch) if job.batch else ''})"
    seconds = seconds_of(job.schedule)
    if job.batch:
        budget = seconds or BATCHED_RUN_SECONDS
        command = f"CALL {ident(schema)}.run_batches({literal(call)}, {literal(job.batch)}, {literal(budget)})"
    else:
        command = call
    fallback = None
    if seconds:
        batch = f", {literal(job.batch)}" if job.batch else ""
        fallback = f"CALL {ident(schema)}.run_every_seconds({literal(call)}, {seconds}{batch})"
    return command, fallback


# How long a batched run of a cron-scheduled (not every-N-seconds) job may keep going.
BATCHED_RUN_SECONDS = 55


def seconds_of(schedule: str) -> int | None:
    """'30 seconds' -> 30; a cron expression -> None."""
    words = schedule.split()
    return int(words[0]) if len(words) == 2 and words[1].startswith("second") else None


def schedule_in_words(schedule: str) -> str:
    """What a reviewer should read: '0 * * * *' -> 'every hour, at minute 0 (UTC)'."""
    seconds = seconds_of(schedule)
    if seconds:
        return "every second" if seconds == 1 else f"every {seconds} seconds"
    from cron_descriptor import Options, get_description
    options = Options()
    options.use_24hour_time_format = True
    return f"{get_description(schedule, options)} (UTC)".replace("At ", "at ", 1).replace("Every ", "every ", 1)


def seed_name(table: str, key: tuple[object, ...]) -> str:
    return f"{table}/" + ",".join(str(part) for part in key)
