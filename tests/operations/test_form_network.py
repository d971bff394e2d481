"""A network formed from nothing by separate parties, then refusals of each
command that must refuse (one-line reason, exit 1, no traceback)."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import tomli_w

from federation.network.trustfile import TrustFile
from federation.node.config import load_config
from federation.trust.holder import verify_signed_roster
from tests.operations.parties import MEMBERS, ROOTS, Formation, hfed, refused

SECRETS = ("root.pem", "ca.key", "signing.pem", "tls.key")


def test_the_roster_verifies_under_the_trust_anchor(network: Formation) -> None:
    for member_id in MEMBERS:
        home = network.home(member_id)
        anchor = TrustFile.load(home / "trust.toml").anchor
        roster = verify_signed_roster((home / "roster.bin").read_bytes(), anchor).roster
        assert set(roster.members) == set(MEMBERS)
        assert roster.fallback_member_id == "secretariat"
        assert roster.responsible_for("DK").member_id == "hotline-dk"


def test_secrets_stay_private_and_are_never_printed(network: Formation) -> None:
    secrets = [p for p in network.base.rglob("*") if p.name in SECRETS]
    assert len(secrets) == len(ROOTS) + 1 + 3 + len(MEMBERS)  # roots, CA, 3 signing keys, TLS keys
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    requests = [p.read_text() for p in network.base.rglob("request.toml")]
    assert all("PRIVATE KEY" not in text for text in requests)


def test_keygen_does_not_print_the_key(tmp_path: Path) -> None:
    output = hfed("root", "keygen", tmp_path / "root.pem").output
    body = (tmp_path / "root.pem").read_text().splitlines()[1]
    assert body not in output and "PRIVATE" not in output


def test_node_init_writes_a_config_the_node_loads(network: Formation) -> None:
    home = network.home("hotline-dk")
    hfed(*_node_init(network, "hotline-dk"))
    config = load_config(home / "node" / "node.toml", environ={})
    assert config.member_id == "hotline-dk"
    assert config.listen == network.endpoints["hotline-dk"]
    assert config.signing.key.resolve() == (home / "member" / "signing.pem").resolve()
    assert (home / "node" / "data").is_dir()


def _node_init(network: Formation, member_id: str) -> list[object]:
    home = network.home(member_id)
    return [
        "node", "init", home / "node", "--member-dir", home / "member",
        "--trust", home / "trust.toml", "--roster", home / "roster.bin",
        "--cert", home / "member" / "tls.pem", "--listen", network.endpoints[member_id],
    ]  # fmt: skip


SERVED = ("hotline-dk", "hotline-nl")


@pytest.fixture(scope="module")
def serving(network: Formation) -> Iterator[dict[str, Path]]:
    """hotline-dk's and hotline-nl's nodes, configured by `node init`, run by `hfed serve`."""
    configs = {}
    with ExitStack() as stack:
        for member_id in SERVED:
            config = network.home(member_id) / "node" / "node.toml"
            if not config.exists():
                hfed(*_node_init(network, member_id))
            hfed("db", "upgrade", "--config", config)
            stack.enter_context(_served(config))
            configs[member_id] = config
        yield configs


@contextmanager
def _served(config: Path) -> Iterator[None]:
    log = (config.parent / "node.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _eventually(*args: object, want: str, wait: float = 30) -> str:
    """The output of a command once it succeeds and shows ``want`` (bounded wait)."""
    deadline = time.monotonic() + wait
    while True:
        result = hfed(*args, ok=False)
        if (result.exit_code == 0 and want in result.output) or time.monotonic() > deadline:
            assert result.exit_code == 0, result.output
            assert want in result.output, result.output
            return result.output
        time.sleep(0.3)


def test_a_formed_node_serves_and_takes_the_next_roster(
    network: Formation, serving: dict[str, Path]
) -> None:
    nl, dk = serving["hotline-nl"], serving["hotline-dk"]
    # Both nodes serving first: a roster is pushed to peers once, when installed.
    _eventually("roster", "status", "--config", dk, want="roster version 1")
    output = _eventually("roster", "status", "--config", nl, want="roster version 1")
    assert "certificate expires" in output
    sec = network.home("office")
    text = (sec / "roster.toml").read_text().replace("version = 1\n", "version = 2\n", 1)
    (sec / "roster.toml").write_text(text)
    new = network.ceremony(signers=ROOTS[1:], previous=True)
    assert "holds roster version 2" in hfed("roster", "publish", new, "--config", nl).output
    # hotline-nl passes it on to its peer hotline-dk.
    # Pushed at once; should the push miss, hotline-dk's pull (every 60 s) finds it.
    _eventually("roster", "status", "--config", dk, want="roster version 2", wait=90)
    to_peer = hfed(
        "roster", "publish", new, "--config", nl, "--to", network.endpoints["hotline-dk"]
    )
    assert f"{network.endpoints['hotline-dk']} now holds roster version 2" in to_peer.output


def test_a_report_travels_between_formed_nodes(serving: dict[str, Path]) -> None:
    url = f"https://example.com/formed/{time.time_ns()}"
    dk = serving["hotline-dk"]
    submitted = hfed("report", "submit", "--config", dk, "--url", url, "--country", "NL")
    assert "hotline-nl" in submitted.output
    listing = ("case", "list", "--config", serving["hotline-nl"], "--format", "json")
    _eventually(*listing, want=url)


# --- refusals ------------------------------------------------------------------


def _signatures(network: Formation, holders: tuple[str, ...]) -> list[Path]:
    sec = network.home("office")
    sigs = []
    for index, holder in enumerate(holders):
        sig = network.home(holder) / f"again-{index}.sig"
        sig.unlink(missing_ok=True)
        key = network.home(holder) / "root.pem"
        hfed("roster", "sign", sec / "roster.unsigned", "--root-key", key, "--out", sig)
        sigs.append(sig)
    return sigs


def _assemble(network: Formation, sigs: list[Path], tmp_path: Path) -> str:
    sec = network.home("office")
    trust = sec / "ca" / "trust.toml"
    return refused(
        "roster",
        "assemble",
        sec / "roster.unsigned",
        *sigs,
        "--trust",
        trust,
        "--out",
        tmp_path / "r.bin",
    )


def test_assemble_refuses_one_signature_short(network: Formation, tmp_path: Path) -> None:
    reason = _assemble(network, _signatures(network, ("root-1",)), tmp_path)
    assert "1 of the 2 root signatures" in reason
    assert not (tmp_path / "r.bin").exists()


def test_assemble_refuses_a_signature_by_a_non_root_key(network: Formation, tmp_path: Path) -> None:
    hfed("root", "keygen", network.home("stranger") / "root.pem")
    reason = _assemble(network, _signatures(network, ("root-1", "stranger")), tmp_path)
    assert "not a root key" in reason


def test_assemble_refuses_two_signatures_by_the_same_root(
    network: Formation, tmp_path: Path
) -> None:
    reason = _assemble(network, _signatures(network, ("root-2", "root-2")), tmp_path)
    assert "same root key" in reason


def test_ca_issue_refuses_a_member_not_in_the_roster_source(
    network: Formation, tmp_path: Path
) -> None:
    hfed("member", "init", tmp_path / "new", "--member", "hotline-se", "--role", "hotline",
         "--jurisdiction", "SE", "--endpoint", "127.0.0.1:1")  # fmt: skip
    sec = network.home("office")
    csr = tmp_path / "new" / "tls.csr"
    reason = refused("ca", "issue", "--ca", sec / "ca", csr, "--member", "hotline-se",
                     "--roster", sec / "roster.toml", "--out", tmp_path / "c.pem")  # fmt: skip
    assert "hotline-se is not in the roster source" in reason


def test_ca_issue_refuses_a_csr_for_another_member(network: Formation, tmp_path: Path) -> None:
    sec = network.home("office")
    csr = sec / "inbox" / "hotline-nl" / "tls.csr"
    reason = refused("ca", "issue", "--ca", sec / "ca", csr, "--member", "hotline-dk",
                     "--roster", sec / "roster.toml", "--out", tmp_path / "c.pem")  # fmt: skip
    assert "is for 'hotline-nl', not for --member 'hotline-dk'" in reason


def test_build_refuses_a_version_not_above_the_previous(network: Formation, tmp_path: Path) -> None:
    sec = network.home("office")
    reason = refused(
        "roster",
        "build",
        sec / "roster.toml",
        "--out",
        tmp_path / "u",
        "--previous",
        sec / "roster.bin",
    )
    assert "does not exceed the previous roster's" in reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("member_id", '"Bad_Id"'), "member_id"),
        (("role", '"police"'), "role"),
        (("key_id", '"00"'), "key_id is not the id"),
        (("jurisdictions", '["Denmark"]'), "jurisdictions"),
        (("extra", '"x"'), "extra"),
    ],
)
def test_roster_add_refuses_a_malformed_request(
    tmp_path: Path, change: tuple[str, str], reason: str
) -> None:
    hfed("member", "init", tmp_path / "m", "--member", "hotline-se", "--role", "hotline",
         "--jurisdiction", "SE", "--endpoint", "127.0.0.1:1")  # fmt: skip
    request = tmp_path / "m" / "request.toml"
    fields = tomllib.loads(request.read_text())
    fields[change[0]] = tomllib.loads(f"v = {change[1]}")["v"]
    request.write_text(tomli_w.dumps(fields))
    assert reason in refused(
        "roster", "add", tmp_path / "roster.toml", request, "--fallback", "hotline-se"
    )
    assert not (tmp_path / "roster.toml").exists()


def test_ca_issue_refuses_a_csr_with_a_malformed_member_id(
    network: Formation, tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hotline_DK")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    path = tmp_path / "bad.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    sec = network.home("office")
    reason = refused("ca", "issue", "--ca", sec / "ca", path, "--member", "hotline-dk",
                     "--roster", sec / "roster.toml", "--out", tmp_path / "c.pem")  # fmt: skip
    assert "malformed" in reason


def test_keygen_makes_a_private_directory_for_a_new_key(tmp_path: Path) -> None:
    out = tmp_path / "usb" / "roots" / "root.pem"
    hfed("root", "keygen", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
