"""``hfed devnet``: the manifest of spec §9, the CLI, and node lifecycle."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crypto.keys import SigningKey
from federation.devnet import processes
from peers.channel import secure_channel
from tests.support.net import (
    DEADLINE,
    Network,
    count_inbound,
    create_network,
    deliver,
    item,
    make_report,
    outcome_name,
    running_network,
    sign_report,
    small_members,
    start,
    stop,
    verify_receipt,
)

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MEMBER_KEYS = {
    "role",
    "jurisdictions",
    "endpoint",
    "runs_node",
    "tls_cert",
    "tls_key",
    "signing_key",
    "key_id",
}
CLI_TIMEOUT = 90.0


def _hfed(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``hfed`` console script of this environment."""
    script = Path(sys.executable).with_name("hfed")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "federation.cli.main"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )


def _raw_manifest(net: Network) -> dict:  # type: ignore[type-arg]
    return json.loads((net.directory / "manifest.json").read_text())  # type: ignore[no-any-return]


# --- init ----------------------------------------------------------------------


def test_init_refuses_a_directory_that_holds_a_network(net: Network) -> None:
    manifest = (net.directory / "manifest.json").read_bytes()
    roster = (net.directory / "roster.bin").read_bytes()

    result = _hfed("devnet", "init", str(net.directory))

    assert result.returncode != 0
    assert "already holds a test network" in result.stderr
    assert "Traceback" not in result.stderr
    assert (net.directory / "manifest.json").read_bytes() == manifest
    assert (net.directory / "roster.bin").read_bytes() == roster


def test_up_on_a_directory_without_network_fails_clearly(tmp_path: Path) -> None:
    result = _hfed("devnet", "up", str(tmp_path / "nothing-here"))
    assert result.returncode != 0
    assert "devnet init" in result.stderr
    assert "Traceback" not in result.stderr


# --- manifest (spec §9) --------------------------------------------------------


def test_manifest_has_the_section_9_keys(net: Network) -> None:
    raw = _raw_manifest(net)
    assert {"root_public_keys", "root_threshold", "ca_cert", "roster", "members"} <= set(raw)
    assert raw["root_threshold"] == 2
    assert len(raw["root_public_keys"]) == 3
    assert all(HEX64.match(k) for k in raw["root_public_keys"])
    assert len(set(raw["root_public_keys"])) == 3
    assert (net.directory / raw["ca_cert"]).is_file()
    assert (net.directory / raw["roster"]).is_file()
    for member_id, entry in raw["members"].items():
        assert set(entry) >= MEMBER_KEYS, member_id
        assert entry["role"] in {"ROLE_HOTLINE", "ROLE_LIAISON", "ROLE_SECRETARIAT"}
        assert isinstance(entry["runs_node"], bool)
        assert all(re.fullmatch(r"[A-Z]{2}", c) for c in entry["jurisdictions"])
        for path_key in ("tls_cert", "tls_key", "signing_key"):
            assert not Path(entry[path_key]).is_absolute()
            assert (net.directory / entry[path_key]).is_file(), (member_id, path_key)
        key_pem = (net.directory / entry["signing_key"]).read_bytes()
        assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
        assert SigningKey.from_pem(key_pem).key_id == entry["key_id"]
        assert HEX64.match(entry["key_id"])


def test_roster_matches_the_manifest(net: Network) -> None:
    roster = net.bootstrap_roster().roster  # verified with the manifest's root keys
    assert roster.version == 1
    assert set(roster.members) == set(net.manifest.members)
    for member_id, entry in net.manifest.members.items():
        member = roster.members[member_id]
        assert f"ROLE_{member.role.name}" == entry.role
        assert sorted(member.jurisdictions) == sorted(entry.jurisdictions)
        assert member.endpoint == entry.endpoint
        assert entry.key_id in member.keys


