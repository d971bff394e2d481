"""A network formed by separate parties lives through its operations while
reports flow the whole time: a hotline joins, a key is rotated, a key is
revoked, a certificate is renewed, the roster is refreshed. At the end every
report submitted is filed exactly once, at its responsible node."""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from crypto.dsse import verify_envelope_signature
from crypto.keys import SigningKey
from federation.core.roster import Roster
from federation.devnet.create import free_ports
from federation.network.trustfile import TrustFile
from federation.trust.holder import verify_signed_roster
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import receipt_pb2, report_pb2
from hfp.v1.federation_service_pb2_grpc import FederationServiceStub
from peers.channel import ClientIdentity, secure_channel
from tests.operations.parties import MEMBERS, Formation, form, hfed
from tests.support.net import deliver, envelope_from_proto, item, make_report, sign_report

#: The formed network: the secretariat, three hotlines and one liaison.
FORMED = {**MEMBERS, "hotline-be": ("hotline", ("BE",))}
JOINER = ("hotline-se", ("hotline", ("SE",)))
NODES = ("secretariat", "hotline-dk", "hotline-nl", "hotline-be", "hotline-se")
ORIGINS = ("hotline-dk", "hotline-nl", "hotline-be")
RESPONSIBLE = {"DK": "hotline-dk", "NL": "hotline-nl", "BE": "hotline-be", "SE": "hotline-se"}
DEADLINE = 10.0
#: Member id -> its node process.
Running = dict[str, subprocess.Popen[bytes]]
#: Bounds of the background traffic.
MAX_REPORTS = 400
MAX_SECONDS = 240.0


def _wait(what: str, check: Callable[[], bool], seconds: float = 60.0) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _identity(network: Formation, member_id: str) -> ClientIdentity:
    home = network.home(member_id)
    member = home / "member"
    return ClientIdentity.from_files(home / "ca.pem", member / "tls.pem", member / "tls.key")


@contextmanager
def _hotline(network: Formation, member_id: str) -> Iterator[pb_grpc.HotlineServiceStub]:
    """``member_id``'s HotlineService, called as that member."""
    endpoint = network.endpoints[member_id]
    with secure_channel(endpoint, _identity(network, member_id)) as channel:
        yield pb_grpc.HotlineServiceStub(channel)


# --- nodes ------------------------------------------------------------------------


def _config(network: Formation, member_id: str) -> Path:
    return network.home(member_id) / "node" / "node.toml"


