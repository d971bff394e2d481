"""Fuzzing what a node does with the bytes of one delivered item.

The in-process receiver below runs the node's own receive path on one
serialized ForwardedItem, in the node's order: decode the item
(``federation.wire.convert.envelope_from_proto``, as the Deliver servicer
does), ``envelope_checks`` (limits, signer, key), ``crypto.dsse.verify_many``
over the DSSE encoding, then ``PayloadChecker.parse`` (decode the payload,
key window, author, content, path, moved_by). It stops before storage: what
it decides is what the node decides before it touches its database.

Seeds are valid items (a direct report, a forwarded report, a status update,
a re-routed report carrying its MOVED update). Mutations: bit flips, byte
overwrites, truncation, deletion, duplication, splices with other seeds,
random field insertion (anywhere, or between whole fields), and swaps of
whole envelope fields between seeds.

Properties, for every mutant:
- nothing but the documented failures escapes: a ForwardedItem that does not
  decode (``DecodeError``: the call fails, see test_malformed_input.py);
- every other outcome is a Rejection with a reason code and a short detail,
  or an acceptance;
- an acceptance is only possible for the seed's exact signed envelope (and
  moved_by): no mutation forges a signature or smuggles content past it.
A second mode plays a hostile but authenticated member: it mutates the
payload and RE-SIGNS it with the seed signer's key, so the parser, the
content checks and the URL canonicaliser see arbitrary authenticated bytes;
there, any outcome is fine but no exception may escape.

Short variants (CI): a few thousand hypothesis examples per mode, and one
round of a few hundred mutants against a real node over gRPC, whose
receipts must agree with the in-process receiver. Long variant (--long): a
seeded random mutator loop of 1,000,000 executions.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.dsse import Envelope, pae, verify_many
from crypto.keys import SigningKey
from federation.core import envelope_checks as checks
from federation.core.canonical_url import canonical_url
from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.core.limits import DEFAULT_LIMITS
from federation.core.reasons import REPORT_TYPE, STATUS_UPDATE_TYPE, Rejection, RejectReason
from federation.core.roster import Roster
from federation.core.status_update import StatusUpdate
from federation.intake.payloads import Parsed, ParsedReport, PayloadChecker, Proofs
from federation.runtime.clock import utc_now
from federation.wire.convert import encode_status_update, envelope_from_proto
from hfp.v1 import envelope_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.hostile import (
    END_GROUP,
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    RSS_GROWTH_BOUND_KIB,
    START_GROUP,
    VARINT,
    field_spans,
    length_delimited,
    raw_deliver,
    still_serving,
    tag,
    unmetered_network,
    varint,
    watch,
)
from tests.support.net import (
    BULK_DEADLINE,
    Network,
    create_network,
    deliver,
    item,
    make_report,
    outcome_name,
    reason_name,
    sign,
    sign_report,
    small_members,
    verify_receipt,
)

RECEIVER = "hotline-nl"
SENDER = "hotline-dk"
AUTHOR = "hotline-de"
#: Payload types Deliver accepts (spec §4).
DELIVERABLE = frozenset({REPORT_TYPE, STATUS_UPDATE_TYPE})
#: A refusal's detail goes to the sender: short, never an echo of the input.
MAX_DETAIL_CHARS = 300


# --- the in-process receiver ------------------------------------------------------


class Seed(NamedTuple):
    """A valid item, its wire bytes, and the key that signed its envelope."""

    name: str
    wire: bytes
    envelope: Envelope
    moved_by: tuple[Envelope, ...]
    key: SigningKey


class Verdict(NamedTuple):
    """What the node decides for one item before storage."""

    #: False when the bytes are not a ForwardedItem: the whole call fails.
    decoded: bool
    envelope: Envelope | None = None
    moved_by: tuple[Envelope, ...] = ()
    parsed: Parsed | None = None
    rejection: Rejection | None = None


@dataclasses.dataclass(frozen=True)
class Receiver:
    """hotline-nl's receive path, pure: roster, limits and clock fixed."""

    roster: Roster
    now: datetime
    member_id: str = RECEIVER

    def receive(self, wire: bytes, sender: str = SENDER) -> Verdict:
        """Decide one serialized ForwardedItem handed over by ``sender``."""
        try:
            message = fed_pb.ForwardedItem.FromString(wire)
        except DecodeError:
            return Verdict(decoded=False)
        envelope = envelope_from_proto(message.envelope)
        moved_by = tuple(envelope_from_proto(e) for e in message.moved_by)
        joined = tuple(envelope_from_proto(e) for e in message.joined_receipts)
        refusal = checks.check_envelope_limits(envelope, DELIVERABLE, DEFAULT_LIMITS)
        if refusal is not None:
            return Verdict(True, envelope, moved_by, rejection=refusal)
        key = checks.find_signing_key(envelope, self.roster)
        if isinstance(key, Rejection):
            return Verdict(True, envelope, moved_by, rejection=key)
        job = (key.public_key, pae(envelope.payload_type, envelope.payload), envelope.signature)
        if not verify_many([job])[0]:
            bad = Rejection(RejectReason.BAD_SIGNATURE, "signature does not verify")
            return Verdict(True, envelope, moved_by, rejection=bad)
        checker = PayloadChecker(self.member_id, DEFAULT_LIMITS)
        _, parsed = checker.parse(
            envelope,
            key,
            tuple(message.via_member_ids),
            Proofs(moved_by, joined),
            sender,
            self.roster,
            self.now,
        )
        if isinstance(parsed, Rejection):
            return Verdict(True, envelope, moved_by, rejection=parsed)
        return Verdict(True, envelope, moved_by, parsed=parsed)


