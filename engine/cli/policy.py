"""`rulesctl validate` and `rulesctl render`: the policy on its own, no database."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.cli.common import build_or_exit, echo_problems, rules_option
from engine.errors import PolicyError


@click.command()
@rules_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-errors", type=int, default=50, show_default=True, help="Text output shows at most this many.")
def validate(rules_dir: Path, fmt: str, max_errors: int) -> None:
    """Check the policy: JSON Schema plus semantic checks, every problem at once.

    Exits 0 when the policy is valid, 1 otherwise.
    """
    from engine.policy.validate import validate_directory
    try:
        policy = validate_directory(rules_dir)
    except PolicyError as exc:
        if fmt == "json":
            click.echo(json.dumps({"valid": False, "problems": [p.as_dict() for p in exc.problems]}, indent=2))
        else:
            echo_problems(exc.problems, max_errors)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "problems": [], "policy_hash": policy.policy_hash}, indent=2))
    else:
        click.echo(f"{rules_dir}: valid — {len(policy.units)} units, {len(policy.skills)} skills, "
                   f"{len(policy.calendars)} calendars, {len(policy.sla_targets)} SLA targets, "
                   f"{len(policy.rules)} assignment rules, {len(policy.chains)} escalation chains, "
                   f"{len(policy.jobs)} jobs")


@click.command()
@rules_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("generated"), show_default=True,
              help="Where the rendered SQL goes.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 and name every stale file if generated/ "
                                             "differs from a fresh render.")
def render(rules_dir: Path, out_dir: Path, check: bool) -> None:
    """Render the policy into SQL files under generated/ (deterministic: same input, same bytes)."""
    from engine.compiler.generate import generated_files, stale_files, write_generated
    _, objects = build_or_exit(rules_dir, parse_check=True)
    files = generated_files(objects)
    if check:
        stale = stale_files(files, out_dir)
        if stale:
            for path in stale:
                state = "missing" if path in files and not (out_dir / path).exists() else (
                    "no longer produced" if path not in files else "stale")
                click.echo(f"{out_dir / path}: {state}", err=True)
            click.echo(f"{len(stale)} file(s) in {out_dir}/ do not match rules/ and templates/; run `rulesctl render`",
                       err=True)
            sys.exit(1)
        click.echo(f"{out_dir}/ is up to date ({len(files)} files, {len(objects)} objects)")
        return
    changed = write_generated(files, out_dir)
    click.echo(f"rendered {len(objects)} objects into {len(files)} files under {out_dir}/; "
               f"{len(changed)} changed" + (": " + ", ".join(changed) if 0 < len(changed) <= 10 else ""))
