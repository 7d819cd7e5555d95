"""The pipeline in one place, for the CLI and the tests: rules/ -> Policy -> ordered objects."""

from __future__ import annotations

from pathlib import Path

from .model import Policy
from .objects import SqlObject
from .order import install_order
from .render import render_policy
from .validate import validate_directory

# The engine's own templates: the fixed layout keeps them beside the package.
DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def build(rules_dir: Path, templates_dir: Path = DEFAULT_TEMPLATES,
          parse_check: bool = True) -> tuple[Policy, list[SqlObject]]:
    """Validate the policy and render it into objects in install order (PolicyError / RenderError)."""
    policy = validate_directory(Path(rules_dir))
    return policy, install_order(render_policy(policy, Path(templates_dir), parse_check=parse_check))
