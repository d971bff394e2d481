"""Helpers for the liaison client tests: certificates and profile files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crypto.files import write_private
from crypto.x509ca import IssuedCert, create_ca, issue_member_cert


def write_identity(
    directory: Path,
    ca: IssuedCert,
    member_id: str,
    *,
    valid_days: int = 30,
    now: datetime | None = None,
) -> tuple[Path, Path]:
    """A member certificate and key issued by ``ca``, written to ``directory``."""
    issued = issue_member_cert(
        ca, member_id, ("127.0.0.1", "localhost"), valid_days=valid_days, now=now
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{member_id}.pem", directory / f"{member_id}.key"
    cert.write_bytes(issued.cert_pem)
    write_private(key, issued.key_pem)
    return cert, key


def write_profile(directory: Path, **settings: str) -> Path:
    """A liaison.toml in ``directory`` with a fresh CA and certificate unless overridden.

    Every value is written as a TOML string; pass ``None``-like removal by
    giving the key the value "<omit>".
    """
    directory.mkdir(parents=True, exist_ok=True)
    if "ca_cert" not in settings:
        ca = create_ca("liaison client test CA", now=datetime.now(UTC))
        (directory / "ca.pem").write_bytes(ca.cert_pem)
        cert, key = write_identity(directory, ca, "police-dk")
        settings = {"ca_cert": "ca.pem", "cert": cert.name, "key": key.name, **settings}
    values = {
        "member_id": "police-dk",
        "node": "127.0.0.1:1",
        "node_member_id": "hotline-dk",
        "state_dir": "state",
        **settings,
    }
    text = "".join(f'{k} = "{v}"\n' for k, v in values.items() if v != "<omit>")
    path = directory / "liaison.toml"
    path.write_text(text)
    return path
