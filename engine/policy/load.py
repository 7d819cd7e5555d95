"""Load policy files. Input: the rules/ directory. Output: one `PolicyFile` per YAML file,
holding plain Python data plus the line/column of every node, or the problems that made a
file unreadable (syntax errors, duplicate keys, empty files, a top level that is not a mapping).

Plain `yaml.safe_load` keeps the last of two duplicate keys silently and forgets positions,
so the node tree from `yaml.compose` is walked by hand.

The loader is bounded, so a small hostile file cannot take the machine down: files larger than
MAX_FILE_BYTES, nesting deeper than MAX_DEPTH (checked on the event stream before anything
recursive runs, and again while aliases are expanded), more than MAX_NODES values after alias
expansion or more than MAX_ALIASED repeated through aliases (a "billion laughs" alias bomb)
and an alias inside its own anchor are each refused as one problem at the node where the
limit was met. Text a database cannot hold or that has no business in a policy (NUL and other
control characters, lone surrogates) is refused where it is written. Symbolic links that leave
the rules directory are refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from engine.policy.problems import Problem, format_path
from engine.policy.text import PolicyText

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# libyaml's parser when PyYAML was built with it (same nodes and marks, several times faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 1 << 20          # the shipped policy's largest file is a few KB
MAX_DEPTH = 32                    # nesting of mappings and lists; the schemas need 6
MAX_NODES = 200_000               # values in one file (a 1 MiB file holds fewer)
MAX_ALIASED = 10_000              # of those, values reached again through an alias
# Control characters other than tab and newline: never meant, and NUL cannot reach PostgreSQL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass
class PolicyFile:
    path: Path
    display: str                      # the path as shown in messages (relative where possible)
    kind: str                         # the file stem: units, skills, ...
    data: dict[str, Any] | None = None   # None when the file could not be read as a mapping
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    digest: str = ""
    unusable: bool = False            # holds text no later stage may see: schema-check it, build nothing

    @property
    def spec(self) -> dict[str, Any]:
        """The data of a file that was read: what builders and checks see (they never see the others)."""
        if self.data is None:
            raise ValueError(f"{self.display} could not be read; nothing may be built from it")
        return self.data

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
    """The file as messages and origins show it: relative to the rules directory's parent
    (`rules/units.yaml`), whatever the working directory, so that neither the policy hash nor
    the plan depends on where rulesctl runs. The file's own name, even when it is a symbolic link."""
    folder = path.parent.resolve().name
    return PolicyText(f"{folder}/{path.name}" if folder else path.name)


class _Mark(Protocol):
    """Where a node or event starts: PyYAML's Mark, or libyaml's (the C parser's own class)."""
    line: int
    column: int


