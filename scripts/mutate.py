"""Mutation check of the test suite. Input: scripts/mutations.toml, a curated list of small
breakages of the engine's Python and templates (each: id, tag, file, the exact original text,
its replacement, why it matters, the tests expected to catch it). Output: a table (id, tag,
killed/SURVIVED/BROKEN, seconds) and exit status 0 when every selected mutation was killed, 1
when one survived or broke the build instead of a test, 2 when the list or the unmutated tree is unusable.

Each mutation is applied alone to a scratch copy of the tree (engine/, templates/, rules/,
tests/, generated/, bench/, pyproject.toml, README.md) and its tests run there with
`python -m pytest -x -q`; the copy's `engine` package is the one imported (cwd and PYTHONPATH
point at the copy, and that is checked before anything runs). A mutation is killed when its
tests fail. An original text that is not found exactly once is refused before anything runs,
so the list cannot silently rot as the code moves. Before the mutations, the selected tests
run once on the unmutated copy (skip with --no-baseline): a test that already fails would
"kill" everything.

    scripts/mutate                          # every mutation
    scripts/mutate --tag security,hazard    # by tag
    scripts/mutate --only rls-staff-profiles-visible-true --only ...
    scripts/mutate --ci                     # the fast subset CI runs (tests/cli/test_mutate_smoke.py)
    scripts/mutate --list                   # the list, nothing run
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATIONS = ROOT / "scripts" / "mutations.toml"
COPIED = ("engine", "templates", "rules", "tests", "generated", "bench", "pyproject.toml", "README.md")
TAGS = ("security", "hazard", "invariant", "queue")
FIELDS = {"id", "tag", "file", "original", "replacement", "why", "tests"}
OPTIONAL = {"ci"}            # ci = true: in the fast subset tests/cli/test_mutate_smoke.py runs (--ci)
TIMEOUT_S = 900             # a mutation that hangs its tests (a lost lock ...) counts as killed, and says so


@dataclass(frozen=True)
class Mutation:
    id: str
    tag: str
    file: str
    original: str
    replacement: str
    why: str
    tests: tuple[str, ...]
    ci: bool = False


@dataclass
class Outcome:
    mutation: Mutation
    result: str                 # killed | timeout (counts as killed) | SURVIVED | BROKEN (its tests errored)
    seconds: float
    detail: str

    @property
    def killed(self) -> bool:
        return self.result in ("killed", "timeout")


class ListError(Exception):
    """The mutation list is malformed or no longer matches the code."""


def load(path: Path = MUTATIONS) -> list[Mutation]:
    data = tomllib.loads(path.read_text())
    mutations, problems, seen = [], [], set()
    for index, entry in enumerate(data.get("mutation", [])):
        where = f"{path.name}: mutation #{index + 1} ({entry.get('id', '?')})"
        if not FIELDS <= set(entry) <= FIELDS | OPTIONAL:
            missing, extra = FIELDS - set(entry), set(entry) - FIELDS - OPTIONAL
            problems.append(f"{where}: fields {'missing ' + ', '.join(sorted(missing)) if missing else ''}"
                            f"{' unknown ' + ', '.join(sorted(extra)) if extra else ''}")
            continue
        if entry["id"] in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(entry["id"])
        if entry["tag"] not in TAGS:
            problems.append(f"{where}: tag {entry['tag']!r} is none of {', '.join(TAGS)}")
        if not entry["tests"]:
            problems.append(f"{where}: names no test expected to kill it")
        if entry["original"] == entry["replacement"]:
            problems.append(f"{where}: the replacement is the original")
        mutations.append(Mutation(entry["id"], entry["tag"], entry["file"], entry["original"], entry["replacement"],
                                  entry["why"], tuple(entry["tests"]), bool(entry.get("ci", False))))
    if problems:
        raise ListError("\n".join(problems))
    return mutations


def check_applicable(mutations: list[Mutation], root: Path = ROOT) -> None:
    """Refuse any mutation whose original text is not in its file exactly once."""
    problems = []
    for m in mutations:
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.id}: {m.file} does not exist")
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            problems.append(f"{m.id}: the original text is found {count} times in {m.file} (must be exactly once); "
                            "update scripts/mutations.toml")
    if problems:
        raise ListError("\n".join(problems))


def make_scratch(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, target / name)


def scratch_env(tree: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["XDG_CACHE_HOME"] = str(cache)        # compiled templates of this run only
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)       # when run from inside a pytest (the CI smoke test)
    return env


def check_imported_from(tree: Path, env: dict[str, str]) -> None:
    """The scratch copy's engine must be the one imported, not the checkout's editable install."""
    out = subprocess.run([sys.executable, "-c", "import engine; print(engine.__file__)"], cwd=tree, env=env,
                         capture_output=True, text=True)
    imported = Path(out.stdout.strip() or "?").resolve()
    if not imported.is_relative_to(tree.resolve()):
        raise ListError(f"the scratch copy's engine is not the one imported: {imported} ({out.stderr.strip()})")


def run_tests(tree: Path, env: dict[str, str], tests: tuple[str, ...], timeout: float) -> tuple[str, str]:
    """(passed | failed | timeout | error, last lines of output). "error": no test failed, but one could
    not run (a fixture, an import or the engine's install broke): the mutation broke the build,
    which says nothing about the tests."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    # Its own process group: on a time-out, SIGINT lets pytest tear its PostgreSQL cluster down.
    child = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        output, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(child)
        return "timeout", f"timed out after {timeout:g}s"
    lines = [line for line in output.splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    if child.returncode == 0:
        return "passed", summary
    if " failed" in summary:
        return "failed", "\n".join(lines[-15:])
    return "error", "\n".join(lines[-15:])


def _stop(child: subprocess.Popen) -> None:
    """End a test run that hangs: SIGINT to its group (pytest runs its teardown), then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.communicate(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run(mutations: list[Mutation], baseline: bool = True, timeout: float = TIMEOUT_S,
        echo=lambda line: print(line, flush=True), verbose: bool = False) -> tuple[list[Outcome], float | None]:
    """Run each mutation alone; returns the outcomes and the baseline's seconds (None: skipped)."""
    check_applicable(mutations)
    with tempfile.TemporaryDirectory(prefix="rulesctl-mutate-") as work:
        tree, cache = Path(work) / "tree", Path(work) / "cache"
        make_scratch(tree)
        env = scratch_env(tree, cache)
        check_imported_from(tree, env)
        baseline_s = None
        if baseline:
            tests = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
            started = time.monotonic()
            status, output = run_tests(tree, env, tests, timeout)
            baseline_s = time.monotonic() - started
            if status != "passed":
                raise ListError(f"the selected tests fail on the unmutated tree; fix that first:\n{output}")
            echo(f"baseline: {len(tests)} test selection(s) pass unmutated ({baseline_s:.0f}s)")
        outcomes = []
        for m in mutations:
            make_scratch(tree)
            path = tree / m.file
            text = path.read_text()
            if text.count(m.original) != 1:          # the file changed since the list was checked
                raise ListError(f"{m.id}: the original text is no longer in {m.file} exactly once")
            path.write_text(text.replace(m.original, m.replacement, 1))
            started = time.monotonic()
            status, output = run_tests(tree, env, m.tests, timeout)
            result = {"passed": "SURVIVED", "failed": "killed", "timeout": "timeout", "error": "BROKEN"}[status]
            outcome = Outcome(m, result, time.monotonic() - started, output)
            outcomes.append(outcome)
            echo(f"{m.id:<48} {m.tag:<10} {result:<9} {outcome.seconds:6.1f}s")
            if result == "SURVIVED":
                echo(f"    {m.why}\n    expected to be killed by: {' '.join(m.tests)}")
            elif result == "BROKEN" or verbose:
                echo("    " + output.replace("\n", "\n    "))
        return outcomes, baseline_s


def select(mutations: list[Mutation], tags: list[str], only: list[str], ci: bool = False) -> list[Mutation]:
    unknown = [t for t in tags if t not in TAGS] + [i for i in only if i not in {m.id for m in mutations}]
    if unknown:
        raise ListError(f"unknown tag or id: {', '.join(unknown)} (tags: {', '.join(TAGS)}; ids: --list)")
    return [m for m in mutations if (not tags or m.tag in tags) and (not only or m.id in only) and (m.ci or not ci)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", action="append", default=[], help="comma-separated tags: " + ", ".join(TAGS))
    parser.add_argument("--only", action="append", default=[], help="a mutation id (repeatable)")
    parser.add_argument("--ci", action="store_true", help="only the fast subset marked ci = true (CI runs it)")
    parser.add_argument("--list", action="store_true", help="print the selected mutations and check they still apply")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unmutated tree")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per mutation's test run")
    parser.add_argument("-v", "--verbose", action="store_true", help="show how each mutation's tests failed")
    parser.add_argument("--mutations", type=Path, default=MUTATIONS, help="another list (an experiment)")
    args = parser.parse_args(argv)
    tags = [t.strip() for arg in args.tag for t in arg.split(",") if t.strip()]
    try:
        selected = select(load(args.mutations), tags, args.only, args.ci)
        if args.list:
            check_applicable(selected)
            for m in selected:
                print(f"{m.id:<48} {m.tag:<10} {m.file}\n    {m.why}\n    killed by: {' '.join(m.tests)}")
            print(f"{len(selected)} mutation(s)")
            return 0
        if not selected:
            print("no mutation selected", file=sys.stderr)
            return 2
        started = time.monotonic()
        outcomes, baseline_s = run(selected, baseline=not args.no_baseline, timeout=args.timeout,
                                   verbose=args.verbose)
    except ListError as exc:
        print(f"scripts/mutate: {exc}", file=sys.stderr)
        return 2
    survived = [o for o in outcomes if not o.killed]
    total = time.monotonic() - started
    print()
    print(f"{'id':<48} {'tag':<10} {'result':<9} {'seconds':>7}")
    for o in outcomes:
        print(f"{o.mutation.id:<48} {o.mutation.tag:<10} {o.result:<9} {o.seconds:7.1f}")
    broken = [o for o in survived if o.result == "BROKEN"]
    print(f"\n{len(outcomes) - len(survived)} killed, {len(survived) - len(broken)} survived, {len(broken)} broken "
          f"(the tests errored: fix the mutation), of {len(outcomes)}; "
          f"{total:.0f}s in all" + (f" (baseline {baseline_s:.0f}s)" if baseline_s is not None else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
