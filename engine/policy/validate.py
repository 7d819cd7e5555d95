"""Validate the policy. Input: the rules/ directory. Output: a `Policy`, or `PolicyError`
carrying every problem at once (syntax, duplicate keys, JSON Schema, semantic checks).

Each file is checked against its kind's JSON Schema; files that pass are built into model
pieces; the semantic checks in checks.py then run over whatever pieces exist, so one broken
file does not hide the problems of the others.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from engine.errors import PolicyError
from engine.policy import checks, model
from engine.policy.calendar_days import expand_public_holidays
from engine.policy.load import PolicyFile, display_path, load_directory
from engine.policy.problems import Problem

KINDS = ("units", "skills", "calendars", "work_items", "sla", "assignment_rules", "escalation", "leave", "jobs")
OPTIONAL_KINDS = ("realtime",)


# Lists the engine owns, filled into a schema's `$defs` as it is read: the schema files name the
# definition (`"$ref": "#/$defs/strategy"`), the engine keeps the one list.
_ENGINE_ENUMS = {"strategy": tuple(model.Strategy)}


@cache
def schema_for(kind: str) -> dict:
    schema = json.loads(resources.files("engine.policy").joinpath("schemas", f"{kind}.json").read_text())
    for name, definition in schema.get("$defs", {}).items():
        if name in _ENGINE_ENUMS:
            definition["enum"] = [str(value) for value in _ENGINE_ENUMS[name]]
    return schema


@cache
def _anchored(pattern: str) -> re.Pattern:
    """A schema pattern's `$` means the end of the text, not "before a final newline" as in
    Python's `re`: `unit-hr\n` is not a unit id. (The schema files keep ECMA-262 syntax.)"""
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))


def _pattern(validator: jsonschema.protocols.Validator, pattern: str, instance: object,
             schema: dict[str, Any]) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _anchored(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def _schema_problems(policy_file: PolicyFile) -> list[Problem]:
    validator = _Validator(schema_for(policy_file.kind), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    problems = []
    for error in validator.iter_errors(policy_file.data):
        if error.context:                      # oneOf/anyOf: report the alternative that came closest
            error = _closest_alternative(error.context)
        problems.append(policy_file.problem(tuple(error.absolute_path), _schema_message(error)))
    return problems


def _closest_alternative(errors: Iterable[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    """The error of the oneOf/anyOf alternative whose shape the value has (no key missing or
    unknown): a closure with a bad `date` is about the date, not about a missing `from`."""
    by_alternative: dict = {}
    for error in errors:
        by_alternative.setdefault(error.relative_schema_path[0], []).append(error)
    shape = {index: sum(e.validator in ("required", "additionalProperties") for e in group)
             for index, group in by_alternative.items()}
    fitting = [index for index, count in shape.items() if count == 0]
    if len(fitting) == 1 and len(by_alternative) > 1:
        return best_match(by_alternative[fitting[0]])
    return best_match(errors)


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    if error.validator == "pattern":
        expected = error.schema.get("description") or error.validator_value
        return f"{error.instance!r} is not in the expected form ({expected})"
    if error.validator == "format" and error.validator_value == "date":
        return f"{error.instance!r} is not a date of the calendar (YYYY-MM-DD)"
    return error.message


def validate_directory(rules_dir: Path) -> model.Policy:
    rules_dir = Path(rules_dir)
    if not rules_dir.is_dir():
        raise PolicyError([Problem(str(rules_dir), 1, 1, "(directory)", "the rules directory does not exist")])
    files, problems = load_directory(rules_dir)
    by_kind: dict[str, PolicyFile] = {}
    for policy_file in files:
        if policy_file.kind not in KINDS + OPTIONAL_KINDS:
            problems.append(policy_file.problem((), f"unknown policy file; expected one of: "
                                                    f"{', '.join(k + '.yaml' for k in KINDS + OPTIONAL_KINDS)}"))
        elif policy_file.kind in by_kind:
            problems.append(policy_file.problem((), f"a second {policy_file.kind} file; "
                                                    f"{by_kind[policy_file.kind].display} already holds that kind"))
        else:
            by_kind[policy_file.kind] = policy_file
    for kind in KINDS:
        if kind not in by_kind:
            missing = rules_dir / f"{kind}.yaml"
            problems.append(Problem(display_path(missing), 1, 1, "(file)",
                                    "the file is missing; every policy kind is required"))

    valid = {}
    for kind, policy_file in by_kind.items():
        if policy_file.data is None:
            continue
        schema_problems = _schema_problems(policy_file)
        problems.extend(schema_problems)
        if not schema_problems and not policy_file.unusable:
            valid[kind] = policy_file

    pieces, build_problems = _build_pieces(valid)
    problems.extend(build_problems)
    problems.extend(checks.run_all(pieces, valid))
    if problems:
        raise PolicyError(sorted(set(problems)))
    return model.Policy(
        units=pieces["units"], skills=pieces["skills"][0], proficiency_levels=pieces["skills"][1],
        proficiency_origin=pieces["skills"][2],
        calendars=pieces["calendars"], work_item_types=pieces["work_items"][0],
        priorities=pieces["work_items"][1], priorities_origin=pieces["work_items"][2], sla_targets=pieces["sla"],
        rules=pieces["assignment_rules"][0],
        queue_aging=pieces["assignment_rules"][1], chains=pieces["escalation"], leave=pieces["leave"],
        jobs=pieces["jobs"], realtime=pieces.get("realtime", model.RealtimePolicy(True, None)),
        sources=tuple((f.path.name, meaning_digest(f.spec)) for f in files))



def meaning_digest(data: object) -> str:
    """sha256 of a file's parsed content in one canonical form, so the policy hash follows the
    policy's meaning: comments, blank lines, key order, line numbers, the folder's name and the
    working directory do not count."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _build_pieces(valid: dict[str, PolicyFile]) -> tuple[dict, list[Problem]]:
    builders = {"realtime": model.build_realtime, "units": model.build_units, "skills": model.build_skills,
                "work_items": model.build_work_items, "sla": model.build_sla, "assignment_rules": model.build_rules,
                "escalation": model.build_chains, "leave": model.build_leave, "jobs": model.build_jobs}
    pieces = {kind: builders[kind](f) for kind, f in valid.items() if kind in builders}
    problems: list[Problem] = []
    if "calendars" in valid:
        f = valid["calendars"]
        calendars = []
        for index in range(len(f.spec["calendars"])):
            too_long = checks.closure_problems(f, index)
            if too_long:
                problems.extend(too_long)
                continue
            try:
                calendars.append(model.build_calendar(f, index, expand_public_holidays))
            except LookupError as exc:
                problems.append(f.problem(("calendars", index, "public_holidays", "country"), str(exc)))
        if not problems:
            pieces["calendars"] = tuple(calendars)
    return pieces, problems
