"""One problem found in the policy, and how it prints: `path:line:col: where: what`."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    where: str
    what: str

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
            text += ("." if text else "") + str(part)
    return text or "(file)"
