"""What each party makes on its own machine: the CA, a root key, a member's
keys and request, a node's configuration. Secrets are written 0600 and
never overwritten; the functions return the files they wrote."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crypto.errors import CertificateError
from crypto.files import write_private
from crypto.keys import SigningKey
from crypto.x509ca import (
    IssuedCert,
    create_ca,
    create_member_csr,
    issue_cert_for_csr,
    read_member_csr,
)
from federation.network.errors import OperationsError
from federation.network.request import CSR_FILE, REQUEST_FILE, MembershipRequest, RoleName
from federation.network.source import RosterSource
from federation.network.tomlfile import validate

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SIGNING_KEY = "signing.pem"
TLS_KEY = "tls.key"
TLS_CERT = "tls.pem"


def refuse_existing(*paths: Path) -> None:
    """Never overwrite a key or a request: a lost secret cannot be made again."""
    for path in paths:
        if path.exists():
            raise OperationsError(f"{path} already exists; choose another place or move it away")


def init_ca(directory: Path, network_name: str) -> list[Path]:
    """The network CA's key and self-signed certificate in ``directory``."""
    cert, key = directory / CA_CERT, directory / CA_KEY
    refuse_existing(cert, key)
    directory.mkdir(parents=True, exist_ok=True)
    ca = create_ca(network_name)
    write_private(key, ca.key_pem)
    cert.write_bytes(ca.cert_pem)
    return [cert, key]


def load_ca(directory: Path) -> IssuedCert:
    """The CA certificate and key kept in ``directory``."""
    try:
        return IssuedCert((directory / CA_CERT).read_bytes(), (directory / CA_KEY).read_bytes())
    except OSError as exc:
        raise OperationsError(f"cannot read the CA in {directory}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Issue:
    """What ``ca issue`` was asked for."""

    csr_pem: bytes
    member_id: str
    hosts: Sequence[str]
    days: int


def issue(ca: IssuedCert, order: Issue, source: RosterSource) -> bytes:
    """A member certificate for a CSR, after checking whom it is for."""
    try:
        identity = read_member_csr(order.csr_pem)
    except CertificateError as exc:
        raise OperationsError(f"certificate request refused: {exc}") from exc
    if identity.member_id != order.member_id:
        raise OperationsError(
            f"the CSR is for {identity.member_id!r}, not for --member {order.member_id!r}"
        )
    if source.member(order.member_id) is None:
        raise OperationsError(
            f"{order.member_id} is not in the roster source: `hfed roster add` its request first"
        )
    hosts = list(order.hosts) or list(identity.hosts)
    try:
        return issue_cert_for_csr(ca, order.csr_pem, order.member_id, hosts, valid_days=order.days)
    except CertificateError as exc:
        raise OperationsError(f"cannot issue: {exc}") from exc


def root_keygen(out: Path) -> SigningKey:
    """A new root key, saved as PKCS#8 PEM at ``out``."""
    refuse_existing(out)
    # A holder typically names a fresh directory on removable media; only the
    # holder should be able to list it.
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    key.save(out)
    return key


@dataclass(frozen=True)
class Membership:
    """What ``member init`` was asked for."""

    member_id: str
    role: RoleName
    jurisdictions: Sequence[str] = ()
    endpoint: str = ""
    hosts: Sequence[str] = ()
    display_name: str = ""


def init_member(directory: Path, wanted: Membership) -> list[Path]:
    """A member's keys, CSR and request in ``directory``; returns the files written."""
    signs = wanted.role != "liaison"
    written = [directory / TLS_KEY, directory / CSR_FILE, directory / REQUEST_FILE]
    if signs:
        written.insert(0, directory / SIGNING_KEY)
    refuse_existing(*written)
    key = SigningKey.generate() if signs else None
    request = validate(
        MembershipRequest,
        {
            "member_id": wanted.member_id,
            "display_name": wanted.display_name,
            "role": wanted.role,
            "jurisdictions": tuple(wanted.jurisdictions),
            "endpoint": wanted.endpoint,
            "signing_public_key": key.public_key.hex() if key else "",
            "key_id": key.key_id if key else "",
        },
        "member",
    )
    try:
        csr = create_member_csr(wanted.member_id, list(wanted.hosts))
    except CertificateError as exc:
        raise OperationsError(str(exc)) from exc
    directory.mkdir(parents=True, exist_ok=True)
    if key is not None:
        key.save(directory / SIGNING_KEY)
    write_private(directory / TLS_KEY, csr.key_pem)
    (directory / CSR_FILE).write_bytes(csr.cert_pem)
    request.save(directory / REQUEST_FILE)
    return written


def new_key_request(directory: Path, base: MembershipRequest) -> list[Path]:
    """A new signing key in ``directory`` and the request that adds it to the roster."""
    written = [directory / SIGNING_KEY, directory / REQUEST_FILE]
    refuse_existing(*written)
    directory.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    request = base.model_copy(
        update={"signing_public_key": key.public_key.hex(), "key_id": key.key_id}
    )
    key.save(directory / SIGNING_KEY)
    request.save(directory / REQUEST_FILE)
    return written


def relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (a node.toml keeps working when moved with its files)."""
    return os.path.relpath(path.resolve(), start.resolve())
