"""Connections. Input: a database URL. Output: a psycopg connection, or a clear DatabaseError."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg

from engine.errors import DatabaseError


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    try:
        return psycopg.connect(url, application_name="rulesctl", connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database ({redact(url)}): {str(exc).strip()}") from None
    except psycopg.ProgrammingError as exc:
        raise DatabaseError(f"not a usable database URL ({redact(url)}): {exc}") from None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable URL>"
    if "password" in parts:
        parts["password"] = "***"
    return make_conninfo("", **parts)


def query_text(name: str) -> str:
    """A catalog query shipped in engine/migrate/queries/."""
    return resources.files("engine.migrate").joinpath("queries", name).read_text()
