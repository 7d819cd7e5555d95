"""Quoting: the only way a policy string reaches SQL. Used as the Jinja filters `ident`,
`literal`, `literal_list`, `qualified` and `comment`, and by anything else that builds SQL text.

Text read from the policy files or the file system is a `PolicyText` (a `str` that knows where
it came from): the template environment refuses to print one, or any object that is not a
plain string or number, unless a quoting filter turned it into SQL first (render.py).

Every filter's output is safe anywhere in a statement, including inside a dollar-quoted
function body (`AS $fn$ ... $fn$`), which ends at the first `$fn$` whatever quotes surround it:
so no filter ever emits a `$`. A string literal holding one is written `E'...\x24...'`, an
identifier holding one `U&"...\0024..."`, and a comment shows it as a fullwidth ＄.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable

from engine.policy.text import MAX_IDENTIFIER_BYTES

_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
# Words PostgreSQL reserves (or that read badly unquoted); anything here is always quoted.
_RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate
collation column concurrently constraint create cross current_catalog current_date current_role
current_schema current_time current_timestamp current_user default deferrable desc distinct do else end
except false fetch for foreign freeze from full grant group having ilike in initially inner intersect into
is isnull join lateral leading left like limit localtime localtimestamp natural not notnull null offset on
only or order outer overlaps placing primary references returning right select session_user similar some
symmetric system_user table tablesample then to trailing true union unique user using variadic verbose when
where window with
""".split())


def ident(name: str) -> str:
    """A quoted identifier, left bare only when it is plainly safe (`units`, but `"order"`).
    A name longer than PostgreSQL keeps is refused: it would silently become another name."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"identifier longer than {MAX_IDENTIFIER_BYTES} bytes "
                         f"(PostgreSQL would cut it short): {name!r}")
    if _PLAIN_IDENT.fullmatch(name) and name not in _RESERVED:
        return str(name)
    quoted = name.replace('"', '""')
    if "$" in quoted:
        return 'U&"' + quoted.replace("\\", "\\\\").replace("$", "\\0024") + '"'
    return '"' + quoted + '"'


def qualified(name: str) -> str:
    """'public.assignments' -> public.assignments, each part quoted as needed."""
    return ".".join(ident(part) for part in name.split("."))


def _quote_string(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a SQL string cannot hold a NUL character")
    quoted = text.replace("'", "''")
    if "$" in quoted:
        return "E'" + quoted.replace("\\", "\\\\").replace("$", "\\x24") + "'"
    return "'" + quoted + "'"


def _array_element(value: object) -> str:
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: object) -> str:
    """A SQL literal for a Python value. Lists become array literals ('{"a","b"}'), which
    PostgreSQL coerces to the column's array type; dicts become jsonb."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        finite = value == value and value not in (float("inf"), float("-inf"))
        return repr(value) if finite else _quote_string(str(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return _quote_string(value.isoformat())
    if isinstance(value, (list, tuple)):
        return _quote_string("{" + ",".join(_array_element(v) for v in value) + "}")
    if isinstance(value, dict):
        return _quote_string(json.dumps(value, sort_keys=True, ensure_ascii=False)) + "::jsonb"
    if isinstance(value, str):
        return _quote_string(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def literal_list(values: Iterable[object]) -> str:
    """Comma-separated SQL literals, for `IN (...)`: ('a', 'b') -> 'a', 'b'. An empty list is
    refused: `IN ()` is not SQL, and matching nothing is never what a template means."""
    items = list(values)
    if not items:
        raise ValueError("an empty list has no SQL literal list")
    return ", ".join(literal(value) for value in items)


def comment_line(text: object) -> str:
    """Text safe inside a `--` comment: one line (no way to end the comment early) and no `$`
    (no way to end a dollar-quoted body the comment stands in)."""
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise TypeError(f"no comment text for {type(text).__name__}")
    return " ".join(str(text).replace("\x00", " ").replace("$", "\uff04").split())