def check_tampered(verdict: Verdict, seeds: Sequence[Seed]) -> None:
    """The properties of a mutant of the seeds (signatures untouched).

    Splices and field swaps move whole signed envelopes between seeds, so
    an acceptance is fine for any seed's envelope, never for another one.
    """
    if not verdict.decoded:
        return
    if verdict.rejection is not None:
        _check_rejection(verdict.rejection)
        return
    assert verdict.parsed is not None
    assert verdict.envelope in [s.envelope for s in seeds], "accepted a changed envelope"
    assert verdict.moved_by in [(), *(s.moved_by for s in seeds)], "accepted a changed moved_by"


def check_resigned(verdict: Verdict) -> None:
    """The properties of a payload mutated and re-signed by its member."""
    assert verdict.decoded
    if verdict.rejection is not None:
        _check_rejection(verdict.rejection)
        return
    if isinstance(verdict.parsed, ParsedReport):
        assert canonical_url(verdict.parsed.canonical) == verdict.parsed.canonical


def _check_rejection(rejection: Rejection) -> None:
    assert isinstance(rejection.reason, RejectReason)
    assert rejection.detail
    assert len(rejection.detail) <= MAX_DETAIL_CHARS


# --- seeds ------------------------------------------------------------------------


class Keys(NamedTuple):
    roster: Roster
    sender: SigningKey
    author: SigningKey


def _keys(net: Network) -> Keys:
    return Keys(net.bootstrap_roster().roster, net.signing_key(SENDER), net.signing_key(AUTHOR))


def _wire(envelope: Envelope, via: Sequence[str] = (), moved_by: Envelope | None = None) -> bytes:
    message = item(envelope, via)
    if moved_by is not None:
        message.moved_by.append(item(moved_by).envelope)
    return message.SerializeToString()


def _update(report_ids: tuple[str, ...], status: CaseStatus, country: str = "") -> bytes:
    return encode_status_update(
        StatusUpdate(
            update_id=new_uuid7(),
            case_id=new_uuid7(),
            report_ids=report_ids,
            member_id=SENDER,
            status=status,
            sequence=1 if status is CaseStatus.RECEIVED else 2,
            observed_at=utc_now() - timedelta(minutes=1),
            new_hosting_country=country,
        )
    )


def make_seeds(keys: Keys) -> list[Seed]:
    """Four valid items hotline-dk hands to hotline-nl (fresh ids each call)."""
    made = utc_now() - timedelta(minutes=1)
    direct = sign_report(make_report(SENDER, "NL", created_at=made), keys.sender)
    forwarded = sign_report(make_report(AUTHOR, "NL", created_at=made), keys.author)
    update = sign(
        _update((new_uuid7(),), CaseStatus.RECEIVED), keys.sender, SENDER, STATUS_UPDATE_TYPE
    )
    moved_report = make_report(AUTHOR, "DK", created_at=made)
    moved = sign_report(moved_report, keys.author)
    move = sign(
        _update((moved_report.report_id,), CaseStatus.MOVED, "NL"),
        keys.sender,
        SENDER,
        STATUS_UPDATE_TYPE,
    )
    return [
        Seed("direct-report", _wire(direct), direct, (), keys.sender),
        Seed("forwarded-report", _wire(forwarded, [SENDER]), forwarded, (), keys.author),
        Seed("status-update", _wire(update), update, (), keys.sender),
        Seed("moved-report", _wire(moved, [SENDER], move), moved, (move,), keys.author),
    ]


