"""What the target sends to the harness's own endpoint: forwarding (sections 0, 6), status (7).

The harness member is responsible for ``XA``. A report for ``XA`` that it
delivers to the target is, by section 6, the target's to forward to the
member responsible for ``XA`` -- the harness itself: nothing in the spec
exempts the author, and the author is not on the via path, so no loop rule
applies. That is the one way a peer can make a node forward towards it, and
the way these cases observe forwarding, retries and receipt checking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conformance.context import Context, describe_receipt
from conformance.dsse import verify_envelope
from conformance.items import FORWARDED, Expect, ItemFactory, ItemSpec, rejected
from conformance.peer import Arrival, ArrivedItem, Behaviour
from conformance.registry import case, fail, item_case
from hfp.v1 import envelope_pb2, receipt_pb2, status_pb2

R = receipt_pb2
#: How long to wait for the target to forward an item (seconds).
FORWARD_WAIT = 10.0
#: How long to wait for a retry after a failed delivery (the first backoff is short).
RETRY_WAIT = 10.0
#: How long to wait for a status update fanned out to the harness.
STATUS_WAIT = 5.0
#: How long an item must have been answered before "not delivered again" holds.
QUIET = 2.0


@dataclass
class Forwarded:
    """A report the harness sent for XA, and what reached the harness's endpoint."""

    spec: ItemSpec
    receipt: envelope_pb2.SignedEnvelope
    arrivals: list[tuple[Arrival, ArrivedItem]] = field(default_factory=list)


def send_for_xa(ctx: Context, tag: str, *behaviours: Behaviour, wait_for: int = 1) -> Forwarded:
    """Deliver a report for the harness's own country; wait for ``wait_for`` arrivals."""
    f = ctx.factory
    spec = f.report_spec(
        f.report(tag, country=f.own_country), Expect(FORWARDED, forwarded_to=f.me.member_id)
    )
    peer = ctx.peer_server
    if behaviours:
        peer.plan(spec.item_id, *behaviours)
    (envelope,) = ctx.deliver_ok([spec.item])
    ctx.expect(ctx.check_receipt(envelope, spec.item.envelope), spec.expect, spec.item_id)
    timeout = FORWARD_WAIT + RETRY_WAIT * (wait_for - 1)
    peer.wait_for(lambda _: True if len(peer.items(spec.item_id)) >= wait_for else None, timeout)
    return Forwarded(spec, envelope, peer.items(spec.item_id))


def plain_forward(ctx: Context) -> Forwarded:
    """The run's plain forwarded report (sent once)."""
    return ctx.once("fwd-plain", lambda: send_for_xa(ctx, "fwd-plain"))


def arrived(forwarded: Forwarded, count: int = 1) -> list[tuple[Arrival, ArrivedItem]]:
    """The arrivals, failing unless there are at least ``count``."""
    if len(forwarded.arrivals) < count:
        got = len(forwarded.arrivals)
        fail(f"expected {count} deliveries of {forwarded.spec.item_id} at our endpoint, got {got}")
    return forwarded.arrivals


def same_envelope(sent: envelope_pb2.SignedEnvelope, got: envelope_pb2.SignedEnvelope) -> str:
    """Empty when the envelopes are identical, else what differs."""
    for name in ("payload", "payload_type", "signer_member_id", "key_id", "signature"):
        if getattr(sent, name) != getattr(got, name):
            return name
    return ""


@case("FWD-001", "6", "a report for XA reaches the harness's endpoint with its envelope unchanged")
def forwarded_unchanged(ctx: Context) -> None:
    forwarded = plain_forward(ctx)
    _, item = arrived(forwarded)[0]
    differs = same_envelope(forwarded.spec.item.envelope, item.envelope)
    if differs:
        fail(f"the forwarded envelope's {differs} differs from what the author signed")


@case("FWD-002", "4", "the forwarder appends itself to via_member_ids (via = [target])")
def forwarded_via(ctx: Context) -> None:
    _, item = arrived(plain_forward(ctx))[0]
    if list(item.via_member_ids) != [ctx.target_id]:
        fail(f"expected via_member_ids [{ctx.target_id}], got {list(item.via_member_ids)}")


