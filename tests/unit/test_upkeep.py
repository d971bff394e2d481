"""The node's periodic look at its files: a changed key file is reloaded without SIGHUP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from crypto.keys import SigningKey
from crypto.x509ca import create_ca, issue_member_cert
from federation.core.ids import MemberId
from federation.intake import NodeIdentity
from federation.node.config import load_config
from federation.node.material import ServerTls
from federation.node.upkeep import Upkeep
from federation.runtime.clock import utc_now
from federation.trust import RosterHolder

CONFIG = """
member_id = "hotline-nl"
database_url = "sqlite:///node.db"
reload_check_seconds = 5
[tls]
cert = "tls.pem"
key = "tls.key"
ca_cert = "ca.pem"
[signing]
key = "signing.pem"
[trust]
root_public_keys = ["aa"]
threshold = 1
"""


def test_a_changed_key_file_is_reloaded_at_the_next_check(tmp_path: Path) -> None:
    ca = create_ca("test network")
    cert = issue_member_cert(ca, "hotline-nl", ["localhost"])
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "tls.pem").write_bytes(cert.cert_pem)
    (tmp_path / "tls.key").write_bytes(cert.key_pem)
    first = SigningKey.generate()
    first.save(tmp_path / "signing.pem")
    (tmp_path / "node.toml").write_text(CONFIG)
    config = load_config(tmp_path / "node.toml", environ={})
    assert config.tls is not None
    identity = NodeIdentity(MemberId("hotline-nl"), [first])
    rosters = SimpleNamespace(roster=SimpleNamespace(expires_at=utc_now() + timedelta(days=90)))
    upkeep = Upkeep(
        config, tmp_path / "node.toml", identity, cast(RosterHolder, rosters), ServerTls(config.tls)
    )
    clock = [100.0]
    upkeep.tick(lambda: clock[0])

    second = SigningKey.generate()
    (tmp_path / "signing.pem").unlink()
    second.save(tmp_path / "signing.pem")
    clock[0] += 1  # before the next check is due: nothing read yet
    upkeep.tick(lambda: clock[0])
    assert identity.keys == (first,)
    clock[0] += 5
    upkeep.tick(lambda: clock[0])
    assert [k.key_id for k in identity.keys] == [second.key_id]


def test_renewed_tls_material_tells_the_outbox_once(tmp_path: Path) -> None:
    ca = create_ca("test network")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    cert = issue_member_cert(ca, "hotline-nl", ["localhost"])
    (tmp_path / "tls.pem").write_bytes(cert.cert_pem)
    (tmp_path / "tls.key").write_bytes(cert.key_pem)
    key = SigningKey.generate()
    key.save(tmp_path / "signing.pem")
    (tmp_path / "node.toml").write_text(CONFIG)
    config = load_config(tmp_path / "node.toml", environ={})
    assert config.tls is not None
    rosters = SimpleNamespace(roster=SimpleNamespace(expires_at=utc_now() + timedelta(days=90)))
    upkeep = Upkeep(
        config,
        tmp_path / "node.toml",
        NodeIdentity(MemberId("hotline-nl"), [key]),
        cast(RosterHolder, rosters),
        ServerTls(config.tls),
    )
    renewed: list[str] = []
    upkeep.on_tls_renewed.append(lambda: renewed.append("renewed"))
    upkeep.reload("nothing changed")
    assert renewed == []
    fresh = issue_member_cert(ca, "hotline-nl", ["localhost"])
    (tmp_path / "tls.pem").write_bytes(fresh.cert_pem)
    (tmp_path / "tls.key").write_bytes(fresh.key_pem)
    upkeep.reload("SIGHUP")
    assert renewed == ["renewed"]
