"""Crafting hostile input for the reliability suite, and checking its aftermath.

Raw protobuf wire encoding (to build requests the generated classes would
refuse to build: truncated, deeply nested, invalid UTF-8), bit flips, a raw
Deliver call, and the "nothing let in, node keeps serving, memory bounded"
checks every hostile test ends with. Everything talks to real node processes
through tests/support/net.py; every call carries a deadline.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from federation.devnet.create import MemberSpec
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import receipt_pb2
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    count_inbound,
    deliver,
    fetch_roster,
    item,
    make_report,
    outcome_name,
    running_network,
    sign_report,
    verify_receipt,
)

#: Path of the Deliver method, for calls that send raw request bytes.
DELIVER_METHOD = "/hfp.v1.FederationService/Deliver"
#: How much a node's resident memory may grow across a hostile test. Generous:
#: the point is "bounded", not "small" (a node idles at about 120 MiB).
RSS_GROWTH_BOUND_KIB = 300 * 1024

# Protobuf wire types.
VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5


# --- protobuf wire format --------------------------------------------------------


def varint(value: int) -> bytes:
    """Base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    """The key of a field: number and wire type."""
    return varint(number << 3 | wire_type)


def length_delimited(number: int, data: bytes) -> bytes:
    """One length-delimited field (string, bytes or embedded message)."""
    return tag(number, LENGTH_DELIMITED) + varint(len(data)) + data


def varint_field(number: int, value: int) -> bytes:
    """One varint field (integers, bools, enums)."""
    return tag(number, VARINT) + varint(value)


def nested_groups(number: int, depth: int) -> bytes:
    """``depth`` nested (deprecated) groups: the cheapest way to nest deeply."""
    return tag(number, START_GROUP) * depth + tag(number, END_GROUP) * depth


@dataclass(frozen=True, slots=True)
class Span:
    """Where one top-level field sits in a serialized message."""

    number: int
    wire_type: int
    #: Offset of the field's key.
    start: int
    #: Offset of the value (after the key and, if any, the length).
    value_start: int
    #: Offset just past the value.
    end: int


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def field_spans(data: bytes) -> list[Span]:
    """The top-level fields of a well-formed serialized message, in order."""
    spans = []
    offset = 0
    while offset < len(data):
        start = offset
        key, offset = _read_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value_start = offset
            _, offset = _read_varint(data, offset)
        elif wire_type == LENGTH_DELIMITED:
            length, value_start = _read_varint(data, offset)
            offset = value_start + length
        elif wire_type in (FIXED64, FIXED32):
            value_start = offset
            offset += 8 if wire_type == FIXED64 else 4
        else:
            raise ValueError(f"wire type {wire_type} is not expected in a test message")
        spans.append(Span(number, wire_type, start, value_start, offset))
    return spans


