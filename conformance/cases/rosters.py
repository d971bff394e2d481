"""Rosters that leave the network unchanged (sections 1 and 4).

Every roster offered here must be refused (or is the installed one), so the
network is the same afterwards. Rosters that are installed, and the cases
that need them, run last (``conformance.cases.rotation``).
"""

from __future__ import annotations

from datetime import timedelta

import grpc

from conformance.context import Context, live_clock, rpc_code, rpc_text
from conformance.dsse import REPORT_TYPE
from conformance.keys import Ed25519Key
from conformance.registry import case, fail
from conformance.rosters import RosterView, sign_roster, timestamp_datetime
from hfp.v1 import roster_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
STALE = grpc.StatusCode.FAILED_PRECONDITION


def expect_refusal(ctx: Context, signed: roster_pb2.SignedRoster, code: grpc.StatusCode) -> None:
    """PublishRoster must fail with ``code``."""
    try:
        reply = ctx.publish(signed)
    except grpc.RpcError as exc:
        if rpc_code(exc) != code:
            fail(f"expected {code.name}, got {rpc_text(exc)}")
        return
    fail(f"expected {code.name}, got OK (the node now holds version {reply.version})")


def candidate(ctx: Context) -> tuple[RosterView, bytes]:
    """The current roster and a valid newer copy of it (not yet signed)."""
    current = ctx.fetch_roster()
    return current, ctx.derive_roster(current, version=ctx.next_version(current))


@case("ROS-001", "1", "GetRoster(0) returns a roster meeting the root threshold that lists us")
def get_roster(ctx: Context) -> None:
    view = ctx.fetch_roster()
    if view.version < 1:
        fail(f"roster version is {view.version}")
    if view.expires_at() <= live_clock():
        fail(f"the node serves an expired roster (expired {view.expires_at().isoformat()})")
    expected = {
        ctx.target_id: (ctx.target.endpoint, ""),
        ctx.me.member_id: (ctx.target.harness_endpoint, ctx.me.key.key_id),
    }
    for member_id, (endpoint, key_id) in expected.items():
        member = view.member(member_id)
        if member is None:
            fail(f"the roster does not list {member_id}")
        if key_id and key_id not in view.keys_of(member_id):
            fail(f"the roster does not carry {member_id}'s key {key_id[:16]}...")
        if member.endpoint != endpoint:
            fail(f"{member_id}'s endpoint is {member.endpoint!r}, the target file says {endpoint}")


@case("ROS-002", "4", "GetRoster with the current version (or a higher one) returns no roster")
def get_roster_current(ctx: Context) -> None:
    current = ctx.fetch_roster()
    for known in (current.version, current.version + 1000):
        try:
            reply = ctx.get_roster(known)
        except grpc.RpcError as exc:
            fail(f"GetRoster({known}) failed: {rpc_text(exc)}")
        if reply.HasField("roster"):
            fail(f"GetRoster({known}) returned a roster, expected none")


@case("ROS-003", "1", "publishing the identical installed roster is a no-op that succeeds")
def publish_identical(ctx: Context) -> None:
    current = ctx.fetch_roster()
    try:
        reply = ctx.publish(current.signed)
    except grpc.RpcError as exc:
        fail(f"expected OK with version {current.version}, got {rpc_text(exc)}")
    if reply.version != current.version:
        fail(f"expected version {current.version} in the answer, got {reply.version}")


@case(
    "ROS-004",
    "1",
    "a different roster with the installed version gets FAILED_PRECONDITION",
    reject=True,
)
def same_version_other_bytes(ctx: Context) -> None:
    current = ctx.fetch_roster()
    stamp = current.roster.issued_at
    issued = timestamp_datetime(stamp.seconds, stamp.nanos) + timedelta(seconds=1)
    data = ctx.derive_roster(current, version=current.version, issued_at=issued)
    expect_refusal(ctx, sign_roster(data, ctx.threshold_roots()), STALE)


@case("ROS-005", "1", "a newer roster below the root threshold gets INVALID_ARGUMENT", reject=True)
def below_threshold(ctx: Context) -> None:
    _, data = candidate(ctx)
    roots = ctx.threshold_roots()[: ctx.target.root_threshold - 1]
    expect_refusal(ctx, sign_roster(data, roots), INVALID)


@case(
    "ROS-006",
    "1",
    "one root's signature given twice does not count twice: INVALID_ARGUMENT",
    reject=True,
)
def duplicated_signature(ctx: Context) -> None:
    _, data = candidate(ctx)
    root = ctx.root_keys()[0]
    signed = sign_roster(data, [root] * ctx.target.root_threshold)
    expect_refusal(ctx, signed, INVALID)


@case(
    "ROS-007",
    "1",
    "a signature by a key that is no pinned root does not count: INVALID_ARGUMENT",
    reject=True,
)
def non_root_signature(ctx: Context) -> None:
    _, data = candidate(ctx)
    stranger = Ed25519Key.from_label("conformance/not-a-root")
    roots = [*ctx.threshold_roots()[: ctx.target.root_threshold - 1], stranger]
    expect_refusal(ctx, sign_roster(data, roots), INVALID)


@case(
    "ROS-008",
    "4",
    "root signatures over the PAE of another type get INVALID_ARGUMENT",
    reject=True,
)
def wrong_type_signatures(ctx: Context) -> None:
    _, data = candidate(ctx)
    signed = sign_roster(data, ctx.threshold_roots(), signed_type=REPORT_TYPE)
    expect_refusal(ctx, signed, INVALID)


@case("ROS-009", "4", "threshold-signed bytes that are no roster get INVALID_ARGUMENT", reject=True)
def unparseable_roster(ctx: Context) -> None:
    signed = sign_roster(b"\xff\xff\xff\xff not a roster", ctx.threshold_roots())
    expect_refusal(ctx, signed, INVALID)


@case("ROS-010", "4", "PublishRoster without a roster gets INVALID_ARGUMENT", reject=True)
def empty_publish(ctx: Context) -> None:
    expect_refusal(ctx, roster_pb2.SignedRoster(), INVALID)
