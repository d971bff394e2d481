"""The node's TLS files are checked before use, and a bad reload keeps the old ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.x509ca import create_ca, issue_member_cert
from federation.node.config import TlsConfig
from federation.node.material import MaterialError, ServerTls, read_tls

CA = create_ca("test network")


def _files(directory: Path) -> TlsConfig:
    cert = issue_member_cert(CA, "hotline-nl", ["localhost"])
    (directory / "ca.pem").write_bytes(CA.cert_pem)
    (directory / "tls.pem").write_bytes(cert.cert_pem)
    (directory / "tls.key").write_bytes(cert.key_pem)
    return TlsConfig(
        cert=directory / "tls.pem", key=directory / "tls.key", ca_cert=directory / "ca.pem"
    )


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    config = _files(tmp_path)
    other = issue_member_cert(CA, "hotline-nl", ["localhost"])
    config.key.write_bytes(other.key_pem)
    with pytest.raises(MaterialError, match="not the key of the certificate"):
        read_tls(config)


def test_a_bad_reload_keeps_the_material_in_use(tmp_path: Path) -> None:
    config = _files(tmp_path)
    tls = ServerTls(config)
    before = tls.current
    config.cert.write_bytes(b"garbage")
    assert not tls.reload()
    assert tls.current == before
    renewed = issue_member_cert(CA, "hotline-nl", ["localhost"])
    config.cert.write_bytes(renewed.cert_pem)
    config.key.write_bytes(renewed.key_pem)
    assert tls.reload()
    assert tls.current.serial != before.serial
    assert not tls.reload()  # unchanged files: nothing new for gRPC
