"""A running test network and the client-side moves tests make against it.

Everything here talks to real node processes started with ``devnet up``,
over mutual TLS on 127.0.0.1, and reads the nodes' real SQLite files. Every
gRPC call carries a deadline and every wait loop is bounded in time.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc

from crypto.dsse import Envelope, sign_envelope, verify_envelope_signature
from crypto.keys import SigningKey
from crypto.threshold import RootSignature, TrustAnchor, sign_roster_bytes
from crypto.x509ca import IssuedCert
from federation.core.reasons import RECEIPT_TYPE, REPORT_TYPE
from federation.core.report import Report
from federation.core.roster import Member, MemberKey, Role, Roster
from federation.devnet import processes
from federation.devnet.create import DEFAULT_MEMBERS, MemberSpec, init_network
from federation.devnet.manifest import Manifest, MemberEntry
from federation.devnet.smoke import synthetic_report
from federation.runtime.clock import utc_now
from federation.trust.holder import InstalledRoster, serialize_signed_roster, verify_signed_roster
from federation.wire.convert import (
    decode_receipt,
    encode_report,
    encode_roster,
    envelope_from_proto,
    envelope_to_proto,
)
from hfp.v1 import envelope_pb2, receipt_pb2, roster_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from peers.channel import ClientIdentity, secure_channel

#: Deadline of every gRPC call a test makes (seconds).
DEADLINE = 10.0
#: Longer deadline for calls carrying hundreds of items or megabytes.
BULK_DEADLINE = 30.0

#: Members of the small networks: three hotlines, the secretariat (fallback)
#: and one liaison. Node-running roles that get no process keep a reserved
#: endpoint, as the roster requires one for them.
_SMALL = ("hotline-dk", "hotline-nl", "hotline-de", "secretariat", "police-dk")


def small_members(*nodes: str) -> tuple[MemberSpec, ...]:
    """A small network in which only ``nodes`` run a node process."""
    specs = []
    for spec in DEFAULT_MEMBERS:
        if spec.member_id not in _SMALL:
            continue
        runs = spec.member_id in nodes
        reserve = not runs and spec.role is not Role.LIAISON
        specs.append(dataclasses.replace(spec, runs_node=runs, reserve_endpoint=reserve))
    return tuple(specs)


@dataclass(frozen=True)
class Network:
    """A test network directory with its manifest."""

    directory: Path
    manifest: Manifest

    # --- files ------------------------------------------------------------

    def hfed_argv(self, member_id: str, *args: str) -> list[str]:
        """The command line of ``hfed ARGS`` run as ``member_id`` on this network
        (the first of ``args`` names the command; node options follow it)."""
        command, rest = args[0], args[1:]
        words = command.split()
        node = ["--devnet", str(self.directory), "--member", member_id]
        return [sys.executable, "-m", "federation.cli.main", *words, *node, *rest]

    def path(self, relative: str) -> Path:
        """A manifest path (relative to the network dir) as an absolute path."""
        return self.directory / relative

    def member(self, member_id: str) -> MemberEntry:
        """The manifest entry of a member."""
        return self.manifest.members[member_id]

    def signing_key(self, member_id: str) -> SigningKey:
        """The member's signing key as created by ``devnet init``."""
        return SigningKey.load(self.path(self.member(member_id).signing_key))

    def root_keys(self) -> list[SigningKey]:
        """The network's root signing keys (DIR/root/root-N.pem)."""
        return [
            SigningKey.load(self.directory / "root" / f"root-{i}.pem")
            for i in range(1, len(self.manifest.root_public_keys) + 1)
        ]

    def anchor(self) -> TrustAnchor:
        """The trust anchor a node pins: the manifest's root keys and threshold."""
        return self.manifest.trust_anchor()

    def bootstrap_roster(self) -> InstalledRoster:
        """The roster written by ``init``, verified against the root keys."""
        return verify_signed_roster(self.path(self.manifest.roster).read_bytes(), self.anchor())

    def ca(self) -> IssuedCert:
        """The network CA (certificate and key), to issue extra certificates."""
        return IssuedCert(
            (self.directory / "ca.pem").read_bytes(), (self.directory / "ca.key").read_bytes()
        )

    def db_path(self, member_id: str) -> Path:
        """The node's SQLite file (see the generated node.toml)."""
        return self.directory / "members" / member_id / "data" / "node.db"

    def pid(self, member_id: str) -> int:
        """The pid recorded by ``devnet up`` for a node."""
        return int((self.directory / "members" / member_id / "node.pid").read_text().strip())

    # --- channels ---------------------------------------------------------

    def identity(self, member_id: str) -> ClientIdentity:
        """The member's TLS client identity (cert, key) and the network CA."""
        entry = self.member(member_id)
        return ClientIdentity.from_files(
            self.path(self.manifest.ca_cert), self.path(entry.tls_cert), self.path(entry.tls_key)
        )

    @contextmanager
    def channel(self, caller: str, target: str) -> Iterator[grpc.Channel]:
        """A mutual-TLS channel from ``caller``'s identity to ``target``'s node."""
        with secure_channel(self.member(target).endpoint, self.identity(caller)) as channel:
            yield channel

    @contextmanager
    def stub(self, caller: str, target: str) -> Iterator[fed_grpc.FederationServiceStub]:
        """A FederationService stub on a fresh mutual-TLS channel."""
        with self.channel(caller, target) as channel:
            yield fed_grpc.FederationServiceStub(channel)

    def healthy(self, member_id: str, timeout: float = 2.0) -> bool:
        """True when the node answers its health check with SERVING."""
        return processes.check_health(self.directory, self.member(member_id), timeout)


