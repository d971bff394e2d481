"""Keys and certificates changing under a running node process.

A module-scoped network runs one node (hotline-nl); hotline-dk's identity is
the caller. The tests reload the node's material with SIGHUP, as an operator
does, and look at what the node signs and which certificate a fresh TLS
handshake sees. Revocation of the node's only key gets a network of its own,
since a node left without a key stays so.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crypto.keys import SigningKey
from crypto.x509ca import issue_member_cert
from federation.core.roster import MemberKey
from federation.devnet.create import CERT_HOSTS
from federation.wire.convert import envelope_from_proto
from hfp.v1 import envelope_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from tests.support.net import (
    DEADLINE,
    Network,
    deliver,
    fetch_roster,
    item,
    make_report,
    new_roster,
    now,
    outcome_name,
    publish_next_roster,
    publish_roster,
    revoked_and_replaced,
    rpc_code,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

NODE = "hotline-nl"
CALLER = "hotline-dk"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("material") / "net"
    with running_network(directory, small_members(NODE)) as network:
        yield network


# --- helpers -----------------------------------------------------------------------


def home(net: Network) -> Path:
    return net.path(net.member(NODE).config).parent


def log_text(net: Network) -> str:
    return (home(net) / "node.log").read_text(errors="replace")


def hangup_and_wait_for(net: Network, line: str, timeout: float = 10.0) -> None:
    """SIGHUP the node; wait (bounded) until its log shows ``line`` once more."""
    before = log_text(net).count(line)
    os.kill(net.pid(NODE), signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while log_text(net).count(line) <= before:
        assert time.monotonic() < deadline, f"no {line!r} in the node's log after SIGHUP"
        time.sleep(0.1)


def deliver_one(net: Network, channel: grpc.Channel | None = None) -> envelope_pb2.SignedEnvelope:
    """Deliver a fresh report from the caller; the node's signed receipt."""
    envelope = sign_report(make_report(CALLER, "NL"), net.signing_key(CALLER))
    if channel is None:
        with net.stub(CALLER, NODE) as stub:
            (receipt,) = deliver(stub, [item(envelope)])
        return receipt
    (receipt,) = deliver(fed_grpc.FederationServiceStub(channel), [item(envelope)])
    return receipt


def served_certificate(net: Network) -> x509.Certificate:
    """The certificate the node shows on a new TLS handshake."""
    caller = net.member(CALLER)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(net.directory / "ca.pem")
    context.load_cert_chain(net.path(caller.tls_cert), net.path(caller.tls_key))
    context.set_alpn_protocols(["h2"])
    host, _, port = net.member(NODE).endpoint.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=DEADLINE) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def health(net: Network, service: str) -> int:
    with net.channel(CALLER, NODE) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE
        )
    return int(reply.status)


def gauges(net: Network) -> dict[str, float]:
    """The node's unlabelled Prometheus samples, by name."""
    url = f"http://{net.member(NODE).metrics}/metrics"
    with urllib.request.urlopen(url, timeout=DEADLINE) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            samples[name] = float(value)
    return samples


# --- signing keys ----------------------------------------------------------------------


def test_a_roster_listing_a_new_key_switches_the_key_and_old_receipts_still_verify(
    net: Network,
) -> None:
    original = net.signing_key(NODE)
    old_receipt = deliver_one(net)
    assert envelope_from_proto(old_receipt).key_id == original.key_id

    # The operator adds a second key file to the configuration and sends SIGHUP.
    rotated = SigningKey.generate()
    rotated.save(home(net) / "signing-2.pem")
    config = home(net) / "node.toml"
    config.write_text(
        config.read_text().replace(
            'key = "signing.pem"\n', 'key = "signing.pem"\nkeys = ["signing-2.pem"]\n', 1
        )
    )
    hangup_and_wait_for(net, "signing keys reloaded")
    # Held but not yet in the roster: the old key still signs.
    assert envelope_from_proto(deliver_one(net)).key_id == original.key_id

    roster = publish_next_roster(
        net,
        NODE,
        keys={
            NODE: [
                MemberKey(original.key_id, original.public_key),
                MemberKey(
                    rotated.key_id, rotated.public_key, not_before=now() - timedelta(minutes=1)
                ),
            ]
        },
    )
    new_receipt = deliver_one(net)
    assert envelope_from_proto(new_receipt).key_id == rotated.key_id
    assert outcome_name(verify_receipt(net, new_receipt, roster)) == "OUTCOME_ACCEPTED"
    # Signed before the switch, still good under the new roster.
    assert outcome_name(verify_receipt(net, old_receipt, roster)) == "OUTCOME_ACCEPTED"


