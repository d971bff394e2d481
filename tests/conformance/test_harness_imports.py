"""The harness is black-box: ``conformance/`` imports nothing of the node.

Every module under ``conformance/`` is parsed with ``ast``; an import (or an
``__import__``/``importlib.import_module`` call with a literal name) of
anything but the standard library and the allow-list fails this test.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "conformance"
ALLOWED = frozenset({"conformance", "hfp", "grpc", "grpc_health", "nacl", "cryptography", "click"})
#: The node's own packages: named explicitly so the error says what went wrong.
NODE_PACKAGES = frozenset({"federation", "peers", "crypto", "migrations"})


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _allowed(name: str) -> bool:
    top = _top(name)
    return top in ALLOWED or (top in sys.stdlib_module_names and top not in NODE_PACKAGES)


def violations(source: str, filename: str) -> list[str]:
    """Every disallowed import in ``source``, as ``file:line name``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            dynamic = (isinstance(func, ast.Name) and func.id == "__import__") or (
                isinstance(func, ast.Attribute) and func.attr == "import_module"
            )
            if dynamic and node.args and isinstance(node.args[0], ast.Constant):
                names = [str(node.args[0].value)]
        found += [f"{filename}:{node.lineno} {name}" for name in names if not _allowed(name)]
    return found


def harness_modules() -> list[Path]:
    return sorted(HARNESS.rglob("*.py"))


def test_harness_has_modules() -> None:
    assert len(harness_modules()) >= 10


@pytest.mark.parametrize("path", harness_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_the_allow_list(path: Path) -> None:
    bad = violations(path.read_text(), str(path.relative_to(ROOT)))
    assert not bad, "conformance/ must not import outside the allow-list:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "import federation",
        "from federation.core import limits",
        "from crypto.dsse import pae",
        "import peers.outbox as o",
        "def f():\n    from federation.intake.delivery import DeliveryService",
        "import google.protobuf",
        "__import__('federation.cli')",
        "importlib.import_module('crypto.keys')",
        "import sqlalchemy",
    ],
)
def test_the_check_catches_forbidden_imports(source: str) -> None:
    assert violations(source, "example.py")


@pytest.mark.parametrize(
    "source",
    [
        "import json",
        "from hfp.v1 import envelope_pb2",
        "from grpc_health.v1 import health_pb2",
        "import nacl.signing",
        "from cryptography import x509",
        "from conformance.keys import Ed25519Key",
        "from . import keys",
        "from __future__ import annotations",
    ],
)
def test_the_check_allows_the_allow_list(source: str) -> None:
    assert violations(source, "example.py") == []
