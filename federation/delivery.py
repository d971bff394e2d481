"""Delivery of signed items to this node: verify, decide, store, receipt.

This is the path of one ``Deliver`` batch (see docs/architecture.md): checks
in the protocol's order, signature verification in bulk, one idempotency
lookup and one write transaction per batch, and a signed receipt per item.
Rejected items are answered but never stored, so that unauthenticated input
can never occupy an idempotency key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import structlog

from crypto.dsse import Envelope, pae, sign_envelope, verify_many
from crypto.keys import SigningKey
from federation.clock import Clock, utc_now
from federation.core import envelope_checks as checks
from federation.core.limits import Limits
from federation.core.reasons import RECEIPT_TYPE, REPORT_TYPE, Outcome, Rejection, RejectReason
from federation.core.receipt import Receipt, accepted, rejected
from federation.core.report import Report, check_report
from federation.core.roster import MemberKey
from federation.errors import RosterExpiredError
from federation.store import inbound
from federation.store.database import Database
from federation.trust import RosterHolder
from federation.wire.convert import decode_report, encode_envelope, encode_receipt
from federation.wire.errors import EmbeddedMediaError, MalformedMessageError

log = structlog.get_logger(__name__)

#: Payload types Deliver accepts. Status updates join with case tracking.
DELIVERABLE_TYPES = frozenset({REPORT_TYPE})


@dataclass(frozen=True, slots=True)
class IncomingItem:
    """One item of a Deliver batch, in domain form."""

    envelope: Envelope
    via_member_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is and the key it signs with."""

    member_id: str
    signing_key: SigningKey


@dataclass(slots=True)
class _Work:
    """Per-item state while a batch moves through the pipeline."""

    item: IncomingItem
    key: MemberKey | None = None
    report: Report | None = None
    receipt: bytes | None = None
    rejection: Rejection | None = None
    sha256: bytes = field(default=b"")