# --- mutations --------------------------------------------------------------------


class Mutation(NamedTuple):
    """One edit: an operation and its parameters (hypothesis shrinks these)."""

    op: int
    a: int
    b: int
    blob: bytes
    #: Which part of an item the edit lands in (see PARTS); the framing
    #: around that part is rebuilt, so most mutants still decode.
    where: int = 0


OPS = 10
#: Parts of a ForwardedItem a mutation can target: 0 is the item's raw bytes.
PARTS = (
    "item",
    "payload",
    "payload_type",
    "signer_member_id",
    "key_id",
    "signature",
    "via_member_ids",
    "moved_by",
)
_ENVELOPE_FIELDS = PARTS[1:6]
_WIRE_TYPES = (VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32)


def _random_field(a: int, b: int, blob: bytes) -> bytes:
    number = 1 + b % 20 if b % 7 else 1 + a % (1 << 29)  # mostly known numbers
    wire_type = _WIRE_TYPES[(a >> 3) % len(_WIRE_TYPES)]
    if wire_type == VARINT:
        return tag(number, wire_type) + varint(int.from_bytes(blob[:10] or b"\x00", "little"))
    if wire_type in (FIXED64, FIXED32):
        width = 8 if wire_type == FIXED64 else 4
        return tag(number, wire_type) + blob[:width].ljust(width, b"\x00")
    if wire_type == LENGTH_DELIMITED:
        return length_delimited(number, blob)
    return tag(number, wire_type)


def _swap_envelope_field(data: bytes, m: Mutation, seeds: Sequence[Seed]) -> bytes:
    try:
        message = fed_pb.ForwardedItem.FromString(data)
    except DecodeError:
        return data
    donor = fed_pb.ForwardedItem.FromString(seeds[m.b % len(seeds)].wire)
    choice = m.a % 8
    if choice < 5:
        name = ("payload", "payload_type", "signer_member_id", "key_id", "signature")[choice]
        setattr(message.envelope, name, getattr(donor.envelope, name))
    elif choice == 5:
        message.via_member_ids[:] = list(donor.via_member_ids) + [SENDER] * (m.b % 3)
    elif choice == 6:
        del message.moved_by[:]
        message.moved_by.extend([donor.envelope] if m.b % 2 else donor.moved_by)
    else:
        message.ClearField("moved_by" if m.b % 2 else "via_member_ids")
    return message.SerializeToString()


def mutate(data: bytes, m: Mutation, seeds: Sequence[Seed]) -> bytes:
    """Apply one mutation to serialized bytes."""
    size = len(data)
    if m.op == 0 and size:  # flip one bit
        bit = m.a % (size * 8)
        return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1 :]
    if m.op == 1 and size:  # overwrite one byte
        at = m.a % size
        return data[:at] + bytes([m.b & 0xFF]) + data[at + 1 :]
    if m.op == 2:  # truncate
        return data[: m.a % (size + 1)]
    if m.op == 3 and size:  # delete a run
        at = m.a % size
        return data[:at] + data[at + 1 + m.b % 16 :]
    if m.op == 4 and size:  # duplicate a run
        at = m.a % size
        run = data[at : at + 1 + m.b % 32]
        return data[:at] + run + data[at:]
    if m.op == 5:  # splice with another seed
        other = seeds[m.b % len(seeds)].wire
        return data[: m.a % (size + 1)] + other[m.b % (len(other) + 1) :]
    if m.op == 6:  # insert a random field anywhere
        at = m.a % (size + 1)
        return data[:at] + _random_field(m.a, m.b, m.blob) + data[at:]
    if m.op == 7:  # insert a random field between two top-level fields
        try:
            bounds = [0] + [s.end for s in field_spans(data)]
        except (ValueError, IndexError):
            bounds = [0, size]
        at = bounds[m.a % len(bounds)]
        return data[:at] + _random_field(m.a, m.b, m.blob) + data[at:]
    if m.op == 8:  # overwrite a run with the blob
        at = m.a % (size + 1)
        return data[:at] + m.blob + data[at + len(m.blob) :]
    return _swap_envelope_field(data, m, seeds)


def _envelope_raw(envelope: envelope_pb2.SignedEnvelope, part: str, value: bytes) -> bytes:
    """The envelope's wire bytes with ``part`` replaced by raw ``value``."""
    out = b""
    for name in _ENVELOPE_FIELDS:
        current = getattr(envelope, name)
        raw = value if name == part else (current.encode() if isinstance(current, str) else current)
        out += length_delimited(envelope.DESCRIPTOR.fields_by_name[name].number, raw)
    return out