def flip_bit(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` (0 = lowest bit of the first byte) inverted."""
    mutable = bytearray(data)
    mutable[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutable)


def flip_text(text: str, bit: int) -> str:
    """An ASCII string with one of its low seven bits flipped (still valid UTF-8).

    ``bit`` counts seven bits per character; flipping the eighth would make
    the string invalid UTF-8, which the wire cannot carry in a string field
    (see tests/reliability/test_malformed_input.py for that case).
    """
    data = bytearray(text.encode("ascii"))
    data[bit // 7] ^= 1 << (bit % 7)
    return data.decode("ascii")


# --- calls -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawResult:
    """What a raw Deliver call returned: a status code and, when OK, the response."""

    code: grpc.StatusCode
    details: str
    response: fed_pb.DeliverResponse | None


def raw_deliver(
    network: Network, caller: str, target: str, request: bytes, timeout: float = DEADLINE
) -> RawResult:
    """Send ``request`` as the exact bytes of a DeliverRequest (no client-side encoding)."""
    with network.channel(caller, target) as channel:
        call = channel.unary_unary(
            DELIVER_METHOD,
            request_serializer=None,  # the bytes go on the wire as given
            response_deserializer=fed_pb.DeliverResponse.FromString,
        )
        try:
            response = call(request, timeout=timeout)
        except grpc.RpcError as exc:
            return RawResult(exc.code(), exc.details() or "", None)
    return RawResult(grpc.StatusCode.OK, "", response)


# --- aftermath -------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _count(network: Network, member_id: str, table: str) -> int:
    uri = f"file:{network.db_path(member_id)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(row[0])


def inbound_total(network: Network, member_id: str) -> int:
    """All rows in the node's inbound_items table: items it let in, ever."""
    return _count(network, member_id, "inbound_items")


def rosters_total(network: Network, member_id: str) -> int:
    """All rosters the node ever installed (rows in its rosters table)."""
    return _count(network, member_id, "rosters")


def still_serving(network: Network, caller: str, target: str) -> str:
    """Deliver one fresh valid report from ``caller``; assert it is accepted and stored.

    ``target`` must be responsible for the report's country (NL for
    hotline-nl), so that the item is filed there. Returns the report id.
    """
    hosting = {"hotline-nl": "NL", "hotline-dk": "DK", "hotline-de": "DE"}[target]
    report = make_report(caller, hosting)
    with network.stub(caller, target) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, network.signing_key(caller)))])
    # Receipts are checked against the roster the node holds now, which a
    # test may have replaced since the network started.
    served = fetch_roster(network, caller, target).roster
    receipt = verify_receipt(network, signed, served)
    assert outcome_name(receipt) == "OUTCOME_ACCEPTED", receipt.detail
    assert count_inbound(network, target, report.report_id) == 1
    return report.report_id


@dataclass
class Watch:
    """The node's state before a hostile step, to compare with after it."""

    network: Network
    member_id: str
    pid: int
    rss_before: int
    inbound_before: int

    def rss_growth(self) -> int:
        """KiB the node's resident memory grew since the watch began."""
        return rss_kib(self.pid) - self.rss_before

    def let_in(self) -> int:
        """Rows added to inbound_items since the watch began."""
        return inbound_total(self.network, self.member_id) - self.inbound_before


def watch(network: Network, member_id: str) -> Watch:
    """Start watching a node's memory and stored items."""
    pid = network.pid(member_id)
    return Watch(network, member_id, pid, rss_kib(pid), inbound_total(network, member_id))


def deliver_many(
    network: Network,
    caller: str,
    target: str,
    items: Sequence[fed_pb.ForwardedItem],
    batch: int = 1000,
) -> list[receipt_pb2.Receipt]:
    """Deliver ``items`` in batches of at most ``batch``; every receipt, verified.

    Receipts are verified against the roster ``target`` serves now.
    """
    roster = fetch_roster(network, caller, target).roster
    receipts: list[receipt_pb2.Receipt] = []
    with network.stub(caller, target) as stub:
        for start in range(0, len(items), batch):
            signed = deliver(stub, items[start : start + batch], timeout=BULK_DEADLINE)
            receipts.extend(verify_receipt(network, r, roster) for r in signed)
    return receipts


#: Admission settings for suites that are not about admission but send
#: hundreds of calls a second (fuzz rounds, bit flips): the per-member rate
#: limit would otherwise refuse them (tests/reliability/test_admission.py
#: covers the limits themselves).
UNMETERED = {"HFED_ADMISSION__CALLS_PER_SECOND": "10000", "HFED_ADMISSION__BURST": "100000"}


@contextmanager
def unmetered_network(directory: Path, members: Sequence[MemberSpec]) -> Iterator[Network]:
    """``running_network`` whose nodes do not rate-limit their callers."""
    with pytest.MonkeyPatch.context() as env:  # the nodes inherit the environment
        for name, value in UNMETERED.items():
            env.setenv(name, value)
        with running_network(directory, members) as network:
            env.undo()
            yield network
