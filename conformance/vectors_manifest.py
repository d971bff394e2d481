"""Versioned vectors: ``conformance-vectors/manifest.json`` and the record of versions.

The vector set carries a version and the SHA-256 of every vector file in
``manifest.json`` (written with the set by ``hfed conformance vectors``).
``versions.json`` is the committed record: for every version ever shipped,
the SHA-256 of its manifest's file list. A vector that changes without a
new version therefore fails twice: the manifest no longer matches the files,
and a regenerated manifest no longer matches the record of its version.
The harness verifies both before it runs and prints the version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Version of the vector set written by ``hfed conformance vectors``. Bump it
#: (and add its line to versions.json) whenever a vector file changes.
VECTORS_VERSION = "1.0"
MANIFEST = "manifest.json"
VERSIONS = "versions.json"
#: Files of the directory that are not vectors.
NOT_VECTORS = frozenset({"README.md", MANIFEST, VERSIONS})
#: Where the shipped set lives (beside the harness package).
SHIPPED = Path(__file__).resolve().parents[1] / "conformance-vectors"


class VectorsError(ValueError):
    """The vector set does not match its manifest or the record of versions."""


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 (hex) of every vector file, by path relative to ``directory``."""
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() not in NOT_VECTORS
    }


def set_digest(files: dict[str, str]) -> str:
    """One digest for a whole file list (what versions.json records)."""
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def manifest_data(directory: Path, version: str = VECTORS_VERSION) -> dict[str, Any]:
    """The manifest of the files now in ``directory``."""
    files = file_digests(directory)
    return {"version": version, "set_sha256": set_digest(files), "files": files}


def write_manifest(directory: Path, version: str = VECTORS_VERSION) -> None:
    """Write ``manifest.json`` for the files now in ``directory``."""
    data = manifest_data(directory, version)
    (directory / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VectorsError(f"{path}: {exc}") from exc


def verify(directory: Path) -> str:
    """The version of the set in ``directory`` after checking it; VectorsError if it
    does not match its manifest, or the manifest does not match the record."""
    manifest = _read_json(directory / MANIFEST)
    version = str(manifest.get("version", ""))
    listed = manifest.get("files", {})
    actual = file_digests(directory)
    changed = sorted(
        name for name in set(listed) | set(actual) if listed.get(name) != actual.get(name)
    )
    if changed:
        raise VectorsError(
            f"vectors {version}: {len(changed)} files differ from {MANIFEST} "
            f"(first: {changed[0]}); regenerate and bump the version"
        )
    record = _read_json(directory / VERSIONS)
    recorded = record.get(version) if isinstance(record, dict) else None
    if recorded != set_digest(actual):
        raise VectorsError(
            f"vectors {version}: the file set is not the one {VERSIONS} records for "
            f"version {version}: a vector changed without a version change"
        )
    return version


def verify_shipped_vectors(directory: Path = SHIPPED) -> str:
    """The shipped set's version (verified), or "none" when it is not installed."""
    if not (directory / MANIFEST).exists():
        return "none"
    return verify(directory)
