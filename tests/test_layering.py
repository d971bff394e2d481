"""The layers of the node import only what docs/architecture.md allows them.

Every module under ``federation/`` and ``peers/`` is parsed with ``ast`` and
each import (at any depth, ``TYPE_CHECKING`` blocks included: they are still
dependencies) is checked against the rules below. A module's layer is its
package: ``federation/cases/filing.py`` is in ``cases``, ``peers/outbox.py``
in ``peers``.

The rules, in words:

- ``core`` is pure: the protocol's rules and values, nothing of gRPC,
  protobuf, SQLAlchemy, structlog or the generated ``hfp`` code, and of our
  own code only ``core`` and ``crypto``.
- ``store`` (repositories) builds on ``core`` only, and its driver layer
  (``store/_driver.py``) and ORM rows (``store/models.py``) are private to
  it: everything else, tools included, calls repository functions.
- the application packages (``intake``, ``trust``, ``cases``, ``status``,
  ``liaison``) use ``core``, ``store``, ``wire``, ``runtime`` and the
  application packages below them, never gRPC or generated code.
- ``api`` (gRPC servicers) reaches storage only through the application
  packages: it never imports ``store``.
- ``peers`` (outbound delivery) uses ``core``, ``store``, ``wire``,
  ``runtime`` and application packages by their public names only (imported
  from the package, not from its modules), and nothing in the node imports
  ``peers`` but ``node`` (the composition root) and the clients.
  Every name a package's ``__all__`` promises exists.
- ``network`` (forming and operating a network: requests, the roster
  source, signing ceremonies) uses ``core`` and ``wire`` only: no storage,
  no gRPC; the ``hfed`` operator commands in ``cli`` drive it.
- ``console`` (the analysts' web console) is a thin client of the node's API:
  ``core`` values, ``wire``, generated code and the client side of ``cli``;
  never ``store``, ``api``, ``node`` or the application packages.
- generated ``hfp`` code appears only in ``wire``, ``api``, ``peers``, the tools and the
  clients (``cli``, ``console``, ``devnet``).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Our own top-level packages (anything else is the standard library or a dependency).
OURS = frozenset({"federation", "peers", "crypto", "hfp", "conformance", "migrations"})
APPLICATION = ("intake", "trust", "cases", "status", "liaison", "oversight")
#: Layers of ours that every layer may import.
SHARED = frozenset({"errors", "crypto"})

#: For each layer, the layers of ours it may import (besides itself and SHARED).
MAY_USE: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "store": frozenset({"core", "migrations"}),
    "wire": frozenset({"core", "hfp"}),
    "runtime": frozenset({"core", "store"}),
    "trust": frozenset({"core", "store", "wire", "runtime"}),
    "status": frozenset({"core", "store", "wire", "runtime"}),
    "cases": frozenset({"core", "store", "wire", "runtime", "status"}),
    "liaison": frozenset({"core", "store", "wire", "runtime", "status", "cases", "trust"}),
    "intake": frozenset({"core", "store", "wire", "runtime", "status", "cases", "trust"}),
    "oversight": frozenset({"core", "store", "wire", "runtime"}),
    "network": frozenset({"core", "wire"}),
    "api": frozenset({"core", "wire", "runtime", "hfp", *APPLICATION}),
    "peers": frozenset({"core", "store", "wire", "runtime", "hfp", *APPLICATION}),
    # A thin client of the node's API: the client side of the CLI (cli.connect)
    # and the wire values, never the node's storage or its rules' packages.
    "console": frozenset({"core", "wire", "hfp", "cli"}),
}
#: Third-party packages a layer must not import.
FORBIDDEN_THIRD_PARTY: dict[str, frozenset[str]] = {
    "core": frozenset({"grpc", "grpc_status", "google", "sqlalchemy", "structlog", "alembic"}),
    "store": frozenset({"grpc", "grpc_status", "google"}),
    **{layer: frozenset({"grpc", "grpc_status", "google"}) for layer in APPLICATION},
    "network": frozenset({"grpc", "grpc_status", "google", "sqlalchemy"}),
}
#: Layers whose own imports are not restricted: the composition root, the
#: clients and the tools (bench, scripts), except for PRIVATE_TO_STORE.
UNRESTRICTED = frozenset({"node", "cli", "devnet", "bench", "scripts"})
#: Modules only ``store`` itself imports: raw driver cursors and the ORM rows.
PRIVATE_TO_STORE = frozenset({"federation.store._driver", "federation.store.models"})
#: Where generated code may appear (the composition root registers servicers through ``api``).
GENERATED_CODE_USERS = frozenset(
    {"wire", "api", "peers", "cli", "console", "devnet", "bench", "scripts"}
)


def layer_of(module: str) -> str:
    """The layer of a dotted module name of ours (``federation.cases.filing`` -> ``cases``)."""
    parts = module.split(".")
    if parts[0] == "federation":
        return parts[1] if len(parts) > 1 else "federation"
    return parts[0]


def imports(source: str, filename: str) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, dotted module, names imported from it) of every absolute import."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "federation":
                # ``from federation import x`` names a package, not a value.
                for alias in node.names:
                    yield node.lineno, f"federation.{alias.name}", ()
            else:
                yield node.lineno, node.module, tuple(alias.name for alias in node.names)


def _private_to_store(name: str, names: tuple[str, ...]) -> bool:
    # ``from federation.store import models`` imports the module too.
    return any(m in PRIVATE_TO_STORE for m in (name, *(f"{name}.{n}" for n in names)))


def _public_names(package: str) -> frozenset[str]:
    return frozenset(importlib.import_module(f"federation.{package}").__all__)


def _by_public_names(package: str, name: str, names: tuple[str, ...]) -> bool:
    return name == f"federation.{package}" and set(names) <= _public_names(package)


def _problem(layer: str, name: str, names: tuple[str, ...]) -> str | None:
    if layer != "store" and _private_to_store(name, names):
        return "only store/ uses its driver layer and ORM rows; call a repository function"
    top = name.split(".", maxsplit=1)[0]
    if top not in OURS:
        if top in FORBIDDEN_THIRD_PARTY.get(layer, frozenset()):
            return f"{layer} must not import {top}"
        return None
    target = layer_of(name)
    if target == "hfp" and layer not in GENERATED_CODE_USERS:
        return f"{layer} must not import generated code (hfp)"
    if layer in UNRESTRICTED or target in (layer, *SHARED) or target == "federation":
        return None
    if layer not in MAY_USE:
        return f"{layer} has no rule; add one to MAY_USE"
    if target not in MAY_USE[layer]:
        return f"{layer} may not import {target}"
    if layer == "peers" and target in APPLICATION and not _by_public_names(target, name, names):
        return f"peers uses {target} by its public names (federation.{target}.__all__)"
    return None


def violations(source: str, filename: str, module: str) -> list[str]:
    """Every import in ``source`` (the module ``module``) its layer may not make."""
    layer = layer_of(module)
    found = []
    for line, name, names in imports(source, filename):
        problem = _problem(layer, name, names)
        if problem:
            found.append(f"{filename}:{line} imports {name}: {problem}")
    return found


def node_modules() -> list[Path]:
    """Every module of the node's own packages, and of the tools beside them."""
    roots = [ROOT / name for name in ("federation", "peers", "bench", "scripts")]
    return sorted(p for root in roots for p in root.rglob("*.py") if ".work" not in p.parts)


