"""Package boundaries of the wiring: what ``peers/``, ``trust/`` and ``api/`` may import.

- ``peers/`` (outbound delivery) reaches ``federation`` through ``core``,
  ``store``, ``wire``, ``runtime`` and the application packages' public
  names (``from federation.trust import RosterHolder``), never ``api``,
  ``node`` or a client.
- ``trust/`` imports no grpc, protobuf or generated code: roster sync asks a
  client object in ``peers`` to make its calls.
- ``api/`` reaches storage only through the application packages.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ("intake", "trust", "cases", "status", "liaison")
#: Layers below the application that ``peers`` may import module by module.
PEERS_MAY_USE = ("federation.core", "federation.store", "federation.wire", "federation.runtime")


def _imports(source: str) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
    return found


def _public(package: str) -> frozenset[str]:
    return frozenset(importlib.import_module(f"federation.{package}").__all__)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def peers_violations(source: str) -> list[str]:
    """Imports of ``federation`` that ``peers/`` may not make."""
    bad = []
    for line, module, names in _imports(source):
        if not _within(module, "federation") or any(_within(module, p) for p in PEERS_MAY_USE):
            continue
        package = module.removeprefix("federation.")
        if package in APPLICATION and names and set(names) <= _public(package):
            continue
        bad.append(f"{line}: {module} {names}")
    return bad


def forbidden(source: str, prefixes: tuple[str, ...]) -> list[str]:
    """Imports of any module under ``prefixes``."""
    return [
        f"{line}: {module}"
        for line, module, _ in _imports(source)
        if any(_within(module, p) for p in prefixes)
    ]


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", _modules("peers"), ids=_id)
def test_peers_use_federation_through_its_public_names(path: Path) -> None:
    assert peers_violations(path.read_text()) == []


@pytest.mark.parametrize("path", _modules("federation/trust"), ids=_id)
def test_trust_makes_no_grpc_calls(path: Path) -> None:
    assert forbidden(path.read_text(), ("grpc", "hfp", "google.protobuf")) == []


@pytest.mark.parametrize("path", _modules("federation/api"), ids=_id)
def test_api_reaches_storage_through_the_application(path: Path) -> None:
    assert forbidden(path.read_text(), ("federation.store",)) == []


@pytest.mark.parametrize("package", APPLICATION)
def test_every_public_name_exists(package: str) -> None:
    module = importlib.import_module(f"federation.{package}")
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


@pytest.mark.parametrize(
    "source",
    [
        "from federation.api.auth import DEV_MEMBER_METADATA",
        "from federation.trust.holder import RosterHolder",
        "from federation.trust import _keys_of",
        "import federation.node.server",
        "from federation.cli.output import printable",
    ],
)
def test_the_peers_check_catches_forbidden_imports(source: str) -> None:
    assert peers_violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "from federation.trust import RosterCallError, RosterHolder",
        "from federation.store import outbox as store",
        "from federation.runtime import faultpoints",
        "from federation.wire.convert import decode_envelope",
        "import grpc",
    ],
)
def test_the_peers_check_allows_the_allowed(source: str) -> None:
    assert peers_violations(source) == []