def _start(network: Formation, member_id: str, stack: ExitStack) -> subprocess.Popen[bytes]:
    """`node init`, `db upgrade`, then `hfed serve` in its own process."""
    home = network.home(member_id)
    hfed(
        "node", "init", home / "node", "--member-dir", home / "member",
        "--trust", home / "trust.toml", "--roster", home / "roster.bin",
        "--cert", home / "member" / "tls.pem", "--listen", network.endpoints[member_id],
    )  # fmt: skip
    config = _config(network, member_id)
    hfed("db", "upgrade", "--config", config)
    log = stack.enter_context((config.parent / "node.log").open("ab"))
    command = [sys.executable, "-m", "federation.cli.main", "serve", "--config", str(config)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(_stop, process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _version(network: Formation, member_id: str) -> int:
    """The roster version ``member_id``'s node reports, or 0 before it answers."""
    result = hfed("roster", "status", "--config", _config(network, member_id), ok=False)
    for word in result.output.split("roster version ")[1:2]:
        return int(word.split()[0])
    return 0


def _everywhere(network: Formation, running: Running, version: int) -> None:
    """Publish waits: every running node holds ``version``."""
    for member_id in running:
        _wait(
            f"{member_id} at roster version {version}",
            lambda m=member_id: _version(network, m) >= version,
            seconds=90,
        )


def _release(network: Formation, running: Running) -> int:
    """Bump, ceremony, publish to every running node; wait until all hold it."""
    version = network.bump_version()
    roster = network.ceremony(previous=True)
    for member_id in running:
        hfed("roster", "publish", roster, "--config", _config(network, "secretariat"),
             "--to", network.endpoints[member_id])  # fmt: skip
    _everywhere(network, running, version)
    return version


# --- traffic ----------------------------------------------------------------------


@dataclass
class Traffic:
    """A background thread submitting synthetic reports to the hotlines."""

    network: Formation
    countries: list[str] = field(default_factory=lambda: ["DK", "NL", "BE"])
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # url, country, origin
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        choose = random.Random(18).choice  # seeded: the same mix of countries every run
        with ExitStack() as stack:
            stubs = {m: stack.enter_context(_hotline(self.network, m)) for m in ORIGINS}
            n = 0
            while not self.stop.is_set() and n < MAX_REPORTS:
                if time.monotonic() - started > MAX_SECONDS:
                    break
                origin = ORIGINS[n % len(ORIGINS)]
                self.submit(stubs[origin], origin, choose(self.countries), n)
                n += 1
                time.sleep(0.05)

    def submit(self, stub: pb_grpc.HotlineServiceStub, origin: str, country: str, n: int) -> None:
        url = f"https://example.com/lifecycle/{n}-{os.urandom(6).hex()}"
        digest = report_pb2.ContentHash(algorithm=1, value=os.urandom(32))
        report = report_pb2.Report(url=url, hosting_country=country, hashes=[digest])
        try:
            stub.SubmitReport(pb.SubmitReportRequest(report=report), timeout=DEADLINE)
        except grpc.RpcError as error:
            self.failures.append(f"{origin} {country}: {error}")
            return
        self.submitted.append((url, country, origin))


def _filed(network: Formation, member_id: str) -> dict[str, int]:
    """Canonical URL -> number of reports in ``member_id``'s cases."""
    counts: dict[str, int] = {}
    token = ""
    with _hotline(network, member_id) as stub:
        while True:
            request = pb.ListCasesRequest(page_size=500, page_token=token)
            page = stub.ListCases(request, timeout=DEADLINE)
            for case in page.cases:
                counts[case.canonical_url] = counts.get(case.canonical_url, 0) + len(case.reports)
            token = page.next_page_token
            if not token:
                return counts


def _misfiled(network: Formation, submitted: list[tuple[str, str, str]]) -> list[str]:
    """Reports not filed exactly once at their responsible node (nowhere else)."""
    filed = {m: _filed(network, m) for m in NODES}
    wrong = []
    for url, country, _ in submitted:
        where = {m: c[url] for m, c in filed.items() if url in c}
        if where != {RESPONSIBLE[country]: 1}:
            wrong.append(f"{url} ({country}): {where}")
    return wrong


def _all_filed(network: Formation, reports: list[tuple[str, str, str]], seconds: float) -> None:
    """Wait until every one of ``reports`` is filed once at its node; else name the wrong ones."""
    deadline = time.monotonic() + seconds
    while wrong := _misfiled(network, reports):
        assert time.monotonic() < deadline, f"{len(wrong)} of {len(reports)} misfiled: {wrong[:5]}"
        time.sleep(0.5)


# --- the steps ---------------------------------------------------------------------


def _join(network: Formation, running: Running, stack: ExitStack) -> None:
    """(a) hotline-se joins for SE and starts its node."""
    member_id, entry = JOINER
    network.members[member_id] = entry
    network.make_member(member_id)
    network.admit(member_id)
    version = network.bump_version()
    roster = network.ceremony(previous=True)
    hfed("roster", "publish", roster, "--config", _config(network, "secretariat"))
    network.hand_out(member_id)
    running[member_id] = _start(network, member_id, stack)
    _everywhere(network, running, version)


def _case_key(network: Formation, at: str, url: str) -> str:
    """The key id that signed the (first) report of ``url``'s case at ``at``."""
    with _hotline(network, at) as stub:
        request = pb.ListCasesRequest(page_size=500)
        for case in stub.ListCases(request, timeout=DEADLINE).cases:
            if case.canonical_url == url:
                return case.reports[0].envelope.key_id
    return ""


def _rotate(network: Formation, running: Running) -> tuple[SigningKey, SigningKey]:
    """(b) hotline-nl rotates its signing key: (old key, new key)."""
    home = network.home("hotline-nl")
    old = SigningKey.load(home / "member" / "signing.pem")
    out = home / "key-2"
    hfed("keys", "rotate", "--config", _config(network, "hotline-nl"), "--out", out)
    network.send(out / "request.toml", "office/inbox/hotline-nl-key-2")
    office = network.home("office")
    hfed("roster", "add", office / "roster.toml", office / "inbox/hotline-nl-key-2/request.toml")
    _release(network, running)
    running["hotline-nl"].send_signal(signal.SIGHUP)
    return old, SigningKey.load(out / "signing.pem")


def _signed_with(network: Formation, key_id: str) -> Callable[[], bool]:
    """A fresh report from hotline-nl to DK is signed with ``key_id``."""

    def check() -> bool:
        url = f"https://example.com/rotated/{os.urandom(6).hex()}"
        with _hotline(network, "hotline-nl") as stub:
            report = report_pb2.Report(url=url, hosting_country="DK")
            stub.SubmitReport(pb.SubmitReportRequest(report=report), timeout=DEADLINE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = _case_key(network, "hotline-dk", url)
            if found:
                return found == key_id
            time.sleep(0.3)
        return False

    return check


def _roster(network: Formation) -> Roster:
    """The secretariat's current roster, verified under the trust anchor."""
    office = network.home("office")
    anchor = TrustFile.load(office / "ca" / "trust.toml").anchor
    return verify_signed_roster((office / "roster.bin").read_bytes(), anchor).roster


def _old_items_verify(network: Formation, old: SigningKey, url: str) -> None:
    """A report hotline-nl signed with the old key still verifies against the roster."""
    member = _roster(network).member("hotline-nl")  # type: ignore[arg-type]
    assert member is not None
    with _hotline(network, "hotline-dk") as stub:
        for case in stub.ListCases(pb.ListCasesRequest(page_size=500), timeout=DEADLINE).cases:
            if case.canonical_url != url:
                continue
            envelope = envelope_from_proto(case.reports[0].envelope)
            assert envelope.key_id == old.key_id
            key = member.keys[envelope.key_id]
            assert verify_envelope_signature(envelope, key.public_key)
            return
    raise AssertionError(f"{url} not at hotline-dk")


def _revoke(network: Formation, running: Running, old: SigningKey) -> None:
    """(c) hotline-nl's old key is revoked as compromised; a Deliver item it signs is refused."""
    # Until then a peer's item signed with it is still taken.
    assert _deliver_signed(network, old) == receipt_pb2.OUTCOME_ACCEPTED
    office = network.home("office")
    hfed("roster", "revoke", office / "roster.toml", "--member", "hotline-nl",
         "--key", old.key_id[:16])  # fmt: skip
    _release(network, running)
    assert _deliver_signed(network, old) == receipt_pb2.OUTCOME_REJECTED


def _deliver_signed(network: Formation, key: SigningKey) -> int:
    """Deliver to hotline-dk, as hotline-nl, one report signed with ``key``: the outcome."""
    signed = sign_report(make_report(origin="hotline-nl", country="DK"), key, "hotline-nl")
    endpoint = network.endpoints["hotline-dk"]
    with secure_channel(endpoint, _identity(network, "hotline-nl")) as channel:
        (receipt,) = deliver(FederationServiceStub(channel), [item(signed)])
    return receipt_pb2.Receipt.FromString(envelope_from_proto(receipt).payload).outcome


def _served_certificate(network: Formation, member_id: str) -> bytes:
    """The DER certificate a fresh TLS handshake with ``member_id``'s node sees."""
    home = network.home(member_id)
    context = ssl.create_default_context(cafile=str(home / "ca.pem"))
    context.load_cert_chain(home / "member" / "tls.pem", home / "member" / "tls.key")
    context.set_alpn_protocols(["h2"])
    host, port = network.endpoints[member_id].rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=DEADLINE) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        served = tls.getpeercert(binary_form=True)
    assert served is not None
    return served


def _renew(network: Formation, running: Running) -> None:
    """(d) hotline-dk's certificate is renewed and picked up on SIGHUP."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    office = network.home("office")
    inbox = office / "inbox" / "hotline-dk"
    before = _served_certificate(network, "hotline-dk")
    hfed("ca", "issue", "--ca", office / "ca", inbox / "tls.csr", "--member", "hotline-dk",
         "--roster", office / "roster.toml", "--out", inbox / "renewed.pem")  # fmt: skip
    member = network.home("hotline-dk") / "member"
    network.send(inbox / "renewed.pem", "hotline-dk/member", "renewed-tls.pem")
    os.replace(member / "renewed-tls.pem", member / "tls.pem")
    node = running["hotline-dk"]
    node.send_signal(signal.SIGHUP)
    renewed = x509.load_pem_x509_certificate((inbox / "renewed.pem").read_bytes())
    want = renewed.public_bytes(Encoding.DER)
    served = lambda: _served_certificate(network, "hotline-dk") == want  # noqa: E731
    _wait("the renewed certificate served", served, 30)
    assert before != want
    assert node.poll() is None, "the node exited on SIGHUP"


def _refresh(network: Formation, running: Running) -> None:
    """(e) a new roster version with a later expiry, shown by `roster status`."""
    before = _roster(network).expires_at
    version = _release(network, running)
    assert _roster(network).expires_at > before
    output = hfed("roster", "status", "--config", _config(network, "hotline-be")).output
    assert f"roster version {version}" in output and "roster expires" in output


def test_a_network_lives_through_its_operations(tmp_path: Path) -> None:
    endpoints = dict(zip(NODES, (f"127.0.0.1:{p}" for p in free_ports(len(NODES))), strict=True))
    network = form(tmp_path, endpoints, FORMED)
    running: Running = {}
    with ExitStack() as stack:
        for member_id in NODES[:-1]:
            running[member_id] = _start(network, member_id, stack)
        _everywhere(network, running, 1)
        traffic = Traffic(network)
        thread = threading.Thread(target=traffic.run, daemon=True)
        thread.start()
        stack.callback(thread.join, 30)
        stack.callback(traffic.stop.set)
        _wait("first reports", lambda: len(traffic.submitted) >= 10, 30)

        _join(network, running, stack)
        traffic.countries.append("SE")

        before_rotation = len(traffic.submitted)
        old, new = _rotate(network, running)
        _wait("a report signed with the new key", _signed_with(network, new.key_id), 60)
        early = traffic.submitted[:before_rotation]
        nl_to_dk = [u for u, c, o in early if (c, o) == ("DK", "hotline-nl")]
        # Everything signed so far is delivered before the old key is revoked.
        sent = list(traffic.submitted)
        _all_filed(network, sent, 60)
        _old_items_verify(network, old, nl_to_dk[0])

        _revoke(network, running, old)
        _renew(network, running)
        _refresh(network, running)
        more = len(traffic.submitted) + 20
        _wait("reports after the last step", lambda: len(traffic.submitted) >= more, 60)
        traffic.stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()

        assert traffic.failures == []
        assert [m for m, p in running.items() if p.poll() is not None] == []  # none exited
        assert len(traffic.submitted) >= 50, len(traffic.submitted)
        assert any(c == "SE" for _, c, _ in traffic.submitted)
        _all_filed(network, list(traffic.submitted), 90)