def module_name(path: Path) -> str:
    """The dotted module name of a file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_package_has_a_rule() -> None:
    layers = {layer_of(module_name(path)) for path in node_modules()}
    known = set(MAY_USE) | UNRESTRICTED | SHARED | {"federation"}
    assert layers <= known, f"packages without a layering rule: {sorted(layers - known)}"
    assert len(node_modules()) >= 100


@pytest.mark.parametrize("package", APPLICATION)
def test_every_public_name_exists(package: str) -> None:
    module = importlib.import_module(f"federation.{package}")
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_the_top_of_federation_holds_packages() -> None:
    plain = sorted(p.name for p in (ROOT / "federation").glob("*.py") if p.name != "__init__.py")
    assert len(plain) <= 2, f"plain modules at the top of federation/: {plain}"


@pytest.mark.parametrize(
    "package",
    sorted(p.parent for p in (ROOT / "federation").glob("*/__init__.py")),
    ids=lambda p: p.name,
)
def test_every_package_says_what_it_owns(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc) > 60, f"federation/{package.name}/__init__.py needs a docstring"


@pytest.mark.parametrize("path", node_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_respects_its_layer(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    bad = violations(path.read_text(encoding="utf-8"), rel, module_name(path))
    assert not bad, "layering broken (see docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("federation.core.routing", "import grpc"),
        ("federation.core.routing", "from sqlalchemy import select"),
        ("federation.core.routing", "import structlog"),
        ("federation.core.routing", "from hfp.v1 import envelope_pb2"),
        ("federation.core.routing", "from federation.store import cases"),
        ("federation.core.routing", "def f():\n    from federation.wire import convert"),
        ("federation.store.cases", "from federation.cases import filing"),
        ("federation.store.cases", "from federation.wire.convert import encode_case"),
        ("federation.api.hotline", "from federation.store.database import Database"),
        ("federation.cases.filing", "from hfp.v1 import case_pb2"),
        ("federation.cases.filing", "import grpc"),
        ("federation.cases.filing", "from federation.api.errors import abort"),
        ("federation.cases.filing", "from peers.outbox import Outbox"),
        ("federation.status.issuing", "from federation.cases.filing import Casebook"),
        ("federation.intake.delivery", "from federation.node.server import start"),
        ("peers.outbox", "from federation.trust.holder import RosterHolder"),
        ("peers.outbox", "from federation.api.auth import DEV_MEMBER_METADATA"),
        ("federation.node.server", "from hfp.v1 import hotline_service_pb2_grpc"),
        ("federation.trust.sync", "from google.protobuf import message"),
        ("peers.outbox", "from federation.trust import _keys_of"),
        ("peers.outbox", "from federation.cli.output import printable"),
        ("federation.network.ceremony", "from federation.trust.holder import RosterHolder"),
        ("federation.network.ceremony", "import grpc"),
        ("federation.cases.queries", "from federation.store._driver import fetch_in"),
        ("federation.cases.queries", "from federation.store.models import CaseRow"),
        ("federation.cli.cases", "from federation.store import models as m"),
        ("bench.ingest", "import federation.store._driver"),
        ("federation.console.app", "from federation.store import cases"),
        ("federation.console.app", "from federation.cases import CaseLookup"),
        ("federation.console.app", "from federation.api.hotline import HotlineServicer"),
        ("federation.console.app", "from federation.node.compose import compose"),
    ],
)
def test_the_check_catches_forbidden_imports(module: str, source: str) -> None:
    assert violations(source, "example.py", module)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("federation.core.routing", "from federation.core.roster import Roster"),
        ("federation.core.routing", "from crypto.dsse import pae"),
        ("federation.store.cases", "from sqlalchemy import select"),
        ("federation.cases.filing", "from federation.status import StatusBook"),
        ("federation.api.hotline", "from federation.cases.queries import CaseQueries"),
        ("federation.api.hotline", "from hfp.v1 import hotline_service_pb2"),
        ("peers.outbox", "from federation.trust import RosterHolder"),
        ("peers.outbox", "from federation.runtime import faultpoints"),
        ("bench.ingest", "from federation.store import cases"),
        ("peers.outbox", "from federation.store import outbox"),
        ("federation.node.server", "from peers.outbox import Outbox"),
        ("federation.cli.cases", "from federation.store.database import Database"),
        ("federation.console.node_client", "from federation.cli.connect import Target"),
        ("federation.console.node_client", "from hfp.v1 import hotline_service_pb2"),
    ],
)
def test_the_check_allows_what_the_rules_allow(module: str, source: str) -> None:
    assert violations(source, "example.py", module) == []
