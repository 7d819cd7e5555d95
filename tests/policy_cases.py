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
    """Policy folders under tmp_path (the base policy with some files replaced), named and built by
    absolute path: the cwd is never changed, so a CLI call names its policy with `--rules`."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self._files: dict[str, dict[str, str]] = {}

    def folder(self, name: str, **files: str) -> Path:
        """The folder `tmp_path/name` (absolute), holding rules/: a project directory."""
        workdir = self.tmp_path / name
        if name in self._files:
            assert self._files[name] == files, f"policy folder {name!r} was already made with other files"
        else:
            rules = make_policy(workdir)
            for file_name, text in files.items():
                (rules / f"{file_name}.yaml").write_text(text)
            self._files[name] = dict(files)
        return workdir.resolve()

    def rules(self, name: str, **files: str) -> Path:
        """The folder's rules/ directory, absolute: what `--rules` names."""
        return self.folder(name, **files) / "rules"

    def build(self, name: str, **files: str):
        """(policy, objects) of the folder's rules/ (origins read rules/..., whatever the cwd)."""
        rules = self.rules(name, **files)
        key = tuple(sorted(files.items()))          # the build depends only on the files (origins are relative)
        if key not in _BUILT:
            _BUILT[key] = build(rules)
        return _BUILT[key]
