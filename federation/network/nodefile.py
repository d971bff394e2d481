"""The ``node.toml`` that ``hfed node init`` writes for ``hfed serve``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
