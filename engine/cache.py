"""A per-user cache folder for work that only depends on its inputs (compiled templates,
expanded public holidays): $XDG_CACHE_HOME/rulesctl, else ~/.cache/rulesctl. Everything kept
there can be thrown away; when the folder cannot be written, nothing is cached."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path | None:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = base / "rulesctl" / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory if os.access(directory, os.W_OK) else None
