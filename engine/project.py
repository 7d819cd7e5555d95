"""The pipeline in one place, for the CLI and the tests: rules/ -> Policy -> ordered objects."""

from __future__ import annotations

from pathlib import Path

from engine.compiler.objects import SqlObject
from engine.compiler.order import install_order
from engine.compiler.render import render_policy
from engine.migrate.kinds import install_rank
from engine.policy.model import Policy
from engine.policy.validate import validate_directory


def _packaged_templates() -> Path:
    """The engine's own templates. A wheel ships them inside the package (engine/templates/,
    mapped from templates/ by pyproject.toml); a checkout, and an editable install of it, keeps
    them at the top of the tree. Either way rulesctl runs from any directory."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "functions").is_dir():
            return candidate
    raise RuntimeError(f"rulesctl is installed without its templates (looked in {package}): reinstall it")


DEFAULT_TEMPLATES = _packaged_templates()


def build(rules_dir: Path, templates_dir: Path = DEFAULT_TEMPLATES,
          parse_check: bool = True) -> tuple[Policy, list[SqlObject]]:
    """Validate the policy and render it into objects in install order (PolicyError / RenderError)."""
    policy = validate_directory(Path(rules_dir))
    return policy, install_order(render_policy(policy, Path(templates_dir), parse_check=parse_check),
                                 install_rank)
