"""The maps of the code (docs/architecture.md, the README's table) match the tree.

Every path the architecture page or the README's "What is here" table names
must exist, and the README's table must list every package of the node, so
a move that forgets its documentation fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A backticked repository path, e.g. ``federation/cases/`` or ``peers/outbox.py``.
PATH = re.compile(
    r"`((?:federation|peers|crypto|conformance|proto|hfp|bench|docs|migrations|tests|deploy)"
    r"(?:/[A-Za-z0-9_.*-]*)*)`"
)
#: ``(`a.py`, `b.py`)`` after a package path names files inside it.
INSIDE = re.compile(r"`((?:federation|peers)/[a-z_/]+/)` \(([^)]*)\)")


def named_paths(text: str) -> set[str]:
    """Every repository path the text names, files listed inside a package included."""
    found = set(PATH.findall(text))
    for package, files in INSIDE.findall(text):
        found |= {package + name for name in re.findall(r"`([a-z_]+\.py)`", files)}
    return found


def _exists(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def test_architecture_page_names_only_what_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = named_paths(text)
    assert len(paths) >= 40
    missing = sorted(p for p in paths if not _exists(p))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_readme_table_lists_every_package() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## What is here") : text.index("## The command line")]
    missing = sorted(p for p in named_paths(table) if not _exists(p))
    assert not missing, f"README's table names paths that do not exist: {missing}"
    packages = {f"federation/{p.parent.name}/" for p in (ROOT / "federation").glob("*/__init__.py")}
    unlisted = sorted(packages - named_paths(table))
    assert not unlisted, f"README's table does not list: {unlisted}"


def test_the_map_check_notices_a_missing_path() -> None:
    assert named_paths("see `federation/cases/` (`filing.py`, `nowhere.py`)") == {
        "federation/cases/",
        "federation/cases/filing.py",
        "federation/cases/nowhere.py",
    }
    assert not _exists("federation/cases/nowhere.py")