def test_default_members(net: Network) -> None:
    members = net.manifest.members
    hotlines = {m: e for m, e in members.items() if e.role == "ROLE_HOTLINE" and e.runs_node}
    assert len(hotlines) >= 3
    countries = [c for e in hotlines.values() for c in e.jurisdictions]
    assert len(countries) == len(set(countries)) >= 3
    for member_id, entry in hotlines.items():
        assert entry.endpoint.startswith("127.0.0.1:"), member_id

    secretariats = [m for m, e in members.items() if e.role == "ROLE_SECRETARIAT"]
    assert len(secretariats) == 1
    assert members[secretariats[0]].runs_node
    assert net.bootstrap_roster().roster.fallback_member_id == secretariats[0]

    liaisons = {m: e for m, e in members.items() if e.role == "ROLE_LIAISON"}
    for country in countries:
        mine = [m for m, e in liaisons.items() if e.jurisdictions == [country]]
        assert len(mine) == 1, f"one liaison for {country}"
    for member_id, entry in liaisons.items():
        assert (entry.runs_node, entry.endpoint) == (False, ""), member_id

    conformance = members["conformance"]
    assert conformance.role == "ROLE_HOTLINE"
    assert conformance.jurisdictions == ["XA"]
    assert conformance.runs_node is False
    assert conformance.endpoint.startswith("127.0.0.1:")

    endpoints = [e.endpoint for e in members.values() if e.endpoint]
    assert len(endpoints) == len(set(endpoints)), "every endpoint is distinct"


def _load_cert(net: Network, relative: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((net.directory / relative).read_bytes())


def test_tls_certificates_serve_both_ends_on_loopback(net: Network) -> None:
    ca = _load_cert(net, net.manifest.ca_cert)
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    for member_id, entry in net.manifest.members.items():
        cert = _load_cert(net, entry.tls_cert)
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in san.get_values_for_type(x509.DNSName), member_id
        assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        assert f"hfp://member/{member_id}" in san.get_values_for_type(
            x509.UniformResourceIdentifier
        )
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_nodes_verify_as_servers_without_name_override(net: Network, host: str) -> None:
    for member_id, entry in net.manifest.nodes().items():
        port = entry.endpoint.rsplit(":", 1)[1]
        with secure_channel(f"{host}:{port}", net.identity("hotline-dk")) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=DEADLINE
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, member_id


def test_status_lists_every_node_serving(net: Network) -> None:
    states = processes.status(net.directory)
    assert {s.member_id for s in states} == set(net.manifest.nodes())
    assert all(s.serving and s.pid for s in states)


# --- up / down -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("lifecycle") / "net"
    with running_network(directory, small_members("hotline-nl")) as network:
        yield network


def _pids(net: Network) -> dict[str, int | None]:
    return {s.member_id: s.pid for s in processes.status(net.directory)}


def test_up_twice_is_idempotent(lnet: Network) -> None:
    before = _pids(lnet)
    assert all(before.values())
    processes.up(lnet.directory)
    assert _pids(lnet) == before
    result = _hfed("devnet", "up", str(lnet.directory))
    assert result.returncode == 0, result.stderr
    assert _pids(lnet) == before
    assert lnet.healthy("hotline-nl")


def test_down_then_up_keeps_data(lnet: Network, net: Network) -> None:
    # Two networks run side by side on distinct loopback ports.
    assert not {e.endpoint for e in lnet.manifest.members.values() if e.endpoint} & {
        e.endpoint for e in net.manifest.members.values() if e.endpoint
    }
    report = make_report("hotline-dk", "NL")
    forwarded = item(sign_report(report, lnet.signing_key("hotline-dk")))
    with lnet.stub("hotline-dk", "hotline-nl") as stub:
        (first,) = deliver(stub, [forwarded])
    assert outcome_name(verify_receipt(lnet, first)) == "OUTCOME_ACCEPTED"
    old_pid = lnet.pid("hotline-nl")

    assert processes.down(lnet.directory) == ["hotline-nl"]
    assert not lnet.healthy("hotline-nl")
    assert all(pid is None for pid in _pids(lnet).values())
    assert count_inbound(lnet, "hotline-nl", report.report_id) == 1  # on disk while down
    assert processes.down(lnet.directory) == []  # nothing left to stop

    start(lnet.directory)
    assert lnet.pid("hotline-nl") != old_pid
    with lnet.stub("hotline-dk", "hotline-nl") as stub:
        (again,) = deliver(stub, [forwarded])
    assert again.SerializeToString() == first.SerializeToString()
    assert count_inbound(lnet, "hotline-nl", report.report_id) == 1


def test_up_does_not_report_a_just_spawned_node_as_exited(tmp_path: Path) -> None:
    network = create_network(tmp_path / "net", small_members("hotline-nl"))
    try:
        for _ in range(3):
            processes.up(network.directory)
            stop(network.directory)
    finally:
        stop(network.directory)