# --- TLS -----------------------------------------------------------------------------------


class DeliverLoop(threading.Thread):
    """Deliver reports over one channel, one after the other, until stopped."""

    def __init__(self, net: Network) -> None:
        super().__init__(daemon=True)
        self.net = net
        self.stop = threading.Event()
        self.delivered = 0
        self.errors: list[str] = []

    def run(self) -> None:
        with self.net.channel(CALLER, NODE) as channel:
            while not self.stop.is_set():
                try:
                    deliver_one(self.net, channel)
                    self.delivered += 1
                except grpc.RpcError as exc:
                    self.errors.append(str(exc.code()))
                time.sleep(0.02)


def test_sighup_takes_a_renewed_certificate_without_dropping_calls(net: Network) -> None:
    before = served_certificate(net)
    renewed = issue_member_cert(net.ca(), NODE, CERT_HOSTS, valid_days=400)
    loop = DeliverLoop(net)
    loop.start()
    try:
        time.sleep(0.5)
        (home(net) / "tls.key").write_bytes(renewed.key_pem)
        (home(net) / "tls.pem").write_bytes(renewed.cert_pem)
        hangup_and_wait_for(net, "TLS certificate reloaded")
        in_flight = loop.delivered
        time.sleep(1.0)
    finally:
        loop.stop.set()
        loop.join(timeout=DEADLINE)
    assert loop.errors == []
    assert loop.delivered > in_flight > 0  # the same channel went on after the reload
    after = served_certificate(net)
    expected = x509.load_pem_x509_certificate(renewed.cert_pem)
    assert after.serial_number == expected.serial_number != before.serial_number
    assert after.not_valid_after_utc == expected.not_valid_after_utc


def test_a_bad_certificate_file_is_refused_and_the_old_one_stays(net: Network) -> None:
    before = served_certificate(net)
    cert = home(net) / "tls.pem"
    good = cert.read_bytes()
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    try:
        hangup_and_wait_for(net, "new TLS material refused")
        assert served_certificate(net).serial_number == before.serial_number
        roster = fetch_roster(net, CALLER, NODE).roster
        assert outcome_name(verify_receipt(net, deliver_one(net), roster)) == "OUTCOME_ACCEPTED"
    finally:
        cert.write_bytes(good)


# --- lifetimes -------------------------------------------------------------------------------


def test_lifetimes_are_gauges_and_a_roster_close_to_expiry_is_warned_of(net: Network) -> None:
    installed = fetch_roster(net, CALLER, NODE).roster
    short = new_roster(installed, installed.version + 1, lifetime=timedelta(days=10))
    publish_roster(net, NODE, short)
    hangup_and_wait_for(net, "roster expires soon")
    samples = gauges(net)
    roster_left = (short.expires_at - now()).total_seconds()
    assert abs(samples["hfed_roster_expires_in_seconds"] - roster_left) < 120
    cert_left = (served_certificate(net).not_valid_after_utc - now()).total_seconds()
    assert abs(samples["hfed_tls_certificate_expires_in_seconds"] - cert_left) < 120
    assert samples["hfed_signing_key_available"] == 1
    warning = next(
        json.loads(line)
        for line in reversed(log_text(net).splitlines())
        if "roster expires soon" in line
    )
    assert 9 <= warning["days_left"] <= 10


# --- revocation of the only key ----------------------------------------------------------


def test_revoking_the_only_key_installs_the_roster_and_the_node_signs_nothing(
    tmp_path: Path,
) -> None:
    with running_network(tmp_path / "net", small_members(NODE)) as net:
        roster = publish_next_roster(
            net, NODE, keys={NODE: revoked_and_replaced(net.signing_key(NODE))}
        )
        assert fetch_roster(net, CALLER, NODE).roster.version == roster.version
        with net.stub(CALLER, NODE) as stub:
            envelope = sign_report(make_report(CALLER, "NL"), net.signing_key(CALLER))
            request = fed_pb.DeliverRequest(items=[item(envelope)])
            code = rpc_code(lambda: stub.Deliver(request, timeout=DEADLINE))
        assert code == grpc.StatusCode.UNAVAILABLE
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        assert health(net, "hfp.v1.FederationService") == not_serving
        assert health(net, "hfp.v1.HotlineService") == not_serving
        assert health(net, "") == serving
        assert "this node cannot sign" in log_text(net)
        assert gauges(net)["hfed_signing_key_available"] == 0
