"""What a case needs: the network, a channel to the target, the peer server, fixtures.

Every gRPC call carries a deadline and every wait is bounded. Cases that
depend on each other (a duplicate needs the first report, the key cases need
the newer roster) go through memoised fixtures, so any subset selected with
``--only`` still runs on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc

from conformance.dsse import RECEIPT_TYPE, verify_envelope
from conformance.items import (
    ACCEPTED,
    DUPLICATE,
    FORWARDED,
    REJECTED,
    Expect,
    ExtraKeys,
    ItemFactory,
    ItemSpec,
    Party,
    outcome_name,
    reason_name,
)
from conformance.keys import Ed25519Key
from conformance.network import ManifestError, TlsIdentity, secure_channel
from conformance.operator import Liaison, Operator
from conformance.peer import PeerServer
from conformance.registry import CaseSkippedError, fail
from conformance.rosters import (
    RosterView,
    key_covers,
    sign_roster,
    timestamp_datetime,
    valid_root_signers,
)
from conformance.target import Target
from hfp.v1 import (
    envelope_pb2,
    federation_service_pb2,
    federation_service_pb2_grpc,
    receipt_pb2,
    roster_pb2,
)

#: Deadline of every ordinary call (seconds).
DEADLINE = 10.0
#: Deadline of calls carrying a thousand items or megabytes.
BULK_DEADLINE = 30.0
#: Before stopping the peer server: wait for this much silence, at most DRAIN_LIMIT.
DRAIN_QUIET = 1.5
DRAIN_LIMIT = 8.0
#: Receipts may say at most this much in ``detail`` (receipt.proto).
MAX_DETAIL_CHARS = 500
#: How far a receipt's received_at may be from the harness's clock.
RECEIPT_CLOCK_TOLERANCE = timedelta(minutes=5)
#: Countries tried, in order, when a case needs one no hotline covers.
UNCOVERED_CANDIDATES = ("FR", "IT", "ES", "PL", "SE", "BE", "AT", "PT", "IE", "FI", "CZ")

T = TypeVar("T")
C = TypeVar("C", Operator, Liaison)


class SetupError(RuntimeError):
    """The harness cannot run against this network; the message says why."""


def describe_receipt(receipt: receipt_pb2.Receipt) -> str:
    """A short human form of a receipt."""
    text = outcome_name(receipt.outcome)
    if receipt.outcome == REJECTED:
        text += f"/{reason_name(receipt.reject_reason)}"
        if receipt.detail:
            text += f" ({receipt.detail[:80]!r})"
    elif receipt.outcome == FORWARDED:
        text += f" to {receipt.forwarded_to or '(nobody)'}"
    elif receipt.case_id:
        text += f" case {receipt.case_id}"
    return text


def rpc_code(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


#: Trailer a node sets on a refusal that may be retried after a delay (ms).
PUSHBACK_TRAILER = "grpc-retry-pushback-ms"
#: Retries of one call the target pushed back, and the longest wait (s).
PUSHBACK_RETRIES = 20
MAX_PUSHBACK = 2.0


def pushback_seconds(error: grpc.RpcError) -> float | None:
    """How long to wait before retrying a RESOURCE_EXHAUSTED call that
    carries a pushback trailer; None for any other failure."""
    if rpc_code(error) is not grpc.StatusCode.RESOURCE_EXHAUSTED or not isinstance(
        error, grpc.Call
    ):
        return None
    for key, value in error.trailing_metadata() or ():
        if key == PUSHBACK_TRAILER:
            try:
                return min(max(int(value), 0) / 1000 + 0.02, MAX_PUSHBACK)
            except (TypeError, ValueError):
                return None
    return None


def rpc_text(error: grpc.RpcError) -> str:
    """``CODE: details`` of a failed call."""
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    return f"{rpc_code(error).name}: {details}"


def first_country(member: roster_pb2.Member | None) -> str:
    """The member's first jurisdiction, or empty."""
    return member.jurisdictions[0] if member is not None and member.jurisdictions else ""


def choose_other_hotline(
    roster: RosterView, exclude: Iterable[str], known: Iterable[str] | None = None
) -> roster_pb2.Member | None:
    """The first hotline with a jurisdiction that is not excluded (and, when
    ``known`` is given, whose signing key the harness holds)."""
    skip = set(exclude)
    allowed = None if known is None else set(known)
    for member in roster.roster.members:
        if (
            member.role == roster_pb2.ROLE_HOTLINE
            and member.member_id not in skip
            and (allowed is None or member.member_id in allowed)
            and member.jurisdictions
            and member.endpoint
        ):
            return member
    return None


