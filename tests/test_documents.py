"""The project's documents stand in the repository (issue 14): every relative link in README.md and docs/*.md
resolves to a file or folder of the repository, and no document points outside it (`../shared/...` once did)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR).resolve()
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
# What a run makes and git ignores (`./staticfiles`, collectstatic's default) is named, never committed.
GENERATED = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()}


def _fenced_code_removed(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _relative_links(text: str) -> list[str]:
    links = LINK.findall(_fenced_code_removed(text))
    return [t for t in links if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t)]


def _named_paths(text: str) -> list[str]:
    """Paths a document names in code spans: ones that climb out (`../x`) or start at a top-level entry."""
    names = []
    for span in CODE_SPAN.findall(text):
        path = span.split("::")[0].split("#")[0]  # a test's node id, a section
        if "/" not in path or "://" in path or path.startswith("/"):
            continue
        if path.removeprefix("./").split("/")[0] in GENERATED:
            continue
        if path.startswith(("../", "./")) or path.split("/")[0] in TOP_LEVEL:
            names.append(path)
    return names


def _resolves_inside(document: Path, target: str) -> Path | None:
    path = (document.parent / target.split("#")[0]).resolve()
    return path if path.is_relative_to(ROOT) and path.exists() else None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_of_the_repository(document: Path) -> None:
    broken = [t for t in _relative_links(document.read_text()) if _resolves_inside(document, t) is None]
    assert not broken, f"{document.relative_to(ROOT)} links to what is not in the repository: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_document_names_is_in_the_repository(document: Path) -> None:
    # paths in code spans are written from the repository's root in the README and docs alike
    broken = [
        path
        for path in _named_paths(document.read_text())
        if not (ROOT / path).resolve().is_relative_to(ROOT) or not (ROOT / path).exists()
    ]
    assert not broken, f"{document.relative_to(ROOT)} names paths that are not in the repository: {broken}"


def test_the_checks_see_a_link_outside_and_a_missing_file(tmp_path: Path) -> None:
    text = "See [design](../shared/ARCHITECTURE.md), [rules](docs/rules.md), [web](https://example.com), [here](#x)."
    assert _relative_links(text) == ["../shared/ARCHITECTURE.md", "docs/rules.md"]
    assert _resolves_inside(ROOT / "README.md", "../shared/ARCHITECTURE.md") is None
    assert _resolves_inside(ROOT / "README.md", "docs/rules.md") is not None
    assert _resolves_inside(ROOT / "README.md", "docs/nothing-here.md") is None
    named = "In `../shared/ARCHITECTURE.md`; `accounts/risk.py::f`; `/api/v1/`; `./staticfiles`; `redis://h/0`."
    assert _named_paths(named) == ["../shared/ARCHITECTURE.md", "accounts/risk.py"]