def mutate_item(wire: bytes, m: Mutation, seeds: Sequence[Seed]) -> bytes:
    """Apply one mutation to the part of a serialized ForwardedItem it targets."""
    part = PARTS[m.where % len(PARTS)]
    try:
        message = fed_pb.ForwardedItem.FromString(wire)
    except DecodeError:
        part = "item"
    if part == "item" or (part == "moved_by" and not message.moved_by):
        return mutate(wire, m, seeds)
    moved = message.moved_by[0].SerializeToString() if message.moved_by else None
    via = [v.encode() for v in message.via_member_ids]
    if part == "moved_by":
        moved = mutate(message.moved_by[0].SerializeToString(), m, seeds)
    elif part == "via_member_ids":
        joined = mutate(b"\x00".join(via), m, seeds)
        via = joined.split(b"\x00") if joined else []
    envelope = message.envelope
    if part in _ENVELOPE_FIELDS:
        current = getattr(envelope, part)
        value = mutate(current.encode() if isinstance(current, str) else current, m, seeds)
        envelope_wire = _envelope_raw(envelope, part, value)
    else:
        envelope_wire = envelope.SerializeToString()
    out = length_delimited(1, envelope_wire) + b"".join(length_delimited(2, v) for v in via)
    return out + (length_delimited(3, moved) if moved is not None else b"")


def resign(seed: Seed, payload: bytes) -> bytes:
    """The seed item with a new payload, signed again by the seed's signer."""
    envelope = sign(payload, seed.key, seed.envelope.signer_member_id, seed.envelope.payload_type)
    message = fed_pb.ForwardedItem.FromString(seed.wire)
    message.envelope.payload = envelope.payload
    message.envelope.signature = envelope.signature
    return message.SerializeToString()


def random_mutation(rng: random.Random) -> Mutation:
    """A mutation drawn from a seeded generator (the long loop's mutator)."""
    blob = rng.randbytes(rng.choice((0, 1, 4, 16, 64, 300)))
    return Mutation(
        rng.randrange(OPS), rng.getrandbits(32), rng.getrandbits(32), blob, rng.randrange(16)
    )


