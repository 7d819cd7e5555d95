"""Load policy files. Input: the rules/ directory. Output: one `PolicyFile` per YAML file,
holding plain Python data plus the line/column of every node, or the problems that made a
file unreadable (syntax errors, duplicate keys, empty files, a top level that is not a mapping).

Plain `yaml.safe_load` keeps the last of two duplicate keys silently and forgets positions,
so the node tree from `yaml.compose` is walked by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .problems import Problem, format_path

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# libyaml's parser when PyYAML was built with it (same nodes and marks, several times faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class PolicyFile:
    path: Path
    display: str                      # the path as shown in messages (relative where possible)
    kind: str                         # the file stem: units, skills, ...
    data: dict | None = None          # None when the file could not be read as a mapping
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    digest: str = ""

    def position(self, path: tuple) -> tuple[int, int]:
        """The line/col of the deepest node on `path` that has a known position."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def problem(self, path: tuple, what: str) -> Problem:
        line, col = self.position(path)
        return Problem(self.display, line, col, format_path(path), what)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _compose(text: str) -> list:
    try:
        return list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError:
        # PyYAML's own parser words syntax errors better than libyaml: let it say what is wrong
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


def load_file(path: Path) -> tuple[PolicyFile, list[Problem]]:
    policy_file = PolicyFile(path=path, display=display_path(path), kind=path.stem)
    raw = path.read_bytes()
    policy_file.digest = hashlib.sha256(raw).hexdigest()
    problems: list[Problem] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return policy_file, [Problem(policy_file.display, 1, 1, "(file)", f"not UTF-8 text: {exc.reason}")]
    try:
        nodes = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return policy_file, [Problem(policy_file.display, line, col, "(file)", f"YAML syntax error: {what}")]
    except yaml.YAMLError as exc:
        return policy_file, [Problem(policy_file.display, 1, 1, "(file)", f"YAML error: {exc}")]

    nodes = [node for node in nodes if node is not None]
    if not nodes:
        return policy_file, [Problem(policy_file.display, 1, 1, "(file)", "the file is empty; expected a mapping")]
    if len(nodes) > 1:
        mark = nodes[1].start_mark
        return policy_file, [Problem(policy_file.display, mark.line + 1, mark.column + 1, "(file)",
                                     "more than one YAML document; put the whole policy of this kind in one")]
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        found = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        mark = root.start_mark
        return policy_file, [Problem(policy_file.display, mark.line + 1, mark.column + 1, "(file)",
                                     f"the top level is {found}; expected a mapping of keys to values")]
    constructor = yaml.SafeLoader("")
    policy_file.data = _to_python(root, (), policy_file, constructor, problems)
    return policy_file, problems


def _to_python(node, path: tuple, policy_file: PolicyFile, constructor, problems: list[Problem]):
    policy_file.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(policy_file.problem(path, "a key must be a plain value, not a list or mapping"))
                continue
            try:
                key = str(constructor.construct_object(key_node))
            except yaml.YAMLError as exc:
                problems.append(policy_file.problem(path, f"unreadable key: {getattr(exc, 'problem', None) or exc}"))
                continue
            key_path = path + (key,)
            if key in result:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first_line = policy_file.positions[key_path][0]
                problems.append(Problem(policy_file.display, line, col, format_path(key_path),
                                        f"duplicate key '{key}' (first defined on line {first_line})"))
                continue
            result[key] = _to_python(value_node, key_path, policy_file, constructor, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path + (index,), policy_file, constructor, problems)
                for index, item in enumerate(node.value)]
    if node.tag == _TIMESTAMP_TAG:
        return node.value             # keep dates as written ("2026-12-31"); the schema checks the format
    try:
        return constructor.construct_object(node)
    except yaml.YAMLError as exc:     # e.g. an unknown tag such as !!python/object
        problems.append(policy_file.problem(path, f"unreadable value: {getattr(exc, 'problem', None) or exc}"))
        return None


def load_directory(rules_dir: Path) -> tuple[list[PolicyFile], list[Problem]]:
    """Every *.yaml / *.yml file in rules_dir, sorted by name."""
    files: list[PolicyFile] = []
    problems: list[Problem] = []
    paths = sorted(p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for path in paths:
        policy_file, file_problems = load_file(path)
        files.append(policy_file)
        problems.extend(file_problems)
    return files, problems