def path_members(roster: RosterView, exclude: Iterable[str], count: int) -> tuple[str, ...]:
    """``count`` distinct member ids outside ``exclude``, node-running members first."""
    skip = set(exclude)
    members = sorted(
        (m for m in roster.roster.members if m.member_id not in skip),
        key=lambda m: (m.role == roster_pb2.ROLE_LIAISON, not m.endpoint),
    )
    ids = [m.member_id for m in members][:count]
    ids += [f"cf-relay-{n}" for n in range(1, count - len(ids) + 1)]
    return tuple(ids)


def build_factory(
    roster: RosterView,
    me: Party,
    target: str,
    other: Party,
    *,
    clock: Callable[[], datetime],
    url_prefix: str,
    random_bits: Callable[[], int],
    extra: ExtraKeys | None = None,
) -> ItemFactory:
    """An ItemFactory for ``me`` delivering to ``target`` under ``roster``."""
    target_member = roster.member(target)
    target_country = first_country(target_member)
    if not target_country:
        if roster.roster.fallback_member_id != target:
            raise SetupError(f"target {target} is responsible for no country")
        target_country = "ZZ"
    own_country = first_country(roster.member(me.member_id))
    if not own_country:
        raise SetupError(f"{me.member_id} has no jurisdiction in the roster")
    claimed = roster.claimed_countries()
    uncovered = next((c for c in UNCOVERED_CANDIDATES if c not in claimed), "")
    if not uncovered:
        raise SetupError("no uncovered country left to test the fallback with")
    return ItemFactory(
        me=me,
        target=target,
        target_country=target_country,
        other=other,
        other_country=first_country(roster.member(other.member_id)),
        fallback=roster.roster.fallback_member_id,
        uncovered_country=uncovered,
        own_country=own_country,
        path_members=path_members(roster, (target, me.member_id, other.member_id), 3),
        clock=clock,
        url_prefix=url_prefix,
        random_bits=random_bits,
        extra=extra or ExtraKeys(),
    )


def live_clock() -> datetime:
    """The harness's wall clock (the node under test runs on the same machine)."""
    return datetime.now(UTC)


