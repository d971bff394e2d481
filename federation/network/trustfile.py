"""``trust.toml``: the root public keys, the threshold and the CA certificate.

The same values a node pins in its ``[trust]`` section; the secretariat
writes it once the root key holders have published their public keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from crypto.errors import KeyFormatError, ThresholdError
from crypto.keys import public_key_from_hex
from crypto.threshold import TrustAnchor
from federation.network.errors import OperationsError
from federation.network.tomlfile import dumps, read_toml, validate

TRUST_FILE = "trust.toml"


class _TrustModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    root_public_keys: list[str] = Field(min_length=1)
    threshold: int = Field(ge=1)
    ca_cert: str


@dataclass(frozen=True)
class TrustFile:
    """A parsed trust file; ``ca_cert`` resolved against the file's directory."""

    root_public_keys: tuple[str, ...]
    threshold: int
    ca_cert: Path

    @property
    def anchor(self) -> TrustAnchor:
        """The pinned keys and threshold, as signatures are checked against them."""
        return anchor_for(self.root_public_keys, self.threshold)

    @classmethod
    def load(cls, path: Path) -> TrustFile:
        """Read and check a trust file (keys well formed, threshold reachable)."""
        model = validate(_TrustModel, read_toml(path), path)
        trust = cls(tuple(model.root_public_keys), model.threshold, path.parent / model.ca_cert)
        trust.anchor  # noqa: B018 (checks the keys and the threshold)
        return trust

    def save(self, path: Path) -> None:
        """Write the trust file (``ca_cert`` relative to its directory)."""
        ca = os.path.relpath(self.ca_cert.resolve(), path.parent.resolve())
        table = {
            "root_public_keys": list(self.root_public_keys),
            "threshold": self.threshold,
            "ca_cert": ca,
        }
        path.write_text(dumps(table, "The network's trust anchor: copy it to every node."))


def anchor_for(root_public_keys: tuple[str, ...] | list[str], threshold: int) -> TrustAnchor:
    """A trust anchor from hex public keys, refusing duplicates and bad keys."""
    if len(set(root_public_keys)) != len(root_public_keys):
        raise OperationsError("a root public key is listed twice")
    try:
        keys = [public_key_from_hex(k) for k in root_public_keys]
        return TrustAnchor.from_public_keys(keys, threshold)
    except (KeyFormatError, ThresholdError) as exc:
        raise OperationsError(f"trust anchor: {exc}") from exc
