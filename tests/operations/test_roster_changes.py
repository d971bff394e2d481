"""Changing a formed network's roster: a new key, a revoked key, a removed
member; what show, diff and build say about each; commands that refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federation.network.trustfile import TrustFile
from federation.node.config import load_config
from federation.trust.holder import verify_signed_roster
from tests.operations.parties import Formation, hfed, refused


def _node_config(network: Formation, member_id: str) -> Path:
    home = network.home(member_id)
    config = home / "node" / "node.toml"
    if not config.exists():
        hfed(
            "node", "init", home / "node", "--member-dir", home / "member",
            "--trust", home / "trust.toml", "--roster", home / "roster.bin",
            "--cert", home / "member" / "tls.pem", "--listen", network.endpoints[member_id],
        )  # fmt: skip
    return config


def test_a_rotated_key_reaches_the_roster_beside_the_old_one(network: Formation) -> None:
    config = _node_config(network, "hotline-dk")
    out = network.home("hotline-dk") / "key-2"
    output = hfed("keys", "rotate", "--config", config, "--out", out).output
    assert "signing.pem" in output and "PRIVATE" not in output
    # The node holds both keys from now on and picks the one its roster lists.
    paths = load_config(config).signing.paths
    assert [p.resolve() for p in paths][-1] == (out / "signing.pem").resolve()
    assert len(paths) == 2
    network.send(out / "request.toml", "office/inbox/hotline-dk-key-2")
    office = network.home("office")
    added = hfed(
        "roster", "add", office / "roster.toml", office / "inbox/hotline-dk-key-2/request.toml"
    )
    assert "added key" in added.output
    network.bump_version()
    old = (office / "roster.bin").read_bytes()
    (office / "old.bin").write_bytes(old)
    new = network.ceremony(previous=True)
    anchor = TrustFile.load(office / "ca" / "trust.toml").anchor
    keys = verify_signed_roster(new.read_bytes(), anchor).roster.members["hotline-dk"].keys  # type: ignore[index]
    assert len(keys) == 2 and not any(k.revoked for k in keys.values())
    diff = hfed("roster", "diff", office / "old.bin", new).output
    assert "hotline-dk: key" in diff and "added" in diff


def test_revoking_a_nodes_only_key_warns_before_signing(network: Formation, tmp_path: Path) -> None:
    office = network.home("office")
    source = office / "roster.toml"
    data = json.loads(hfed("roster", "show", office / "roster.bin", "--format", "json").output)
    nl = next(m for m in data["members"] if m["member_id"] == "hotline-nl")
    original = source.read_text()
    try:
        hfed(
            "roster",
            "revoke",
            source,
            "--member",
            "hotline-nl",
            "--key",
            nl["keys"][0]["key_id"][:12],
        )
        network.bump_version()
        result = hfed(
            "roster", "build", source, "--out", tmp_path / "u", "--previous", office / "roster.bin"
        )
        assert "WARNING: hotline-nl has no signing key that is not revoked" in result.output
        assert "hotline-nl: key" in result.output and "revoked" in result.output
        hfed("roster", "sign", tmp_path / "u", "--root-key", network.home("root-1") / "root.pem",
             "--out", tmp_path / "1.sig")  # fmt: skip
        assert "revoked" in hfed("roster", "show", tmp_path / "u").output
    finally:
        source.write_text(original)


def test_removing_a_member_and_refusals_of_revoke(network: Formation, tmp_path: Path) -> None:
    office = network.home("office")
    copy = tmp_path / "roster.toml"
    copy.write_text((office / "roster.toml").read_text())
    assert (
        "removed member police-dk" in hfed("roster", "revoke", copy, "--member", "police-dk").output
    )
    assert "not in the roster source" in refused("roster", "revoke", copy, "--member", "police-dk")
    assert "fallback member" in refused("roster", "revoke", copy, "--member", "secretariat")
    assert "keys matching" in refused(
        "roster", "revoke", copy, "--member", "hotline-dk", "--key", "zz"
    )


def test_show_lists_members_roles_and_expiry(network: Formation) -> None:
    output = hfed("roster", "show", network.home("hotline-nl") / "roster.bin").output
    assert "roster version" in output and "expires" in output
    for member_id in ("secretariat", "hotline-dk", "hotline-nl", "police-dk"):
        assert member_id in output


def test_node_init_refuses_a_liaison_and_a_foreign_certificate(
    network: Formation, tmp_path: Path
) -> None:
    home = network.home("police-dk")
    common = [
        "--trust",
        home / "trust.toml",
        "--roster",
        home / "roster.bin",
        "--listen",
        "127.0.0.1:1",
    ]
    reason = refused("node", "init", tmp_path / "a", "--member-dir", home / "member",
                     "--cert", home / "member" / "tls.pem", *common)  # fmt: skip
    assert "runs no node" in reason
    dk = network.home("hotline-dk") / "member"
    reason = refused("node", "init", tmp_path / "b", "--member-dir", dk,
                     "--cert", home / "member" / "tls.pem", *common)  # fmt: skip
    assert "is for 'police-dk', not 'hotline-dk'" in reason


def test_member_init_never_overwrites_a_key(tmp_path: Path) -> None:
    args = ["member", "init", tmp_path, "--member", "hotline-se", "--role", "hotline",
            "--jurisdiction", "SE", "--endpoint", "127.0.0.1:1"]  # fmt: skip
    hfed(*args)
    before = (tmp_path / "signing.pem").read_bytes()
    assert "already exists" in refused(*args)
    assert (tmp_path / "signing.pem").read_bytes() == before


def test_assemble_refuses_a_signature_over_other_bytes(network: Formation, tmp_path: Path) -> None:
    office = network.home("office")
    other = tmp_path / "other.unsigned"
    network.bump_version()
    hfed("roster", "build", office / "roster.toml", "--out", other)
    hfed(
        "roster",
        "sign",
        other,
        "--root-key",
        network.home("root-1") / "root.pem",
        "--out",
        tmp_path / "x.sig",
    )
    hfed(
        "roster",
        "sign",
        other,
        "--root-key",
        network.home("root-2") / "root.pem",
        "--out",
        tmp_path / "y.sig",
    )
    sigs = [tmp_path / "x.sig", tmp_path / "y.sig"]
    trust = office / "ca" / "trust.toml"
    reason = refused("roster", "assemble", office / "roster.unsigned", *sigs,
                     "--trust", trust, "--out", tmp_path / "r.bin")  # fmt: skip
    assert "does not verify over this roster" in reason


def test_sign_asks_on_a_terminal_and_writes_nothing_when_declined(
    network: Formation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = network.home("office")
    key = network.home("root-3") / "root.pem"
    monkeypatch.setattr("federation.cli.roster.stdin_is_terminal", lambda: True)
    args = ["roster", "sign", office / "roster.unsigned", "--root-key", key]
    result = hfed(*args, "--out", tmp_path / "no.sig", ok=False, input="n\n")
    assert "Sign this roster?" in result.output and result.exit_code == 1
    assert not (tmp_path / "no.sig").exists()
    assert "roster version" in hfed(*args, "--out", tmp_path / "yes.sig", input="y\n").output
    assert (tmp_path / "yes.sig").exists()