# --- network lifecycle ---------------------------------------------------------


def create_network(directory: Path, members: Sequence[MemberSpec] = DEFAULT_MEMBERS) -> Network:
    """``devnet init`` into ``directory``."""
    manifest = init_network(directory, members)
    return Network(directory.resolve(), manifest)


def start(directory: Path) -> None:
    """``devnet up``: start every node and wait until all serve."""
    processes.up(directory, timeout=60.0)


def stop(directory: Path, attempts: int = 3) -> None:
    """``devnet down`` until no node recorded in a pid file is still alive."""
    for _ in range(attempts):
        processes.down(directory)
        pids = [int(p.read_text().strip() or 0) for p in (directory / "members").glob("*/node.pid")]
        if not any(pid and _alive(pid) for pid in pids):
            return
        time.sleep(0.3)


@contextmanager
def running_network(
    directory: Path, members: Sequence[MemberSpec] = DEFAULT_MEMBERS
) -> Iterator[Network]:
    """Create a network, start its nodes, and always stop them afterwards."""
    network = create_network(directory, members)
    try:
        start(network.directory)
        yield network
    finally:
        stop(network.directory)


def wait_exited(pid: int, timeout: float) -> bool:
    """Wait (bounded) until process ``pid`` has exited; True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z" or _holds_files(pid)


def _holds_files(pid: int) -> bool:
    """True while a zombie's other threads still hold its open files.

    The leader of a multi-threaded process shows as a zombie as soon as it
    exits, while the other threads may still be closing the shared file
    table (a SQLite file and its locks among them).
    """
    try:
        return bool(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return False


def terminate(pid: int) -> None:
    """Send SIGTERM to a node process we started."""
    os.kill(pid, signal.SIGTERM)


# --- reports and envelopes -----------------------------------------------------


def make_report(origin: str = "hotline-dk", country: str = "NL", **changes: object) -> Report:
    """A synthetic report (example.test URL, random hash) with field overrides."""
    return dataclasses.replace(synthetic_report(origin, country), **changes)  # type: ignore[arg-type]


def sign(payload: bytes, key: SigningKey, signer: str, payload_type: str = REPORT_TYPE) -> Envelope:
    """A correctly signed envelope."""
    return sign_envelope(key, signer, payload_type, payload)


def sign_report(report: Report, key: SigningKey, signer: str | None = None) -> Envelope:
    """A report signed by ``signer`` (default: its origin) with ``key``."""
    return sign(encode_report(report), key, signer or report.origin_member_id)


def item(envelope: Envelope, via: Iterable[str] = ()) -> fed_pb.ForwardedItem:
    """One wire item of a Deliver batch."""
    return fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope), via_member_ids=list(via))


def deliver(
    stub: fed_grpc.FederationServiceStub,
    items: Sequence[fed_pb.ForwardedItem],
    timeout: float = DEADLINE,
) -> list[envelope_pb2.SignedEnvelope]:
    """Deliver a batch; the receipts, checked to be one per item."""
    response = stub.Deliver(fed_pb.DeliverRequest(items=list(items)), timeout=timeout)
    assert len(response.receipts) == len(items)
    return list(response.receipts)


# --- receipts ------------------------------------------------------------------


def verify_receipt(
    network: Network, signed: envelope_pb2.SignedEnvelope, roster: Roster | None = None
) -> receipt_pb2.Receipt:
    """Verify a receipt's signature against the roster, then parse it.

    ``roster`` defaults to the network's bootstrap roster (verified with the
    pinned root keys). Returns the wire Receipt so tests can assert on the
    exact enum values; the domain decoder must accept it too.
    """
    roster = roster or network.bootstrap_roster().roster
    envelope = envelope_from_proto(signed)
    assert envelope.payload_type == RECEIPT_TYPE
    member = roster.member(envelope.signer_member_id)
    assert member is not None, f"receipt signer {envelope.signer_member_id} not in roster"
    key = member.keys.get(envelope.key_id)
    assert key is not None and not key.revoked, "receipt key is not a live key of its signer"
    assert verify_envelope_signature(envelope, key.public_key), "receipt signature is bad"
    decode_receipt(envelope.payload)
    message = receipt_pb2.Receipt.FromString(envelope.payload)
    assert message.receiver_member_id == envelope.signer_member_id
    return message


def outcome_name(receipt: receipt_pb2.Receipt) -> str:
    """The wire name of the receipt's outcome, e.g. OUTCOME_ACCEPTED."""
    return receipt_pb2.Outcome.Name(receipt.outcome)


