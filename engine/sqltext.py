"""Quoting: the only way a policy string reaches SQL. Used as the Jinja filters `ident`
and `literal`, and by anything else that builds SQL text."""

from __future__ import annotations

import datetime as dt
import json
import re

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
    """A quoted identifier, left bare only when it is plainly safe (`units`, but `"order"`)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    if _PLAIN_IDENT.fullmatch(name) and name not in _RESERVED and len(name) <= 63:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(name: str) -> str:
    """'public.assignments' -> public.assignments, each part quoted as needed."""
    return ".".join(ident(part) for part in name.split("."))


def _quote_string(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a SQL string cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def _array_element(value) -> str:
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value) -> str:
    """A SQL literal for a Python value. Lists become array literals ('{"a","b"}'), which
    PostgreSQL coerces to the column's array type; dicts become jsonb."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else _quote_string(str(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return _quote_string(value.isoformat())
    if isinstance(value, (list, tuple)):
        return _quote_string("{" + ",".join(_array_element(v) for v in value) + "}")
    if isinstance(value, dict):
        return _quote_string(json.dumps(value, sort_keys=True, ensure_ascii=False)) + "::jsonb"
    if isinstance(value, str):
        return _quote_string(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def comment_line(text: str) -> str:
    """Text safe inside a `--` comment: one line, no way to end the comment early."""
    return " ".join(str(text).split())
