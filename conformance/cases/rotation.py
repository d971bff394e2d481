"""Rosters that change the network, and key validity (sections 1 and 2). These run last.

The one roster installed here is a newer copy of the target's roster in
which every member keeps its keys, roles and endpoints; only the harness's
own member gains three deterministic keys (a second valid one, a revoked one
and one retired in 2021). Later runs against the same network rebuild the
same key set on top of whatever version the node then holds.
"""

from __future__ import annotations

from datetime import timedelta

import grpc

from conformance.cases.rosters import INVALID, STALE, expect_refusal
from conformance.context import Context, live_clock, rpc_text
from conformance.items import ItemFactory, ItemSpec, Party, rejected
from conformance.network import CONFORMANCE_MEMBER
from conformance.registry import case, fail, item_case
from conformance.rosters import sign_roster
from hfp.v1 import receipt_pb2, roster_pb2

R = receipt_pb2
#: How long to wait for the target to push a new roster to the harness.
PUSH_WAIT = 10.0


@case("ROS-011", "1", "a newer but expired roster gets INVALID_ARGUMENT", reject=True)
def expired_roster(ctx: Context) -> None:
    current = ctx.fetch_roster()
    now = live_clock()
    data = ctx.derive_roster(
        current,
        version=ctx.next_version(current),
        issued_at=now - timedelta(days=2),
        expires_at=now - timedelta(days=1),
    )
    expect_refusal(ctx, sign_roster(data, ctx.threshold_roots()), INVALID)


@case(
    "ROS-012",
    "1",
    "a newer roster with a key_id not matching its key gets INVALID_ARGUMENT",
    reject=True,
)
def mismatched_key_id(ctx: Context) -> None:
    current = ctx.fetch_roster()

    def break_key(roster: roster_pb2.Roster) -> None:
        for member in roster.members:
            if member.member_id == CONFORMANCE_MEMBER and member.signing_keys:
                member.signing_keys[0].key_id = "0" * 64

    data = ctx.derive_roster(current, version=ctx.next_version(current), edit=break_key)
    expect_refusal(ctx, sign_roster(data, ctx.threshold_roots()), INVALID)


@case("ROS-013", "1", "a newer threshold-signed roster is installed and its version returned")
def newer_roster(ctx: Context) -> None:
    ctx.ensure_extra_keys()


@case("ROS-014", "4", "after the install, GetRoster returns the new roster byte for byte")
def get_newer(ctx: Context) -> None:
    previous, installed = ctx.ensure_extra_keys()
    try:
        reply = ctx.get_roster(previous.version)
    except grpc.RpcError as exc:
        fail(f"GetRoster({previous.version}) failed: {rpc_text(exc)}")
    if not reply.HasField("roster"):
        fail(f"GetRoster({previous.version}) returned no roster after version {installed.version}")
    if reply.roster.SerializeToString() != installed.signed.SerializeToString():
        fail("GetRoster returned other bytes than the roster that was published")


@case("ROS-015", "4", "the node passes a newly installed roster on to its peers (us)")
def pushed_to_peers(ctx: Context) -> None:
    _, installed = ctx.ensure_extra_keys()
    peer = ctx.peer_server
    found = peer.wait_for(
        lambda arrivals: next(
            (
                a
                for a in arrivals
                if a.rpc == "PublishRoster"
                and a.sender == ctx.target_id
                and a.roster_version == installed.version
            ),
            None,
        ),
        PUSH_WAIT,
    )
    if found is None:
        fail(f"expected PublishRoster(version {installed.version}) at our endpoint, none came")


# --- key validity ----------------------------------------------------------------------------


def _as(f: ItemFactory, key_name: str) -> Party:
    return Party(f.me.member_id, getattr(f.extra, key_name))


@item_case(
    "KEY-001",
    "1",
    "a second valid key of the signer verifies too (rotation without a flag day)",
    reject=False,
    extra_keys=True,
)
def second_key(f: ItemFactory) -> ItemSpec:
    return f.report_spec(f.report("key-second"), f.accepted_here(), party=_as(f, "second"))


@item_case("KEY-002", "1", "a revoked key gets KEY_NOT_VALID", reject=True, extra_keys=True)
def revoked_key(f: ItemFactory) -> ItemSpec:
    return f.report_spec(
        f.report("key-revoked"), rejected(R.REJECT_REASON_KEY_NOT_VALID), party=_as(f, "revoked")
    )


@item_case(
    "KEY-003",
    "2",
    "a retired key still verifies an item created inside its validity window",
    reject=False,
    extra_keys=True,
)
def retired_key_inside(f: ItemFactory) -> ItemSpec:
    created = f.extra.retired_not_before + timedelta(days=30)
    return f.report_spec(
        f.report("key-retired-inside", created_at=created),
        f.accepted_here(),
        party=_as(f, "retired"),
    )


@item_case(
    "KEY-004",
    "2",
    "a retired key on an item created after its not_after gets KEY_NOT_VALID",
    reject=True,
    extra_keys=True,
)
def retired_key_after(f: ItemFactory) -> ItemSpec:
    return f.report_spec(
        f.report("key-retired-after"),
        rejected(R.REJECT_REASON_KEY_NOT_VALID),
        party=_as(f, "retired"),
    )


@item_case(
    "KEY-005",
    "2",
    "an item created before its key's not_before gets KEY_NOT_VALID",
    reject=True,
    extra_keys=True,
)
def retired_key_before(f: ItemFactory) -> ItemSpec:
    created = f.extra.retired_not_before - timedelta(days=30)
    return f.report_spec(
        f.report("key-retired-before", created_at=created),
        rejected(R.REJECT_REASON_KEY_NOT_VALID),
        party=_as(f, "retired"),
    )


@case(
    "ROS-016",
    "1",
    "the previous roster, offered after a newer one, gets FAILED_PRECONDITION",
    reject=True,
)
def older_roster(ctx: Context) -> None:
    previous, _ = ctx.ensure_extra_keys()
    expect_refusal(ctx, previous.signed, STALE)
