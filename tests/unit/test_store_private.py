"""The driver layer and the ORM schema are private to ``federation/store/``.

Code outside ``store/`` (the application packages, the API, the clients,
``peers/``, the benchmarks) reads and writes tables through the repository
functions of ``store/``, which return storage records: it imports neither
``federation.store._driver`` (raw driver cursors, multi-row inserts) nor
``federation.store.models`` (the ORM row classes). Tests may use both, to set
up and inspect storage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "federation" / "store"
PRIVATE = ("federation.store._driver", "federation.store.models")


def _imported(node: ast.AST) -> list[str]:
    """Module names an import statement brings in (``from a import b`` gives
    both ``a`` and ``a.b``, which may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def violations(source: str, filename: str) -> list[str]:
    """Every import of a private storage module in ``source``, as ``file:line name``."""
    return [
        f"{filename}:{node.lineno} {name}"
        for node in ast.walk(ast.parse(source, filename))
        for name in _imported(node)
        if name in PRIVATE
    ]


def outside_store() -> list[Path]:
    """Every module of the node, its clients and benchmarks outside store/."""
    roots = [ROOT / name for name in ("federation", "peers", "crypto", "bench", "scripts")]
    return [
        path
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if STORE not in path.parents and ".work" not in path.parts
    ]


def test_there_are_modules_to_check() -> None:
    assert len(outside_store()) >= 100


@pytest.mark.parametrize("path", outside_store(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_reaches_storage_through_repositories(path: Path) -> None:
    bad = violations(path.read_text(), str(path.relative_to(ROOT)))
    assert not bad, "only federation/store/ may import its driver layer and ORM rows:\n" + (
        "\n".join(bad)
    )


@pytest.mark.parametrize(
    "source",
    [
        "from federation.store._driver import insert_many",
        "from federation.store.models import CaseRow",
        "import federation.store.models",
        "from federation.store import _driver",
        "from federation.store import models as m",
    ],
)
def test_a_private_import_is_found(source: str) -> None:
    assert violations(source, "x.py")


def test_repository_imports_are_allowed() -> None:
    assert not violations("from federation.store import cases\nimport federation.store", "x.py")
