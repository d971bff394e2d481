"""The test network manifest (HFP v1 section 9) and channels to its members.

Only what the manifest says is used: paths are relative to the network
directory, every endpoint must be on loopback (the harness never sends
traffic anywhere else), and the root private keys are read from
``DIR/root/root-N.pem`` where the test network keeps them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from conformance.keys import Ed25519Key, KeyFileError

CONFORMANCE_MEMBER = "conformance"
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
LOOPBACK_NAMES = frozenset({"localhost"})


class ManifestError(ValueError):
    """A manifest the harness cannot use; the message says why."""


def is_loopback(endpoint: str) -> bool:
    """True when ``host:port`` names a loopback address."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        return False
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MemberEntry:
    """One member of the manifest."""

    member_id: str
    role: str
    jurisdictions: tuple[str, ...]
    endpoint: str
    runs_node: bool
    tls_cert: str
    tls_key: str
    signing_key: str
    key_id: str


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise ManifestError(f"{where}.{key} must be a string")
    return value


def _member(member_id: str, raw: Any) -> MemberEntry:
    where = f"members.{member_id}"
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} must be an object")
    jurisdictions = raw.get("jurisdictions", [])
    if not isinstance(jurisdictions, list) or not all(isinstance(j, str) for j in jurisdictions):
        raise ManifestError(f"{where}.jurisdictions must be a list of strings")
    return MemberEntry(
        member_id=member_id,
        role=_string(raw, "role", where),
        jurisdictions=tuple(jurisdictions),
        endpoint=_string(raw, "endpoint", where),
        runs_node=bool(raw.get("runs_node", False)),
        tls_cert=_string(raw, "tls_cert", where),
        tls_key=_string(raw, "tls_key", where),
        signing_key=_string(raw, "signing_key", where),
        key_id=_string(raw, "key_id", where),
    )


@dataclass(frozen=True)
class TlsIdentity:
    """PEM material for mutual TLS: the CA to trust, a certificate and its key."""

    ca_cert: bytes
    cert: bytes
    key: bytes

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Client credentials presenting this identity."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_cert, private_key=self.key, certificate_chain=self.cert
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server credentials that require a client certificate from the CA."""
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca_cert, require_client_auth=True
        )


def channel_options() -> list[tuple[str, int]]:
    """Explicit message caps (a full batch is 8 MiB; receipts are small)."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]


def secure_channel(endpoint: str, credentials: grpc.ChannelCredentials) -> grpc.Channel:
    """A TLS channel to a loopback endpoint."""
    if not is_loopback(endpoint):
        raise ManifestError(f"refusing to connect to non-loopback endpoint {endpoint!r}")
    return grpc.secure_channel(endpoint, credentials, options=channel_options())


@dataclass(frozen=True)
class Manifest:
    """A loaded ``manifest.json`` with its directory."""

    directory: Path
    root_public_keys: tuple[bytes, ...]
    root_threshold: int
    ca_cert: str
    roster: str
    members: dict[str, MemberEntry]

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Read and check ``directory/manifest.json``."""
        path = directory / "manifest.json"
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("members"), dict):
            raise ManifestError(f"{path}: not a test network manifest")
        try:
            roots = tuple(bytes.fromhex(k) for k in raw["root_public_keys"])
            threshold = int(raw["root_threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: bad root keys or threshold: {exc}") from exc
        members = {mid: _member(mid, entry) for mid, entry in raw["members"].items()}
        for entry in members.values():
            if entry.endpoint and not is_loopback(entry.endpoint):
                raise ManifestError(
                    f"member {entry.member_id}: endpoint {entry.endpoint} is not on loopback; "
                    "the harness only runs against local test networks"
                )
        return cls(
            directory.resolve(),
            roots,
            threshold,
            _string(raw, "ca_cert", "manifest"),
            _string(raw, "roster", "manifest"),
            members,
        )

    def path(self, relative: str) -> Path:
        """A manifest path as an absolute path."""
        return self.directory / relative

    def member(self, member_id: str) -> MemberEntry:
        """A member's entry (ManifestError when absent)."""
        try:
            return self.members[member_id]
        except KeyError:
            raise ManifestError(f"the manifest has no member {member_id!r}") from None

    def ca_pem(self) -> bytes:
        """The network CA certificate."""
        return self.path(self.ca_cert).read_bytes()

    def tls_identity(self, member_id: str) -> TlsIdentity:
        """The member's TLS certificate and key, with the network CA."""
        entry = self.member(member_id)
        return TlsIdentity(
            self.ca_pem(),
            self.path(entry.tls_cert).read_bytes(),
            self.path(entry.tls_key).read_bytes(),
        )

    def signing_key(self, member_id: str) -> Ed25519Key:
        """The member's signing key, checked against the manifest's key_id."""
        entry = self.member(member_id)
        key = Ed25519Key.from_file(self.path(entry.signing_key))
        if entry.key_id and key.key_id != entry.key_id:
            raise ManifestError(f"member {member_id}: signing key does not match its key_id")
        return key

    def root_keys(self) -> list[Ed25519Key]:
        """The root private keys (DIR/root/root-N.pem), in the order of the manifest."""
        by_public = {}
        for path in sorted((self.directory / "root").glob("root-*.pem")):
            try:
                key = Ed25519Key.from_file(path)
            except KeyFileError as exc:
                raise ManifestError(str(exc)) from exc
            by_public[key.public_key] = key
        missing = [k.hex()[:16] for k in self.root_public_keys if k not in by_public]
        if missing:
            raise ManifestError(f"no private key in {self.directory / 'root'} for roots {missing}")
        return [by_public[k] for k in self.root_public_keys]

    def default_target(self) -> str:
        """The first hotline that runs a node."""
        for entry in self.members.values():
            if entry.role == "ROLE_HOTLINE" and entry.runs_node and entry.endpoint:
                return entry.member_id
        raise ManifestError("the manifest has no hotline that runs a node")
