"""Build a policy directory for a test: the small base policy with a case's files laid over it."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.project import build

POLICIES = Path(__file__).parent / "policies"
BASE = POLICIES / "base"
INVALID_CASES = sorted(p for p in (POLICIES / "invalid").iterdir() if p.is_dir())


def make_policy(workdir: Path, case: Path | None = None) -> Path:
    """workdir/rules = base policy + the case's *.yaml files, minus the files its remove.txt names."""
    rules = workdir / "rules"
    shutil.copytree(BASE, rules)
    if case is not None:
        for overlay in case.glob("*.yaml"):
            shutil.copy(overlay, rules / overlay.name)
        remove = case / "remove.txt"
        if remove.exists():
            for name in remove.read_text().split():
                (rules / name).unlink()
    return rules


_BUILT: dict[tuple, tuple] = {}                     # built policies (frozen), shared by the tests


class Policies:
    """Policy folders under tmp_path (the base policy with some files replaced), built from there."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch

    def folder(self, name: str, **files: str) -> Path:
        workdir = self.tmp_path / name
        if not workdir.exists():
            rules = make_policy(workdir)
            for file_name, text in files.items():
                (rules / f"{file_name}.yaml").write_text(text)
        return workdir

    def enter(self, name: str, **files: str) -> None:
        """Make the folder the cwd, as a user running rulesctl there (it holds rules/)."""
        self.monkeypatch.chdir(self.folder(name, **files))

    def build(self, name: str, **files: str):
        """(policy, objects) of the folder, with the cwd left in it (origins read rules/...)."""
        self.enter(name, **files)
        key = tuple(sorted(files.items()))          # the build depends only on the files (origins are relative)
        if key not in _BUILT:
            _BUILT[key] = build(Path("rules"))
        return _BUILT[key]
