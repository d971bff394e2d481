"""The ``node.toml`` that ``hfed node init`` writes for ``hfed serve``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.network.errors import OperationsError
from federation.network.parties import SIGNING_KEY, TLS_KEY, relative
from federation.network.tomlfile import dumps
from federation.network.trustfile import TrustFile

NODE_FILE = "node.toml"
DATA_DIR = "data"


@dataclass(frozen=True)
class NodeFiles:
    """Where a node's material lives (any paths; node.toml refers to them relatively)."""

    member_dir: Path
    trust: TrustFile
    roster: Path
    cert: Path


def node_toml(directory: Path, member_id: str, listen: str, files: NodeFiles) -> str:
    """The configuration text of a node in ``directory``."""
    table = {
        "member_id": member_id,
        "listen": listen,
        "database_url": f"sqlite:///{DATA_DIR}/node.db",
    }
    text = dumps(table, "Node configuration written by `hfed node init`; see docs/operations.md.")
    sections: dict[str, dict[str, Any]] = {
        "tls": {
            "cert": relative(files.cert, directory),
            "key": relative(files.member_dir / TLS_KEY, directory),
            "ca_cert": relative(files.trust.ca_cert, directory),
        },
        "signing": {"key": relative(files.member_dir / SIGNING_KEY, directory)},
        "trust": {
            "root_public_keys": list(files.trust.root_public_keys),
            "threshold": files.trust.threshold,
            "roster": relative(files.roster, directory),
        },
    }
    for name, section in sections.items():
        text += f"\n[{name}]\n" + dumps(section)
    return text


def add_signing_key(config: Path, key: Path) -> str:
    """List ``key`` in the ``[signing] keys`` of the node.toml ``config``; the
    path as written (relative to the file when it can be).

    Edited as text, line by line, so the operator's comments and layout
    survive (the standard library cannot write TOML back). Only the single
    ``keys = [...]`` line this writes is replaced; a hand-written multi-line
    list is refused rather than guessed at.
    """
    text = config.read_text(encoding="utf-8")
    signing = tomllib.loads(text).get("signing")
    if not isinstance(signing, dict):
        raise OperationsError(f"{config} has no [signing] section")
    written = relative(key, config.parent)
    keys = [*signing.get("keys", []), written]
    lines = _with_keys(text.splitlines(keepends=True), dumps({"keys": keys}), config)
    updated = "".join(lines)
    if tomllib.loads(updated)["signing"].get("keys") != keys:
        raise OperationsError(f"could not add the key to {config}: edit [signing] keys by hand")
    temporary = config.with_name(config.name + ".new")
    temporary.write_text(updated, encoding="utf-8")
    os.replace(temporary, config)
    return written


def _with_keys(lines: list[str], keys_line: str, config: Path) -> list[str]:
    start = next((i for i, line in enumerate(lines) if line.strip() == "[signing]"), None)
    if start is None:
        raise OperationsError(f"{config}: [signing] must be a plain section header")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    section = [line for line in lines[start + 1 : end] if not _is_keys_line(line, config)]
    return [*lines[: start + 1], keys_line, *section, *lines[end:]]


def _is_keys_line(line: str, config: Path) -> bool:
    name = line.split("=", 1)[0].strip()
    if name != "keys":
        return False
    if not line.rstrip().endswith("]"):
        raise OperationsError(f"{config}: [signing] keys spans lines; add the key by hand")
    return True