mutations = st.lists(
    st.builds(
        Mutation,
        st.integers(0, OPS - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=300),
        st.integers(0, 15),
    ),
    min_size=1,
    max_size=4,
)


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Keys and roster of a network that is created but never started."""
    directory = tmp_path_factory.mktemp("fuzz-keys") / "net"
    return _keys(create_network(directory, small_members(RECEIVER)))


@pytest.fixture(scope="module")
def seeds(keys: Keys) -> list[Seed]:
    return make_seeds(keys)


@pytest.fixture(scope="module")
def receiver(keys: Keys) -> Receiver:
    return Receiver(keys.roster, utc_now())


# --- in-process: hypothesis ---------------------------------------------------------

FUZZ_SETTINGS = settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,  # CI runs the same examples every time
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_seeds_are_accepted(receiver: Receiver, seeds: list[Seed]) -> None:
    """Run every unmodified seed through the receiver, expect each accepted
    (otherwise the fuzz properties below would hold vacuously)."""
    for seed in seeds:
        verdict = receiver.receive(seed.wire)
        assert verdict.parsed is not None, (seed.name, verdict.rejection)


@FUZZ_SETTINGS
@given(index=st.integers(0, 3), edits=mutations)
def test_tampered_items_are_never_accepted(
    receiver: Receiver, seeds: list[Seed], index: int, edits: list[Mutation]
) -> None:
    """Mutate a valid item's bytes (signature untouched), run the receive path,
    expect a Rejection with a reason code or, only for the unchanged signed
    envelope, an acceptance; no exception but a DecodeError of the item."""
    data = seeds[index].wire
    for edit in edits:
        data = mutate_item(data, edit, seeds)
    check_tampered(receiver.receive(data), seeds)


@FUZZ_SETTINGS
@given(index=st.integers(0, 3), edits=mutations)
def test_resigned_payload_mutations_raise_nothing(
    receiver: Receiver, seeds: list[Seed], index: int, edits: list[Mutation]
) -> None:
    """Mutate a valid item's payload and re-sign it with its signer's key (a
    hostile member), run the receive path, expect an acceptance or a Rejection
    with a reason code, never an exception."""
    seed = seeds[index]
    payload = seed.envelope.payload
    for edit in edits:
        payload = mutate(payload, edit, seeds)
    check_resigned(receiver.receive(resign(seed, payload)))


# --- in-process: the long loop --------------------------------------------------------

LONG_EXECUTIONS = 1_000_000


@pytest.mark.long
@pytest.mark.timeout(4 * 3600)
def test_million_mutants_through_the_receive_path(
    receiver: Receiver, seeds: list[Seed], capsys: pytest.CaptureFixture[str]
) -> None:
    """Run 1,000,000 seeded random mutants (three in four tampered, one in four
    re-signed) through the receive path, expect the fuzz properties for all."""
    rng = random.Random(20240909)
    started = time.monotonic()
    outcomes: dict[str, int] = {}
    for execution in range(LONG_EXECUTIONS):
        seed = seeds[rng.randrange(len(seeds))]
        resigned = execution % 4 == 3
        data = seed.envelope.payload if resigned else seed.wire
        for _ in range(rng.randint(1, 4)):
            edit = random_mutation(rng)
            data = mutate(data, edit, seeds) if resigned else mutate_item(data, edit, seeds)
        try:
            if resigned:
                verdict = receiver.receive(resign(seed, data))
                check_resigned(verdict)
            else:
                verdict = receiver.receive(data)
                check_tampered(verdict, seeds)
        except BaseException:
            print(f"execution {execution}, seed {seed.name}, input {data.hex()}")
            raise
        key = (
            "undecodable"
            if not verdict.decoded
            else verdict.rejection.reason.name
            if verdict.rejection
            else "accepted"
        )
        outcomes[key] = outcomes.get(key, 0) + 1
    with capsys.disabled():
        print(
            f"\nfuzz: {LONG_EXECUTIONS} executions in {time.monotonic() - started:.0f} s; "
            f"outcomes {dict(sorted(outcomes.items()))}"
        )
    assert sum(outcomes.values()) == LONG_EXECUTIONS


# --- against a real node ---------------------------------------------------------------

NODE_ROUND = 400


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("fuzz-node") / "net"
    with unmetered_network(directory, small_members(RECEIVER)) as network:
        yield network


def test_fuzz_round_against_a_real_node(net: Network) -> None:
    """Deliver 400 seeded mutants of valid items to a real node, expect every
    receipt to agree with the in-process receiver (same refusal reason; only
    the seeds' own signed envelopes accepted), each undecodable item to fail
    its call alone, only the seeds stored, memory bounded, the node serving."""
    node_keys = _keys(net)
    node_seeds = make_seeds(node_keys)
    local = Receiver(node_keys.roster, utc_now())
    signed_seeds = [s.envelope for s in node_seeds]
    rng = random.Random(7)
    mutants: list[tuple[bytes, Verdict]] = []
    for _ in range(NODE_ROUND):
        seed = node_seeds[rng.randrange(len(node_seeds))]
        data = seed.wire
        for _ in range(rng.randint(1, 3)):
            data = mutate_item(data, random_mutation(rng), node_seeds)
        verdict = local.receive(data)
        check_tampered(verdict, node_seeds)
        mutants.append((data, verdict))
    decodable = [(d, v) for d, v in mutants if v.decoded]
    undecodable = [d for d, v in mutants if not v.decoded]
    assert decodable and undecodable, "the round must exercise both paths"
    before = watch(net, RECEIVER)

    with net.stub(SENDER, RECEIVER) as stub:
        signed = deliver(
            stub,
            [fed_pb.ForwardedItem.FromString(d) for d, _ in decodable],
            timeout=BULK_DEADLINE,
        )
    receipts = [verify_receipt(net, r) for r in signed]
    codes = {raw_deliver(net, SENDER, RECEIVER, length_delimited(1, d)).code for d in undecodable}

    compared = 0
    for (_, verdict), receipt in zip(decodable, receipts, strict=True):
        # A seed's own envelope may be answered from storage (the node
        # replays the receipt of an item it accepted), so only changed
        # envelopes, all refused in-process, are compared reason for reason.
        if verdict.envelope in signed_seeds:
            continue
        assert verdict.rejection is not None
        assert (outcome_name(receipt), reason_name(receipt)) == (
            "OUTCOME_REJECTED",
            f"REJECT_REASON_{verdict.rejection.reason.name}",
        ), receipt.detail
        compared += 1
    assert compared >= NODE_ROUND // 4
    assert grpc.StatusCode.OK not in codes
    assert before.let_in() <= len(node_seeds)
    assert before.rss_growth() < RSS_GROWTH_BOUND_KIB
    still_serving(net, SENDER, RECEIVER)