class _Refused(Exception):
    """A bound of the loader was met at `mark`; the whole file is refused with one problem."""

    def __init__(self, mark: _Mark | None, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.line, self.col = (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _check_depth(text: str, loader: type) -> None:
    """Walk the event stream (flat, never recursive) and refuse nesting deeper than MAX_DEPTH
    before the recursive composer ever sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels; "
                                                 f"a policy file never needs that many")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _compose(text: str) -> list:
    try:
        _check_depth(text, _LOADER)
        return list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError:
        # PyYAML's own parser words syntax errors better than libyaml: let it say what is wrong
        _check_depth(text, yaml.SafeLoader)
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


def load_file(path: Path) -> tuple[PolicyFile, list[Problem]]:
    policy_file = PolicyFile(path=path, display=display_path(path), kind=path.stem)
    with path.open("rb") as stream:
        raw = stream.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        return policy_file, [Problem(policy_file.display, 1, 1, "(file)",
                                     f"larger than {MAX_FILE_BYTES // 1024} KiB; a policy file is never that big")]
    policy_file.digest = hashlib.sha256(raw).hexdigest()
    problems: list[Problem] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return policy_file, [Problem(policy_file.display, 1, 1, "(file)", f"not UTF-8 text: {exc.reason}")]
    try:
        nodes = _compose(text)
    except _Refused as exc:
        return policy_file, [Problem(policy_file.display, exc.line, exc.col, "(file)", exc.what)]
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
    walk = _Walk(policy_file, yaml.SafeLoader(""), problems)
    try:
        policy_file.data = walk.to_python(root, ())
    except _Refused as exc:
        policy_file.positions.clear()
        return policy_file, [Problem(policy_file.display, exc.line, exc.col, "(file)", exc.what)]
    return policy_file, problems


def text_problem(text: str) -> str | None:
    """Why a string from the policy cannot be used, or None."""
    if surrogate := _SURROGATE.search(text):
        return f"contains a lone surrogate (U+{ord(surrogate.group()):04X}), which is not Unicode text"
    if control := _CONTROL.search(text):
        char = control.group()
        return f"contains the control character U+{ord(char):04X}; only tab and newline are allowed in text"
    return None


class _Walk:
    """Node tree -> plain Python, counting every value (aliases included) and the depth."""

    def __init__(self, policy_file: PolicyFile, constructor: yaml.constructor.SafeConstructor,
                 problems: list[Problem]) -> None:
        self.policy_file, self.constructor, self.problems = policy_file, constructor, problems
        self.nodes = self.aliased = 0
        self.seen: set[int] = set()
        self.open: set[int] = set()            # collections being built: an alias back to one is a loop

    def to_python(self, node: yaml.Node, path: tuple, aliased: bool = False) -> Any:
        aliased = aliased or id(node) in self.seen
        self.seen.add(id(node))
        self.nodes += 1
        self.aliased += aliased
        if self.aliased > MAX_ALIASED:
            raise _Refused(node.start_mark, f"aliases expand to more than {MAX_ALIASED} values (an alias bomb?); "
                                            f"refusing to expand them")
        if self.nodes > MAX_NODES:
            raise _Refused(node.start_mark, f"more than {MAX_NODES} values; refusing to read them all")
        if len(path) > MAX_DEPTH:
            raise _Refused(node.start_mark, f"nesting deeper than {MAX_DEPTH} levels (through aliases); "
                                            f"a policy file never needs that many")
        policy_file = self.policy_file
        policy_file.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.open:
                raise _Refused(node.start_mark, "an alias refers to the anchor it is inside of (a recursive alias)")
            self.open.add(id(node))
            try:
                return self._mapping(node, path, aliased) if isinstance(node, yaml.MappingNode) else \
                    [self.to_python(item, path + (index,), aliased) for index, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        if node.tag == _TIMESTAMP_TAG:
            value = node.value        # keep dates as written ("2026-12-31"); the schema checks the format
        else:
            try:
                value = self.constructor.construct_object(node)
            except yaml.YAMLError as exc:     # e.g. an unknown tag such as !!python/object
                reason = getattr(exc, "problem", None) or exc
                self.problems.append(policy_file.problem(path, f"unreadable value: {reason}"))
                return None
        if isinstance(value, str):
            value = PolicyText(value)         # data from here on: SQL gets it only through a quoting filter
            if why := text_problem(value):
                self.problems.append(policy_file.problem(path, why))
                policy_file.unusable = True
        return value

    def _mapping(self, node: yaml.MappingNode, path: tuple, aliased: bool) -> dict:
        policy_file = self.policy_file
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(policy_file.problem(path, "a key must be a plain value, not a list or mapping"))
                continue
            try:
                key = PolicyText(self.constructor.construct_object(key_node))
            except yaml.YAMLError as exc:
                reason = getattr(exc, "problem", None) or exc
                self.problems.append(policy_file.problem(path, f"unreadable key: {reason}"))
                continue
            if why := text_problem(key):
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                self.problems.append(Problem(policy_file.display, line, col, format_path(path), f"a key {why}"))
                policy_file.unusable = True
            key_path = path + (key,)
            if key in result:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first_line = policy_file.positions[key_path][0]
                self.problems.append(Problem(policy_file.display, line, col, format_path(key_path),
                                             f"duplicate key '{key}' (first defined on line {first_line})"))
                continue
            result[key] = self.to_python(value_node, key_path, aliased)
        return result


def load_directory(rules_dir: Path) -> tuple[list[PolicyFile], list[Problem]]:
    """Every *.yaml / *.yml file in rules_dir, sorted by name. A symbolic link is read only when
    it stays inside the rules directory: one that leaves it (or leads nowhere) is refused, so
    what a reviewer sees in rules/ is all the policy there is."""
    files: list[PolicyFile] = []
    problems: list[Problem] = []
    root = rules_dir.resolve()
    for path in sorted(p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml")):
        refusal = _link_problem(path, root)
        if refusal:
            policy_file = PolicyFile(path=path, display=display_path(path), kind=path.stem)
            files.append(policy_file)              # known but unreadable: its kind is not "missing"
            problems.append(policy_file.problem((), refusal))
            continue
        if not path.is_file():
            continue
        policy_file, file_problems = load_file(path)
        files.append(policy_file)
        problems.extend(file_problems)
    return files, problems


def _link_problem(path: Path, root: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = path.resolve()
    if not target.is_relative_to(root):
        return (f"a symbolic link to {str(target)!r}, outside the rules directory; policy files must live in "
                f"the rules directory (copy the file there)")
    if not target.is_file():
        return f"a symbolic link to {str(target)!r}, which is not a file"
    return None
