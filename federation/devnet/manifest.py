"""The test network manifest (DIR/manifest.json), read and written in one place."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: every CLI command given --devnet reads
    # the manifest, and only a few need its keys (the crypto libraries are slow to load)
    from crypto.threshold import TrustAnchor
    from federation.core.roster import Roster

MANIFEST = "manifest.json"


class ManifestError(ValueError):
    """The directory holds no usable test network."""


@dataclass(frozen=True)
class MemberEntry:
    """One member of the test network. Paths are relative to the network dir."""

    role: str
    jurisdictions: list[str]
    endpoint: str
    runs_node: bool
    tls_cert: str
    tls_key: str
    signing_key: str
    key_id: str
    display_name: str = ""
    #: Node configuration file (members that run a node only).
    config: str = ""
    #: host:port of the node's Prometheus metrics endpoint (nodes only).
    metrics: str = ""


@dataclass(frozen=True)
class Manifest:
    """The whole network description, as the protocol's section 9 lays it out."""

    root_public_keys: list[str]
    root_threshold: int
    ca_cert: str
    roster: str
    members: dict[str, MemberEntry] = field(default_factory=dict)

    def trust_anchor(self) -> TrustAnchor:
        """The root keys and threshold every node of the network pins."""
        from crypto.keys import public_key_from_hex  # noqa: PLC0415 (see the imports)
        from crypto.threshold import TrustAnchor  # noqa: PLC0415

        keys = [public_key_from_hex(k) for k in self.root_public_keys]
        return TrustAnchor.from_public_keys(keys, self.root_threshold)

    def verified_roster(self, directory: Path) -> Roster:
        """The network's bootstrap roster (DIR/roster.bin), checked against the root keys."""
        from federation.trust import verify_signed_roster  # noqa: PLC0415 (see the imports)

        signed = (directory / self.roster).read_bytes()
        return verify_signed_roster(signed, self.trust_anchor()).roster

    def nodes(self) -> dict[str, MemberEntry]:
        """Members that run a node, by id."""
        return {k: v for k, v in self.members.items() if v.runs_node}

    def save(self, directory: Path) -> None:
        """Write DIR/manifest.json."""
        (directory / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Read DIR/manifest.json, with a clear error when absent or broken."""
        path = directory / MANIFEST
        try:
            raw = json.loads(path.read_text())
            members = {k: MemberEntry(**v) for k, v in raw.pop("members").items()}
            return cls(members=members, **raw)
        except FileNotFoundError:
            raise ManifestError(
                f"{directory} is not a test network (no {MANIFEST}); "
                f"run `hfed devnet init {directory}`"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ManifestError(f"{path} is not a valid manifest: {exc}") from exc