def reason_name(receipt: receipt_pb2.Receipt) -> str:
    """The wire name of the receipt's reject reason."""
    return receipt_pb2.RejectReason.Name(receipt.reject_reason)


# --- rosters -------------------------------------------------------------------


def fetch_roster(network: Network, caller: str, target: str) -> InstalledRoster:
    """GetRoster(known_version=0) from ``target``, verified with the root keys."""
    with network.stub(caller, target) as stub:
        response = stub.GetRoster(fed_pb.GetRosterRequest(known_version=0), timeout=DEADLINE)
    assert response.HasField("roster")
    return verify_signed_roster(response.roster.SerializeToString(), network.anchor())


def newest_roster(network: Network, caller: str = "hotline-dk") -> InstalledRoster:
    """The newest roster any running node of the network holds.

    Nodes pass installed rosters on to each other in the background, so a
    test that publishes "the next version" must build on the newest one.
    """
    rosters = [fetch_roster(network, caller, node) for node in network.manifest.nodes()]
    return max(rosters, key=lambda r: r.roster.version)


def wait_for_version(
    network: Network, node: str, version: int, timeout: float = 5.0, caller: str = "hotline-dk"
) -> int:
    """Wait (bounded) until ``node`` holds at least ``version``; the version it holds."""
    deadline = time.monotonic() + timeout
    held = fetch_roster(network, caller, node).roster.version
    while held < version and time.monotonic() < deadline:
        time.sleep(0.1)
        held = fetch_roster(network, caller, node).roster.version
    return held


def new_roster(
    base: Roster,
    version: int,
    *,
    keys: dict[str, Sequence[MemberKey]] | None = None,
    drop: Iterable[str] = (),
    issued_at: datetime | None = None,
    lifetime: timedelta = timedelta(days=30),
) -> Roster:
    """``base`` with a new version and validity; optionally new keys, members dropped."""
    issued = issued_at or utc_now()
    replaced = keys or {}
    dropped = set(drop)
    members: list[Member] = [
        dataclasses.replace(m, keys={k.key_id: k for k in replaced[m.member_id]})
        if m.member_id in replaced
        else m
        for m in base.members.values()
        if m.member_id not in dropped
    ]
    return Roster.build(version, issued, issued + lifetime, members, base.fallback_member_id)


def sign_roster(roster_bytes: bytes, root_keys: Sequence[SigningKey]) -> roster_pb2.SignedRoster:
    """A SignedRoster carrying one signature per given root key."""
    signatures: tuple[RootSignature, ...] = sign_roster_bytes(roster_bytes, root_keys)
    return roster_pb2.SignedRoster.FromString(serialize_signed_roster(roster_bytes, signatures))


def publish(network: Network, caller: str, target: str, signed: roster_pb2.SignedRoster) -> int:
    """PublishRoster to ``target``; the version the node reports."""
    with network.stub(caller, target) as stub:
        reply = stub.PublishRoster(fed_pb.PublishRosterRequest(roster=signed), timeout=DEADLINE)
    return int(reply.version)


def publish_roster(
    network: Network, target: str, roster: Roster, caller: str = "hotline-dk"
) -> int:
    """Sign ``roster`` with the threshold of root keys and publish it to ``target``."""
    roots = network.root_keys()[: network.manifest.root_threshold]
    return publish(network, caller, target, sign_roster(encode_roster(roster), roots))


def revoked_and_replaced(key: SigningKey) -> list[MemberKey]:
    """Roster keys for a member whose ``key`` is revoked beside a new one."""
    replacement = SigningKey.generate()
    return [
        MemberKey(key.key_id, key.public_key, revoked=True),
        MemberKey(replacement.key_id, replacement.public_key),
    ]


def publish_next_roster(
    network: Network,
    target: str,
    *,
    keys: dict[str, Sequence[MemberKey]] | None = None,
    drop: Iterable[str] = (),
    caller: str = "hotline-dk",
) -> Roster:
    """The roster ``target`` holds, one version on, with new keys for some
    members or some members dropped, published to it; the new roster."""
    installed = fetch_roster(network, caller, target).roster
    roster = new_roster(installed, installed.version + 1, keys=keys, drop=drop)
    publish_roster(network, target, roster, caller)
    return roster


# --- storage -------------------------------------------------------------------


def count_inbound(network: Network, member_id: str, item_id: str) -> int:
    """Rows for ``item_id`` in the node's inbound_items table (read-only open)."""
    uri = f"file:{network.db_path(member_id)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM inbound_items WHERE item_id = ?", (item_id,)
        ).fetchone()
    return int(row[0])


def rpc_code(call: object) -> grpc.StatusCode:
    """Run a zero-argument callable expected to fail; its gRPC status code."""
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def now() -> datetime:
    """The current UTC time (the nodes run on this machine's clock)."""
    return utc_now()
