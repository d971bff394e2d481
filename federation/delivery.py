"""Intake of signed items at this node: verify, decide, store, receipt.

The path of one batch (see docs/architecture.md): checks in the protocol's
order, signatures verified in bulk, then ONE write transaction in which each
item is replayed (already seen), filed into a case (this node is
responsible) or queued for the responsible peer, and answered with a signed
receipt that is stored with it. Receipts leave only after the commit.
Rejected items are answered but never stored, so that unauthenticated input
can never occupy an idempotency key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crypto.dsse import Envelope, pae, sign_envelope, verify_many
from crypto.keys import SigningKey
from federation.casebook import CaseBook, FilingBatch
from federation.clock import Clock, utc_now
from federation.core import envelope_checks as checks
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.limits import Limits
from federation.core.reasons import RECEIPT_TYPE, REPORT_TYPE, Outcome, Rejection, RejectReason
from federation.core.receipt import Receipt, accepted, rejected
from federation.core.report import Report, check_report
from federation.core.roster import MemberKey
from federation.core.routing import ForwardTo, HandleHere, route_report
from federation.errors import RosterExpiredError
from federation.store import inbound, outbox
from federation.store.database import Database
from federation.trust import RosterHolder
from federation.wire.convert import (
    decode_envelope,
    decode_report,
    encode_envelope,
    encode_receipt,
)
from federation.wire.errors import EmbeddedMediaError, MalformedMessageError

log = structlog.get_logger(__name__)

#: Payload types Deliver accepts. Status updates join with case tracking.
DELIVERABLE_TYPES = frozenset({REPORT_TYPE})
#: Attempts of a batch transaction that lost a race on a unique key.
COMMIT_ATTEMPTS = 3


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
    sha256: bytes
    key: MemberKey | None = None
    report: Report | None = None
    canonical: str = ""
    route: HandleHere | ForwardTo | None = None
    rejection: Rejection | None = None
    receipt: bytes | None = None


@dataclass(slots=True)
class _Txn:
    """What one attempt of the batch transaction produced."""

    rows: dict[str, inbound.NewInboundItem] = field(default_factory=dict)
    receipts: dict[int, bytes] = field(default_factory=dict)
    conflicts: set[int] = field(default_factory=set)
    destinations: set[str] = field(default_factory=set)
    filing: FilingBatch = field(default_factory=FilingBatch)


class DeliveryService:
    """Handles batches of signed items for one node."""

    def __init__(
        self,
        identity: NodeIdentity,
        rosters: RosterHolder,
        db: Database,
        limits: Limits,
        casebook: CaseBook,
        *,
        notify_outbox: Callable[[str], None] = lambda _destination: None,
        clock: Clock = utc_now,
        executor: Executor | None = None,
    ) -> None:
        self._identity = identity
        self._rosters = rosters
        self._db = db
        self._limits = limits
        self._casebook = casebook
        self._notify_outbox = notify_outbox
        self._clock = clock
        self._executor = executor

    @property
    def member_id(self) -> str:
        """This node's member id."""
        return self._identity.member_id

    def deliver(self, sender: str, items: Sequence[IncomingItem]) -> list[bytes]:
        """Process a batch handed over by ``sender``; one signed receipt per item.

        Raises RosterExpiredError when the node's roster has expired; every
        item-level problem becomes a REJECTED receipt instead.
        """
        if self._rosters.roster.is_expired(self._clock()):
            raise RosterExpiredError("this node's roster has expired; it accepts no new items")
        work = [_Work(i, hashlib.sha256(i.envelope.payload).digest()) for i in items]
        self._authenticate(work)
        self._parse_and_check(work, sender)
        self._route(work)
        self._store(work, sender)
        return [w.receipt or b"" for w in work]

    # --- verification ----------------------------------------------------------

    def _authenticate(self, work: list[_Work]) -> None:
        """Limits, signer and key lookup, then one bulk signature check."""
        roster = self._rosters.roster
        pending: list[_Work] = []
        for w in work:
            env = w.item.envelope
            w.rejection = checks.check_envelope_limits(env, DELIVERABLE_TYPES, self._limits)
            if w.rejection is not None:
                continue
            key = checks.find_signing_key(env, roster)
            if isinstance(key, Rejection):
                w.rejection = key
            else:
                w.key = key
                pending.append(w)
        jobs = [
            (
                live_key.public_key,
                pae(w.item.envelope.payload_type, w.item.envelope.payload),
                w.item.envelope.signature,
            )
            for w in pending
            if (live_key := w.key) is not None
        ]
        for w, ok in zip(pending, verify_many(jobs, self._executor), strict=True):
            if not ok:
                w.rejection = Rejection(RejectReason.BAD_SIGNATURE, "signature does not verify")

    def _parse_and_check(self, work: list[_Work], sender: str) -> None:
        """Parse authenticated payloads and run the post-parse checks."""
        now = self._clock()
        for w in _live(work):
            env = w.item.envelope
            assert w.key is not None
            try:
                w.report = report = decode_report(env.payload)
            except EmbeddedMediaError as exc:
                w.rejection = Rejection(RejectReason.MEDIA_NOT_ALLOWED, str(exc))
                continue
            except MalformedMessageError as exc:
                w.rejection = Rejection(RejectReason.MALFORMED_PAYLOAD, str(exc))
                continue
            w.rejection = (
                checks.check_key_window(w.key, report.created_at)
                or checks.check_author(report.origin_member_id, env)
                or check_report(report, now, self._limits)
                or checks.check_path(
                    sender, env, w.item.via_member_ids, self.member_id, self._limits
                )
                or self._canonicalize(w, report)
            )

    @staticmethod
    def _canonicalize(w: _Work, report: Report) -> Rejection | None:
        try:
            w.canonical = canonical_url(report.url)
        except UrlError as exc:
            return Rejection(RejectReason.MALFORMED_PAYLOAD, f"url: {exc}")
        return None

    def _route(self, work: list[_Work]) -> None:
        roster = self._rosters.roster
        for w in _live(work):
            assert w.report is not None
            decision = route_report(
                roster,
                self.member_id,
                w.report.hosting_country,
                w.item.via_member_ids,
                self._limits,
            )
            if isinstance(decision, Rejection):
                w.rejection = decision
            else:
                w.route = decision

    # --- storage and answers ----------------------------------------------------

    def _store(self, work: list[_Work], sender: str) -> None:
        """Commit the batch (retrying a lost race), then answer every item."""
        fresh = list(_live(work))
        txn = _Txn()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            txn = _Txn()
            try:
                with self._db.write() as session:
                    self._apply(session, fresh, sender, txn)
                break
            except IntegrityError:
                # Another transaction (another node process on a shared
                # database) created the same case or item first: go again,
                # this time we will see its rows.
                self._casebook.undo(txn.filing)
                if attempt == COMMIT_ATTEMPTS:
                    raise
            except BaseException:
                self._casebook.undo(txn.filing)
                raise
        for index, w in enumerate(fresh):
            if index in txn.conflicts:
                w.rejection = Rejection(
                    RejectReason.MALFORMED_PAYLOAD, "report_id already used by a different report"
                )
            else:
                w.receipt = txn.receipts[index]
        self._replay_accepted(work)
        now = self._clock()
        for w in work:
            if w.rejection is not None:
                item_id = w.report.report_id if w.report else ""
                w.receipt = self._sign(
                    rejected(w.item.envelope, w.rejection, item_id, self.member_id, now)
                )
        for destination in txn.destinations:
            self._notify_outbox(destination)

    def _replay_accepted(self, work: list[_Work]) -> None:
        """Answer a refused item with its stored receipt if we accepted it before.

        A sender retries until it holds a receipt; if the signer's key was
        revoked (or the member removed) in between, the retry no longer
        verifies, yet the same bytes were accepted and must get the same
        answer. Only the exact envelope (payload and signature) qualifies.
        """
        refused = [w for w in work if w.rejection is not None]
        if not refused:
            return
        with self._db.read() as session:
            stored = inbound.find_by_payload(session, (w.sha256 for w in refused))
        for w in refused:
            for candidate in stored.get(w.sha256, ()):
                if decode_envelope(candidate.envelope) == w.item.envelope:
                    w.rejection, w.receipt = None, candidate.receipt
                    break

    def _apply(self, session: Session, fresh: list[_Work], sender: str, txn: _Txn) -> None:
        """One attempt of the batch transaction."""
        now = self._clock()
        stored = inbound.find_receipts(session, (w.report.report_id for w in fresh if w.report))
        for index, w in enumerate(fresh):
            assert w.report is not None
            item_id = w.report.report_id
            earlier = stored.get(item_id) or _as_stored(txn.rows.get(item_id))
            if earlier is not None:
                if earlier.payload_sha256 == w.sha256:
                    txn.receipts[index] = earlier.receipt
                else:
                    txn.conflicts.add(index)
                continue
            receipt = self._dispose(session, w, now, txn)
            txn.receipts[index] = signed = self._sign(receipt)
            txn.rows[item_id] = self._row(w, receipt.outcome, signed, sender, now)
        inbound.insert_items(session, list(txn.rows.values()))

    def _dispose(self, session: Session, w: _Work, now: datetime, txn: _Txn) -> Receipt:
        """File the report here or queue it for the responsible member."""
        assert w.report is not None
        env = w.item.envelope
        item_id = w.report.report_id
        if isinstance(w.route, ForwardTo):
            outbox.enqueue(
                session,
                w.route.member_id,
                item_id,
                env.payload_type,
                encode_envelope(env),
                w.route.via_member_ids,
                now,
            )
            txn.destinations.add(w.route.member_id)
            return accepted(
                env, item_id, Outcome.FORWARDED, self.member_id, now, forwarded_to=w.route.member_id
            )
        filed = self._casebook.file(
            session, w.report, w.canonical, encode_envelope(env), now, txn.filing
        )
        return accepted(env, item_id, filed.outcome, self.member_id, now, case_id=filed.case_id)

    def _row(
        self, w: _Work, outcome: Outcome, receipt: bytes, sender: str, now: datetime
    ) -> inbound.NewInboundItem:
        env = w.item.envelope
        assert w.report is not None
        return inbound.NewInboundItem(
            item_id=w.report.report_id,
            payload_type=env.payload_type,
            signer_member_id=env.signer_member_id,
            key_id=env.key_id,
            sender_member_id=sender,
            via_member_ids=w.item.via_member_ids,
            envelope=encode_envelope(env),
            payload_sha256=w.sha256,
            outcome=int(outcome),
            receipt=receipt,
            received_at=now,
        )

    def _sign(self, receipt: Receipt) -> bytes:
        """Sign a receipt; returns the serialized SignedEnvelope."""
        envelope = sign_envelope(
            self._identity.signing_key, self.member_id, RECEIPT_TYPE, encode_receipt(receipt)
        )
        return encode_envelope(envelope)


def _live(work: list[_Work]) -> list[_Work]:
    """Items not (yet) rejected."""
    return [w for w in work if w.rejection is None]


def _as_stored(row: inbound.NewInboundItem | None) -> inbound.StoredReceipt | None:
    """An item decided earlier in the same batch behaves like a stored one."""
    if row is None:
        return None
    return inbound.StoredReceipt(row.item_id, row.payload_sha256, row.receipt)