class DeliveryService:
    """Handles Deliver batches for one node."""

    def __init__(
        self,
        identity: NodeIdentity,
        rosters: RosterHolder,
        db: Database,
        limits: Limits,
        *,
        clock: Clock = utc_now,
        executor: Executor | None = None,
    ) -> None:
        self._identity = identity
        self._rosters = rosters
        self._db = db
        self._limits = limits
        self._clock = clock
        self._executor = executor

    def deliver(self, sender: str, items: Sequence[IncomingItem]) -> list[bytes]:
        """Process a batch from peer ``sender``; one signed receipt per item.

        Raises RosterExpiredError when the node's roster has expired; every
        item-level problem becomes a REJECTED receipt instead.
        """
        now = self._clock()
        if self._rosters.roster.is_expired(now):
            raise RosterExpiredError("this node's roster has expired; it accepts no new items")
        work = [
            _Work(item, sha256=hashlib.sha256(item.envelope.payload).digest()) for item in items
        ]
        self._authenticate(work)
        self._parse_and_check(work, sender)
        self._answer_and_store(work, sender)
        return [w.receipt or b"" for w in work]

    # --- steps -------------------------------------------------------------

    def _authenticate(self, work: list[_Work]) -> None:
        """Limits, signer and key lookup, then one bulk signature check."""
        roster = self._rosters.roster
        pending: list[_Work] = []
        for w in work:
            env = w.item.envelope
            w.rejection = checks.check_envelope_limits(env, DELIVERABLE_TYPES, self._limits)
            if w.rejection is None:
                key = checks.find_signing_key(env, roster)
                if isinstance(key, Rejection):
                    w.rejection = key
                else:
                    w.key = key
                    pending.append(w)
        jobs = [
            (
                w.key.public_key,
                pae(w.item.envelope.payload_type, w.item.envelope.payload),
                w.item.envelope.signature,
            )
            for w in pending
            if w.key is not None
        ]
        for w, ok in zip(pending, verify_many(jobs, self._executor), strict=True):
            if not ok:
                w.rejection = Rejection(RejectReason.BAD_SIGNATURE, "signature does not verify")

    def _parse_and_check(self, work: list[_Work], sender: str) -> None:
        """Parse authenticated payloads and run the post-parse checks."""
        now = self._clock()
        for w in work:
            if w.rejection is not None or w.key is None:
                continue
            env = w.item.envelope
            try:
                report = decode_report(env.payload)
            except EmbeddedMediaError as exc:
                w.rejection = Rejection(RejectReason.MEDIA_NOT_ALLOWED, str(exc))
                continue
            except MalformedMessageError as exc:
                w.rejection = Rejection(RejectReason.MALFORMED_PAYLOAD, str(exc))
                continue
            w.report = report
            w.rejection = (
                checks.check_key_window(w.key, report.created_at)
                or checks.check_author(report.origin_member_id, env)
                or check_report(report, now, self._limits)
                or checks.check_path(
                    sender, env, w.item.via_member_ids, self._identity.member_id, self._limits
                )
            )

    def _answer_and_store(self, work: list[_Work], sender: str) -> None:
        """Replay stored receipts, store new items, sign every answer."""
        now = self._clock()
        fresh = [w for w in work if w.rejection is None and w.report is not None]
        with self._db.read() as session:
            stored = inbound.find_receipts(session, (w.report.report_id for w in fresh if w.report))
        new_rows: dict[str, inbound.NewInboundItem] = {}
        for w in fresh:
            assert w.report is not None
            item_id = w.report.report_id
            earlier = stored.get(item_id) or _pending_receipt(new_rows.get(item_id))
            if earlier is not None:
                self._replay(w, earlier)
                continue
            w.receipt = self._sign(
                accepted(w.item.envelope, item_id, Outcome.ACCEPTED, self._identity.member_id, now)
            )
            new_rows[item_id] = self._row(w, item_id, sender, now)
        for w in work:
            if w.rejection is not None:
                item_id = w.report.report_id if w.report else ""
                w.receipt = self._sign(
                    rejected(w.item.envelope, w.rejection, item_id, self._identity.member_id, now)
                )
        if new_rows:
            self._commit(list(new_rows.values()), fresh)

    def _commit(self, rows: list[inbound.NewInboundItem], fresh: list[_Work]) -> None:
        """Store new items in one transaction; a concurrent winner's receipt prevails."""
        with self._db.write() as session:
            inbound.insert_items(session, rows)
            winners = inbound.find_receipts(session, (r.item_id for r in rows))
        for w in fresh:
            winner = winners.get(w.report.report_id) if w.report else None
            if winner is not None:
                self._replay(w, winner)

    def _replay(self, w: _Work, earlier: inbound.StoredReceipt) -> None:
        """Answer a repeat with the stored receipt, or refuse a reused id."""
        if earlier.payload_sha256 == w.sha256:
            w.receipt = earlier.receipt
            return
        w.rejection = Rejection(
            RejectReason.MALFORMED_PAYLOAD, "report_id already used by a different report"
        )
        w.receipt = self._sign(
            rejected(
                w.item.envelope,
                w.rejection,
                w.report.report_id if w.report else "",
                self._identity.member_id,
                self._clock(),
            )
        )

    def _row(self, w: _Work, item_id: str, sender: str, now: object) -> inbound.NewInboundItem:
        env = w.item.envelope
        assert w.receipt is not None
        return inbound.NewInboundItem(
            item_id=item_id,
            payload_type=env.payload_type,
            signer_member_id=env.signer_member_id,
            key_id=env.key_id,
            sender_member_id=sender,
            via_member_ids=w.item.via_member_ids,
            envelope=encode_envelope(env),
            payload_sha256=w.sha256,
            outcome=int(Outcome.ACCEPTED),
            receipt=w.receipt,
            received_at=now,  # type: ignore[arg-type]
        )

    def _sign(self, receipt: Receipt) -> bytes:
        """Sign a receipt; returns the serialized SignedEnvelope."""
        envelope = sign_envelope(
            self._identity.signing_key,
            self._identity.member_id,
            RECEIPT_TYPE,
            encode_receipt(receipt),
        )
        return encode_envelope(envelope)


def _pending_receipt(row: inbound.NewInboundItem | None) -> inbound.StoredReceipt | None:
    """A receipt decided earlier in the same batch behaves like a stored one."""
    if row is None:
        return None
    return inbound.StoredReceipt(row.item_id, row.payload_sha256, row.receipt)