class Context:
    """Shared state of one harness run against one target node."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.target_id = target.member_id
        self.me = Party(target.harness.member_id, target.harness.key())
        self.tls = target.harness_tls()
        self.run_id = secrets.token_hex(4)
        self.extra = ExtraKeys()
        self._channel: grpc.Channel | None = None
        self._stub: federation_service_pb2_grpc.FederationServiceStub | None = None
        self._roster: RosterView | None = None
        self._factory: ItemFactory | None = None
        self._fixtures: dict[str, Any] = {}
        self._clients: list[Operator | Liaison] = []
        self.peer: PeerServer | None = None
        #: Reports by the harness member that the target accepted (ACCEPTED/DUPLICATE).
        self.accepted_reports: dict[str, str] = {}
        #: Versions offered in PublishRoster calls, so later rosters go above them.
        self.offered_versions: set[int] = set()

    # --- lifecycle --------------------------------------------------------------

    def setup(self) -> None:
        """Connect, learn the roster, and start the peer server."""
        self._channel = secure_channel(self.target.endpoint, self.tls.channel_credentials())
        self._stub = federation_service_pb2_grpc.FederationServiceStub(self._channel)
        self._roster = self._initial_roster()
        roster = self._roster
        other = choose_other_hotline(
            roster,
            (self.target_id, self.me.member_id),
            {c.member_id for c in self.target.third_parties},
        )
        if other is None:
            raise SetupError(
                "the target file names no third_party hotline of the roster besides the target"
            )
        try:
            other_key = self._third_party_key(other.member_id)
        except (ManifestError, OSError) as exc:
            raise SetupError(f"no signing key for {other.member_id}: {exc}") from exc
        self._factory = build_factory(
            roster,
            self.me,
            self.target_id,
            Party(other.member_id, other_key),
            clock=live_clock,
            url_prefix=f"https://cf-{self.run_id}.conformance.example",
            random_bits=lambda: secrets.randbits(74),
            extra=self.extra,
        )
        self.peer = PeerServer(
            self.target.harness_endpoint, self.tls, self.me, lambda: self._roster
        )
        try:
            self.peer.start()
        except OSError as exc:
            raise SetupError(str(exc)) from exc

    def close(self) -> None:
        """Let the nodes finish talking to us, stop the peer server, close the channel."""
        if self.peer is not None:
            self.peer.wait_quiet(DRAIN_QUIET, DRAIN_LIMIT)
            self.peer.stop()
        if self._channel is not None:
            self._channel.close()
        for client in self._clients:
            client.close()

    def _initial_roster(self) -> RosterView:
        try:
            reply = self.stub.GetRoster(
                federation_service_pb2.GetRosterRequest(known_version=0), timeout=DEADLINE
            )
            if reply.HasField("roster"):
                return RosterView.parse(reply.roster)
        except grpc.RpcError as exc:
            if rpc_code(exc) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise SetupError(
                    f"target {self.target_id} at {self.target.endpoint} does not answer: "
                    f"{rpc_text(exc)} (is the network up? hfed devnet up DIR)"
                ) from exc
        except ValueError:
            pass
        # The target does not hand out its roster (the ROS cases will say so):
        # fall back to the bootstrap roster of the target file.
        if self.target.bootstrap_roster is None:
            raise SetupError(f"target {self.target_id} serves no roster and none is given")
        signed = roster_pb2.SignedRoster.FromString(self.target.bootstrap_roster.read_bytes())
        return RosterView.parse(signed)

    def _third_party_key(self, member_id: str) -> Ed25519Key:
        credentials = self.target.third_party(member_id)
        if credentials is None:
            raise ManifestError(f"the target file gives no key of {member_id}")
        key = credentials.key()
        if key.key_id not in self.roster.keys_of(member_id):
            raise ManifestError(f"{member_id}'s signing key is not in the roster")
        return key

    # --- accessors --------------------------------------------------------------

    @property
    def stub(self) -> federation_service_pb2_grpc.FederationServiceStub:
        """FederationService of the target, called as the harness member."""
        if self._stub is None:
            raise SetupError("not set up")
        return self._stub

    @property
    def channel(self) -> grpc.Channel:
        """The channel to the target, as the harness member."""
        if self._channel is None:
            raise SetupError("not set up")
        return self._channel

    @property
    def roster(self) -> RosterView:
        """The roster the harness currently believes the target holds."""
        if self._roster is None:
            raise SetupError("not set up")
        return self._roster

    @property
    def factory(self) -> ItemFactory:
        """Builds items from the harness member to the target."""
        if self._factory is None:
            raise SetupError("not set up")
        return self._factory

    @property
    def peer_server(self) -> PeerServer:
        """The harness's own FederationService."""
        if self.peer is None:
            raise SetupError("not set up")
        return self.peer

    def operator(self) -> Operator:
        """The node's HotlineService, as its operator (the target file's credentials)."""
        return self.once("operator", lambda: self._client(Operator, self.target.operator_tls()))

    def liaison(self) -> Liaison:
        """The node's LiaisonService, as the target file's liaison (skips without one)."""
        if self.target.liaison is None:
            raise CaseSkippedError("the target file names no liaison")
        tls = self.target.liaison.tls(self.tls.ca_cert)
        return self.once("liaison", lambda: self._client(Liaison, tls))

    def _client(self, kind: Callable[[str, TlsIdentity], C], tls: TlsIdentity) -> C:
        client = kind(self.target.endpoint, tls)
        self._clients.append(client)
        return client

    def once(self, name: str, make: Callable[[], T]) -> T:
        """A memoised fixture: ``make()`` runs at most once per run."""
        if name not in self._fixtures:
            self._fixtures[name] = make()
        value: T = self._fixtures[name]
        return value

    def peek(self, name: str) -> Any:
        """A fixture's value if it was made, else None."""
        return self._fixtures.get(name)

    # --- delivering -------------------------------------------------------------

    def deliver(
        self, items: Iterable[federation_service_pb2.ForwardedItem], timeout: float = DEADLINE
    ) -> federation_service_pb2.DeliverResponse:
        """One Deliver call; RPC errors propagate.

        A call the target refuses with a retry hint (its rate limit: the
        grpc-retry-pushback-ms trailer) is made again after that delay, as
        any well-behaved peer would, a bounded number of times: the cases
        check the target's answers, not how fast the harness may ask.
        """
        request = federation_service_pb2.DeliverRequest(items=list(items))
        for _ in range(PUSHBACK_RETRIES):
            try:
                return self.stub.Deliver(request, timeout=timeout)
            except grpc.RpcError as exc:
                delay = pushback_seconds(exc)
                if delay is None:
                    raise
                time.sleep(delay)
        return self.stub.Deliver(request, timeout=timeout)

    def deliver_ok(
        self, items: Iterable[federation_service_pb2.ForwardedItem], timeout: float = DEADLINE
    ) -> list[envelope_pb2.SignedEnvelope]:
        """One Deliver call that must succeed with one receipt per item."""
        batch = list(items)
        try:
            response = self.deliver(batch, timeout)
        except grpc.RpcError as exc:
            fail(f"expected receipts, got the call failing with {rpc_text(exc)}")
        if len(response.receipts) != len(batch):
            fail(f"expected {len(batch)} receipts, got {len(response.receipts)}")
        return list(response.receipts)

    def run_item(self, spec: ItemSpec) -> receipt_pb2.Receipt:
        """Deliver one item, verify its receipt, and check it says what ``spec`` expects."""
        (envelope,) = self.deliver_ok([spec.item])
        receipt = self.check_receipt(envelope, spec.item.envelope)
        self.expect(receipt, spec.expect, spec.item_id)
        return receipt

    def expect(self, receipt: receipt_pb2.Receipt, expect: Expect, item_id: str) -> None:
        """Fail unless ``receipt`` matches ``expect``."""
        got = describe_receipt(receipt)
        wrong = receipt.outcome != expect.outcome
        if expect.outcome == REJECTED:
            wrong = wrong or receipt.reject_reason != expect.reason
        if expect.outcome == FORWARDED:
            wrong = wrong or receipt.forwarded_to != expect.forwarded_to
        if wrong:
            fail(f"expected {expect.describe()}, got {got}")
        if expect.outcome in (ACCEPTED, DUPLICATE):
            if not receipt.case_id:
                fail(f"{outcome_name(receipt.outcome)} receipt carries no case_id")
            self.accepted_reports[item_id] = receipt.case_id
        if expect.outcome != REJECTED and item_id and receipt.item_id != item_id:
            fail(f"receipt item_id is {receipt.item_id!r}, expected {item_id!r}")

    def check_receipt(
        self, envelope: envelope_pb2.SignedEnvelope, sent: envelope_pb2.SignedEnvelope
    ) -> receipt_pb2.Receipt:
        """Verify a receipt from the target as a careful sender would (sections 2-4)."""
        target = self.target_id
        if envelope.payload_type != RECEIPT_TYPE:
            fail(f"receipt envelope has payload_type {envelope.payload_type!r}")
        if envelope.signer_member_id != target:
            fail(f"receipt signed by {envelope.signer_member_id!r}, expected {target}")
        key = self.roster.keys_of(target).get(envelope.key_id)
        if key is None or key.revoked:
            fail(f"receipt key_id {envelope.key_id[:16]}... is not a live key of {target}")
        if not verify_envelope(envelope, key.public_key):
            fail("receipt signature does not verify with the target's roster key")
        receipt = receipt_pb2.Receipt()
        try:
            receipt.ParseFromString(envelope.payload)
        except Exception as exc:
            fail(f"receipt payload does not parse: {exc}")
        self._check_receipt_fields(receipt, key, sent)
        return receipt

    def _check_receipt_fields(
        self,
        receipt: receipt_pb2.Receipt,
        key: roster_pb2.PublicKey,
        sent: envelope_pb2.SignedEnvelope,
    ) -> None:
        if receipt.receiver_member_id != self.target_id:
            fail(f"receipt receiver_member_id is {receipt.receiver_member_id!r}")
        if receipt.payload_sha256 != hashlib.sha256(sent.payload).digest():
            fail("receipt payload_sha256 is not the SHA-256 of the payload sent")
        echoed = sent.payload_type.encode()[:64].decode(errors="ignore")
        if receipt.payload_type not in (sent.payload_type, echoed):
            fail(f"receipt payload_type is {receipt.payload_type!r}, sent {sent.payload_type!r}")
        if receipt.outcome == receipt_pb2.OUTCOME_UNSPECIFIED:
            fail("receipt outcome is OUTCOME_UNSPECIFIED")
        rejected = receipt.outcome == REJECTED
        if rejected == (receipt.reject_reason == receipt_pb2.REJECT_REASON_UNSPECIFIED):
            fail(f"receipt {describe_receipt(receipt)} has an inconsistent reject_reason")
        if receipt.outcome == FORWARDED and not receipt.forwarded_to:
            fail("FORWARDED receipt names no forwarded_to")
        if len(receipt.detail) > MAX_DETAIL_CHARS:
            fail(f"receipt detail has {len(receipt.detail)} characters (at most 500)")
        if not receipt.HasField("received_at"):
            fail("receipt has no received_at")
        at = timestamp_datetime(receipt.received_at.seconds, receipt.received_at.nanos)
        if not key_covers(key, at):
            fail("receipt received_at lies outside the signing key's validity")

    # --- rosters ----------------------------------------------------------------

    def root_keys(self) -> list[Ed25519Key]:
        """The network's root private keys."""
        return self.once("root-keys", self.target.load_root_keys)

    def threshold_roots(self) -> list[Ed25519Key]:
        """As many root keys as the threshold needs."""
        return self.root_keys()[: self.target.root_threshold]

    def get_roster(self, known_version: int) -> federation_service_pb2.GetRosterResponse:
        """GetRoster as the harness member (RPC errors propagate)."""
        return self.stub.GetRoster(
            federation_service_pb2.GetRosterRequest(known_version=known_version),
            timeout=DEADLINE,
        )

    def fetch_roster(self) -> RosterView:
        """The target's current roster, verified against the pinned roots."""
        try:
            reply = self.get_roster(0)
        except grpc.RpcError as exc:
            fail(f"GetRoster(0) failed: {rpc_text(exc)}")
        if not reply.HasField("roster"):
            fail("GetRoster(known_version=0) returned no roster")
        try:
            view = RosterView.parse(reply.roster)
        except Exception as exc:
            fail(f"the roster bytes do not parse: {exc}")
        good = valid_root_signers(reply.roster, self.target.root_public_keys)
        if len(good) < self.target.root_threshold:
            fail(
                f"roster carries {len(good)} valid distinct root signatures, "
                f"threshold is {self.target.root_threshold}"
            )
        self._roster = view
        return view

    def derive_roster(
        self,
        base: RosterView,
        *,
        version: int,
        issued_at: datetime | None = None,
        expires_at: datetime | None = None,
        edit: Callable[[roster_pb2.Roster], None] | None = None,
    ) -> bytes:
        """Serialized copy of ``base.roster`` with a new version (and optional edits)."""
        roster = roster_pb2.Roster()
        roster.CopyFrom(base.roster)
        roster.version = version
        roster.issued_at.FromDatetime(issued_at or live_clock())
        if expires_at is not None:
            roster.expires_at.FromDatetime(expires_at)
        if edit is not None:
            edit(roster)
        return roster.SerializeToString()

    def publish(
        self, signed: roster_pb2.SignedRoster
    ) -> federation_service_pb2.PublishRosterResponse:
        """PublishRoster as the harness member (RPC errors propagate)."""
        if signed.roster:
            with contextlib.suppress(Exception):  # unparseable rosters have no version
                self.offered_versions.add(RosterView.parse(signed).version)
        return self.stub.PublishRoster(
            federation_service_pb2.PublishRosterRequest(roster=signed), timeout=DEADLINE
        )

    def next_version(self, base: RosterView) -> int:
        """A version above the base and above anything offered so far."""
        return max([base.version, *self.offered_versions]) + 1

    def with_extra_keys(self, roster: roster_pb2.Roster) -> None:
        """Give the harness member its extra keys: a second, a revoked and a retired one."""
        extra = self.extra
        for member in roster.members:
            if member.member_id != self.me.member_id:
                continue
            added = {extra.second.key_id, extra.revoked.key_id, extra.retired.key_id}
            kept = [k for k in member.signing_keys if k.key_id not in added]
            del member.signing_keys[:]
            member.signing_keys.extend(kept)
            member.signing_keys.add(key_id=extra.second.key_id, public_key=extra.second.public_key)
            member.signing_keys.add(
                key_id=extra.revoked.key_id, public_key=extra.revoked.public_key, revoked=True
            )
            retired = member.signing_keys.add(
                key_id=extra.retired.key_id, public_key=extra.retired.public_key
            )
            retired.not_before.FromDatetime(extra.retired_not_before)
            retired.not_after.FromDatetime(extra.retired_not_after)

    def ensure_extra_keys(self) -> tuple[RosterView, RosterView]:
        """Publish (once) a newer roster giving the harness member its extra keys.

        Every member keeps its keys, roles and endpoints, so later runs against
        the same network behave the same. Returns (previous, installed).
        """
        return self.once("newer-roster", self._publish_newer)

    def _publish_newer(self) -> tuple[RosterView, RosterView]:
        previous = self.fetch_roster()
        data = self.derive_roster(
            previous, version=self.next_version(previous), edit=self.with_extra_keys
        )
        signed = sign_roster(data, self.threshold_roots())
        try:
            reply = self.publish(signed)
        except grpc.RpcError as exc:
            fail(f"publishing a newer valid roster failed: {rpc_text(exc)}")
        installed = RosterView.parse(signed)
        if reply.version != installed.version:
            fail(f"PublishRoster answered version {reply.version}, expected {installed.version}")
        self._roster = installed
        return previous, installed
