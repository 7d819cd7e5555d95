"""The documentation stays true: docs/http-api.md is what scripts/http-api-docs writes from
the app's OpenAPI document today, every relative link in README.md and docs/*.md names a
file that exists, and the README stays a front page. Database-free."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from pathlib import Path

import pytest


def _repo_root() -> Path:
    """The checkout: the nearest parent holding pyproject.toml (this module may live in a
    subfolder of tests/)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError("no pyproject.toml above " + __file__)


ROOT = _repo_root()
README_MAX_BYTES = 12_000


def _load_script(path: Path):
    loader = importlib.machinery.SourceFileLoader("http_api_docs", str(path))
    spec = importlib.util.spec_from_loader("http_api_docs", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_http_api_doc_is_fresh():
    script = _load_script(ROOT / "scripts" / "http-api-docs")
    committed = (ROOT / "docs" / "http-api.md").read_text()
    assert committed == script.render(), "docs/http-api.md is stale: run scripts/http-api-docs"


# [text](target) and [text]: target, outside code spans and fenced blocks.
_INLINE_LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _relative_links(text: str) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", text))
    targets = [a or b for a, b in _INLINE_LINK.findall(text)] + _REFERENCE_LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path):
    missing = []
    for target in _relative_links(document.read_text()):
        path = target.split("#", 1)[0]
        if not (document.parent / path).exists():
            missing.append(target)
    assert not missing, f"{document.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_link_finder_sees_links():
    text = "see [a](docs/a.md#x), ![p](img.png), `[not](code.md)`, [web](https://x.org), [in](#here)\n[r]: ref.md\n"
    assert _relative_links(text) == ["docs/a.md#x", "img.png", "ref.md"]


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= README_MAX_BYTES, f"README.md is {len(readme)} bytes; move detail to docs/"
    text = readme.decode()
    assert "scripts/test" in text                       # CI runs it; the Tests section names it
    assert "scripts/demo" in text
