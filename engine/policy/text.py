"""What the policy stage marks and bounds for the stages after it: `PolicyText`, the mark on
every string read from a policy file or the file system (data, never SQL: the renderer refuses
to print one that did not pass a quoting filter), and PostgreSQL's limit on a name."""

from __future__ import annotations


class PolicyText(str):
    """A string that came from a policy file or a path: data, never SQL (see compiler/render.py)."""

    __slots__ = ()


MAX_IDENTIFIER_BYTES = 63           # PostgreSQL's NAMEDATALEN - 1: longer names are cut off silently