@case("FWD-003", "1", "the forwarding call authenticates with the target's own TLS certificate")
def forwarded_sender(ctx: Context) -> None:
    arrival, _ = arrived(plain_forward(ctx))[0]
    if arrival.sender != ctx.target_id:
        fail(f"expected the caller to be {ctx.target_id}, its certificate names {arrival.sender!r}")


def retried(ctx: Context, tag: str, behaviour: Behaviour) -> Forwarded:
    forwarded = ctx.once(tag, lambda: send_for_xa(ctx, tag, behaviour, wait_for=2))
    items = arrived(forwarded, 2)
    differs = same_envelope(forwarded.spec.item.envelope, items[1][1].envelope)
    if differs:
        fail(f"the retried envelope's {differs} differs from the original")
    return forwarded


@case("FWD-004", "0", "a delivery the peer does not answer (UNAVAILABLE) is retried")
def retry_unavailable(ctx: Context) -> None:
    retried(ctx, "fwd-unavailable", Behaviour.UNAVAILABLE)


@case("FWD-005", "0", "a receipt whose signature does not verify does not count: retried")
def retry_bad_receipt(ctx: Context) -> None:
    retried(ctx, "fwd-bad-receipt", Behaviour.BAD_RECEIPT_SIGNATURE)


@case("FWD-006", "0", "a receipt for other bytes (wrong payload_sha256) does not count: retried")
def retry_wrong_digest(ctx: Context) -> None:
    retried(ctx, "fwd-wrong-digest", Behaviour.WRONG_DIGEST)


@case(
    "FWD-007", "5", "redelivering a forwarded report returns the byte-identical FORWARDED receipt"
)
def forwarded_redelivery(ctx: Context) -> None:
    forwarded = plain_forward(ctx)
    (again,) = ctx.deliver_ok([forwarded.spec.item])
    if again.SerializeToString() != forwarded.receipt.SerializeToString():
        got = describe_receipt(ctx.check_receipt(again, forwarded.spec.item.envelope))
        fail(f"expected the stored receipt byte for byte, got a different one ({got})")
    ctx.once("fwd-redelivered", lambda: True)


def rejected_forward(ctx: Context) -> Forwarded:
    return ctx.once("fwd-rejected", lambda: send_for_xa(ctx, "fwd-rejected", Behaviour.REJECT))


@case("FWD-008", "3", "the forwarder accepts a REJECTED receipt from the peer as final")
def forward_rejected(ctx: Context) -> None:
    arrived(rejected_forward(ctx))


# --- status updates ------------------------------------------------------------------------


def _update(
    f: ItemFactory, case_id: str, report_ids: list[str], member: str
) -> status_pb2.StatusUpdate:
    update = status_pb2.StatusUpdate(
        update_id=f.new_id(),
        case_id=case_id,
        report_ids=report_ids,
        member_id=member,
        status=status_pb2.CASE_STATUS_ASSESSED_ILLEGAL,
        sequence=2,
    )
    update.observed_at.FromDatetime(f.clock())
    return update


def _received_update(
    ctx: Context, report_ids: dict[str, str]
) -> tuple[Arrival, ArrivedItem] | None:
    for arrival in ctx.peer_server.arrivals():
        for item in arrival.items:
            status = item.status
            if status is not None and set(status.report_ids) & set(report_ids):
                return arrival, item
    return None


