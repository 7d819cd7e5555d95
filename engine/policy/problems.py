"""One problem found in the policy, and how it prints: `path:line:col: where: what`."""

from __future__ import annotations

from dataclasses import asdict, dataclass


def printable(text: str) -> str:
    """Text any terminal or JSON encoder takes: a lone surrogate (from a YAML escape, or a file
    name that is not UTF-8) is shown as its escape, never raised as UnicodeEncodeError."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    where: str
    what: str

    def __post_init__(self) -> None:
        for name in ("file", "where", "what"):
            object.__setattr__(self, name, printable(str(getattr(self, name))))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.where}: {self.what}"

    def as_dict(self) -> dict:
        return asdict(self)


def format_path(path: tuple) -> str:
    """('units', 3, 'parent') -> 'units[3].parent'; the empty path is the whole file."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = str(part) if str(part).isprintable() else ascii(str(part))[1:-1]
            text += ("." if text else "") + part
    return text or "(file)"
