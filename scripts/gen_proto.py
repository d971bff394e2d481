#!/usr/bin/env python3
"""Regenerate the Python code for the HFP v1 protos into ``hfp/``.

Run from anywhere: ``python scripts/gen_proto.py`` (``make proto``). The output
is deterministic for the pinned grpcio-tools and mypy-protobuf versions in
pyproject.toml; ``tests/test_generated_code.py`` fails when the committed
files differ from a fresh generation.

Usage: gen_proto.py [OUT_DIR]   (default: the repository root)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGE_INIT = (
    '"""Generated HFP v1 protobuf and gRPC code. Do not edit: run scripts/gen_proto.py."""\n'
)


def _plugin(name: str) -> str:
    """Find a protoc plugin installed next to the running interpreter."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return found


def generate(out_dir: Path) -> None:
    """Generate messages, gRPC stubs and type stubs for every proto file."""
    target = out_dir / "hfp"
    if target.exists():
        shutil.rmtree(target)
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("hfp/v1/*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in (target, target / "v1"):
        (package / "__init__.py").write_text(PACKAGE_INIT)
    (target / "py.typed").write_text("")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