@case(
    "STS-001",
    "7",
    "a case opened by our report is acknowledged by a signed RECEIVED update sent to us",
)
def received_fan_out(ctx: Context) -> None:
    mine = {r: c for r, c in ctx.accepted_reports.items()}
    if not mine:
        f = ctx.factory
        spec = f.report_spec(f.report("sts-received"), f.accepted_here())
        receipt = ctx.run_item(spec)
        mine = {spec.item_id: receipt.case_id}
    found = ctx.peer_server.wait_for(lambda _: _received_update(ctx, mine), STATUS_WAIT)
    if found is None:
        fail(f"expected a RECEIVED StatusUpdate at our endpoint in {STATUS_WAIT:.0f} s, none came")
    _, item = found
    status = item.status
    assert status is not None
    key = ctx.roster.keys_of(ctx.target_id).get(item.envelope.key_id)
    problems = []
    if item.envelope.signer_member_id != ctx.target_id or key is None:
        problems.append(f"signed by {item.envelope.signer_member_id}")
    elif not verify_envelope(item.envelope, key.public_key):
        problems.append("signature does not verify")
    if status.member_id != ctx.target_id:
        problems.append(f"member_id {status.member_id}")
    if status.status != status_pb2.CASE_STATUS_RECEIVED or status.sequence != 1:
        problems.append(f"status {status.status} sequence {status.sequence}")
    expected_cases = {mine[r] for r in status.report_ids if r in mine}
    if status.case_id not in expected_cases:
        problems.append(f"case_id {status.case_id} is not the receipt's")
    if problems:
        fail("expected a RECEIVED update (sequence 1) by the target, got: " + "; ".join(problems))


@case(
    "STS-002",
    "7",
    "a status update from a member not responsible for the case gets NOT_RESPONSIBLE",
    reject=True,
)
def not_responsible(ctx: Context) -> None:
    f = ctx.factory
    spec = f.report_spec(f.report("sts-case"), f.accepted_here())
    receipt = ctx.run_item(spec)
    update = _update(f, receipt.case_id, [spec.item_id], f.me.member_id)
    ctx.run_item(
        f.spec(f.sign(update), rejected(R.REJECT_REASON_NOT_RESPONSIBLE), item_id=update.update_id)
    )


@item_case(
    "STS-003",
    "7",
    "a status update whose member_id is not the signer gets AUTHOR_MISMATCH",
    reject=True,
)
def status_author(f: ItemFactory) -> ItemSpec:
    update = _update(f, f.new_id(), [f.new_id()], f.other.member_id)
    return f.spec(
        f.sign(update), rejected(R.REJECT_REASON_AUTHOR_MISMATCH), item_id=update.update_id
    )


@item_case(
    "STS-004",
    "4",
    "Deliver verifies status updates too: a bad signature gets BAD_SIGNATURE",
    reject=True,
)
def status_bad_signature(f: ItemFactory) -> ItemSpec:
    update = _update(f, f.new_id(), [f.new_id()], f.me.member_id)
    envelope = f.sign(update)
    envelope.signature = bytes(64)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


# --- late checks: nothing is delivered twice -------------------------------------------------


def _quiet(forwarded: list[Forwarded]) -> None:
    """Wait until the last answer to these items is at least QUIET seconds old."""
    latest = max((a.at for fw in forwarded for a, _ in fw.arrivals), default=0.0)
    pause = latest + QUIET - time.monotonic()
    if pause > 0:
        time.sleep(pause)


@case("FWD-009", "0", "an item the peer acknowledged is not delivered again")
def no_redelivery(ctx: Context) -> None:
    plain = plain_forward(ctx)
    items = [plain]
    for tag in ("fwd-unavailable", "fwd-bad-receipt", "fwd-wrong-digest"):
        existing = ctx.peek(tag)
        if isinstance(existing, Forwarded):
            items.append(existing)
    _quiet(items)
    peer = ctx.peer_server
    for forwarded in items:
        arrivals = peer.items(forwarded.spec.item_id)
        expected = max(1, len(forwarded.arrivals))
        if len(arrivals) != expected:
            fail(
                f"{forwarded.spec.item_id} was delivered {len(arrivals)} times, "
                f"expected {expected} (acknowledged at delivery {expected})"
            )


@case("FWD-010", "3", "an item the peer REJECTED is not retried")
def no_retry_after_rejection(ctx: Context) -> None:
    forwarded = rejected_forward(ctx)
    _quiet([forwarded])
    count = len(ctx.peer_server.items(forwarded.spec.item_id))
    if count != 1:
        fail(f"expected exactly 1 delivery of the rejected item, got {count}")
