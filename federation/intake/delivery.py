"""Intake of signed items at this node: verify, decide, store, receipt.

The path of one batch (see docs/architecture.md): checks in the protocol's
order, signatures verified in bulk, then ONE write transaction (shared with
other calls waiting at the same moment: federation.intake.group_commit) in which
each item is replayed (already seen), filed into a case (a report this node
is responsible for), queued for the responsible peer (any other report), or
applied (a status update), and answered with a signed receipt that is stored
with it. Receipts leave only after the commit. Rejected items are answered
but never stored, so that unauthenticated input can never occupy an
idempotency key.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from crypto.dsse import (
    Envelope,
    pae,
    verify_envelope_signature,
    verify_many,
)
from federation.cases import CaseBook, Filing, FilingBatch, PdqSearch
from federation.core import envelope_checks as checks
from federation.core.errors import RosterExpiredError
from federation.core.ids import ItemId, KeyId, MemberId, UpdateId
from federation.core.limits import Limits
from federation.core.reasons import (
    RECEIPT_TYPE,
    REPORT_TYPE,
    STATUS_UPDATE_TYPE,
    Outcome,
    Rejection,
    RejectReason,
)
from federation.core.receipt import Receipt, accepted, rejected
from federation.core.report import HashAlgorithm, Report
from federation.core.roster import MemberKey, Roster
from federation.core.routing import ForwardTo, HandleHere, Route, route_report
from federation.intake.group_commit import GroupCommit
from federation.intake.identity import NodeIdentity
from federation.intake.payloads import (
    NO_PROOFS,
    Parsed,
    ParsedReport,
    ParsedUpdate,
    PayloadChecker,
    Proofs,
    item_id_of,
)
from federation.runtime.clock import Clock, utc_now
from federation.runtime.metrics import NodeMetrics
from federation.runtime.tracing import DISABLED, Attributes, Tracing, items_attributes
from federation.status import ReceivedUpdate, StatusBook
from federation.store import inbound, outbox
from federation.store.database import Database, lost_a_race
from federation.trust import RosterHolder
from federation.wire.convert import (
    decode_envelope,
    encode_envelope,
    encode_proofs,
    encode_receipt,
    encode_report,
)

log = structlog.get_logger(__name__)

#: Payload types Deliver accepts.
DELIVERABLE_TYPES = frozenset({REPORT_TYPE, STATUS_UPDATE_TYPE})
#: Attempts of a batch transaction that lost a race on a unique key.
COMMIT_ATTEMPTS = 3
#: Transactions a batch whose own items failed its transaction may take to
#: store the others apart (about 2 * log2(1000) per unstorable item: room for
#: three in a full batch).
APART_COMMITS = 64
#: Refusals before parsing that a roster change can turn an accepted item
#: into (see DeliveryService._replay_accepted).
_KEY_REFUSALS = frozenset({RejectReason.UNKNOWN_SIGNER, RejectReason.KEY_NOT_VALID})


@dataclass(frozen=True, slots=True)
class IncomingItem:
    """One item of a Deliver batch, in domain form."""

    envelope: Envelope
    via_member_ids: tuple[MemberId, ...]
    proofs: Proofs = NO_PROOFS


@dataclass(frozen=True, slots=True)
class Books:
    """Where accepted items go: reports we are responsible for to the case
    book, status updates to the status book; ``notify_outbox`` wakes the
    sender of a peer that got new outbox items, after the commit."""

    cases: CaseBook
    statuses: StatusBook
    notify_outbox: Callable[[MemberId], None] = lambda _destination: None


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How the pipeline runs: the clock, the threads that verify and sign in
    bulk, the metrics it counts into, and (tests only) signature checks off."""

    clock: Clock = utc_now
    executor: Executor | None = None
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    #: False only under the test fault "skip-signature-check".
    verify_signatures: bool = True
    tracing: Tracing = DISABLED
    #: True only under the test fault "replay-receipt-unchecked": stored
    #: receipts answer repeats without the sender checks (section 10.7).
    replay_unchecked: bool = False


@dataclass(slots=True)
class _Work:
    """Per-item state while a batch moves through the pipeline."""

    item: IncomingItem
    sha256: bytes
    #: The TLS peer that handed the item over.
    sender: MemberId
    key: MemberKey | None = None
    parsed: Parsed | None = None
    #: The item's id once its payload decoded (also for items refused later).
    item_id: ItemId | Literal[""] = ""
    rejection: Rejection | None = None
    receipt: bytes | None = None
    #: Where a parsed report goes (see _parse_and_check).
    route: Route | None = None
    #: The report's PDQ hashes searched before the transaction (see _search_pdq).
    pdq: PdqSearch | None = None
    _encoded: bytes | None = None
    _chain: bytes | None = None
    #: The trace of the call that brought the item (tracing on): kept with the
    #: outbox row or case event the item makes.
    traceparent: str | None = None

    @property
    def move_id(self) -> UpdateId | Literal[""]:
        """For a report moved here, the id of the MOVED that sent it."""
        parsed = self.parsed
        return parsed.move_id if isinstance(parsed, ParsedReport) else ""

    @property
    def idempotency_key(self) -> str:
        """The item's idempotency key: its id, or for a moved delivery its id
        and the MOVED's (spec section 10.2)."""
        move_id = self.move_id
        return f"{self.item_id}/{move_id}" if move_id else self.item_id

    def chain(self) -> bytes | None:
        """The MOVED chain the item came with, as stored and sent on."""
        moved_by = self.item.proofs.moved_by
        if moved_by and self._chain is None:
            self._chain = encode_proofs(encode_envelope(e) for e in moved_by)
        return self._chain

    def encoded(self) -> bytes:
        """The serialized envelope (stored with the item, its case or forward)."""
        if self._encoded is None:
            self._encoded = encode_envelope(self.item.envelope)
        return self._encoded


@dataclass(slots=True)
class _Txn:
    """What one attempt of the batch transaction produced."""

    rows: list[inbound.NewInboundItem] = field(default_factory=list)
    receipts: dict[int, bytes] = field(default_factory=dict)
    refusals: dict[int, Rejection] = field(default_factory=dict)
    filing: FilingBatch = field(default_factory=FilingBatch)


@dataclass(slots=True)
class _Triage:
    """A batch's items sorted by what the transaction must do with them."""

    answers: dict[int, Receipt] = field(default_factory=dict)
    #: A repeat of an item earlier in the batch -> that occurrence.
    copies: dict[int, int] = field(default_factory=dict)
    filings: list[tuple[int, Filing]] = field(default_factory=list)
    updates: list[tuple[int, ParsedUpdate]] = field(default_factory=list)
    forwards: list[outbox.NewOutboxItem] = field(default_factory=list)
    #: Repeats of accepted updates that bring hand-over proofs (another MOVED
    #: chain, or joined receipts: see StatusBook.catch_up and _queued): answered
    #: like any repeat, and shown to the reporter side again only so that it
    #: links the reports those proofs tie to the case.
    relinks: list[tuple[int, ParsedUpdate]] = field(default_factory=list)


class DeliveryService:
    """Handles batches of signed items for one node."""

    def __init__(
        self,
        identity: NodeIdentity,
        rosters: RosterHolder,
        db: Database,
        limits: Limits,
        books: Books,
        options: DeliveryOptions | None = None,
    ) -> None:
        options = options or DeliveryOptions()
        self._identity = identity
        self._rosters = rosters
        self._db = db
        self._limits = limits
        self._casebook = books.cases
        self._statuses = books.statuses
        self._checker = PayloadChecker(identity.member_id, limits)
        self._notify_outbox = books.notify_outbox
        self._clock = options.clock
        self._executor = options.executor
        self._metrics = options.metrics
        self._verify_signatures = options.verify_signatures
        self._tracing = options.tracing
        self._replay_unchecked = options.replay_unchecked
        self._group: GroupCommit[_Work] = GroupCommit(self._commit, isolate=caused_by_items)

    @property
    def member_id(self) -> MemberId:
        """This node's member id."""
        return self._identity.member_id

    def deliver(self, sender: MemberId, items: Sequence[IncomingItem]) -> list[bytes]:
        """Process a batch handed over by ``sender``; one signed receipt per item.

        Raises RosterExpiredError when the node's roster has expired, and
        NoSigningKeyError when it has no key to sign receipts with; every
        item-level problem becomes a REJECTED receipt instead.
        """
        self._require_current_roster()
        # A receipt that cannot be signed is no receipt: refuse the whole
        # batch before anything is stored, so the sender keeps the items and
        # delivers them again once this node has a key (docs/threat-model.md).
        self._identity.require_key()
        work = [_Work(i, hashlib.sha256(i.envelope.payload).digest(), sender) for i in items]
        self._authenticate(work)
        self._parse_and_check(work, sender)
        return self._finish(work)

    def submit_own(self, report: Report) -> bytes:
        """Encode and sign a report of this node's own intake as this node and
        take it in; its signed receipt.

        As :meth:`deliver` from this node, except that the signature just
        made is not verified and the payload just encoded is not decoded
        again (about a tenth of a submission's CPU): the key must still be a
        live roster key of this node (its id names the public key, so that
        key made the signature), and every check after parsing still runs.
        """
        [receipt] = self.submit_own_many([report])
        return receipt

    def submit_own_many(self, reports: Sequence[Report]) -> list[bytes]:
        """:meth:`submit_own` for several reports, stored in one transaction
        (as a peer's batch is); one signed receipt per report, in order."""
        self._require_current_roster()
        work = [self._signed_own(report) for report in reports]
        roster = self._rosters.roster
        now = self._clock()
        for w, report in zip(work, reports, strict=True):
            if w.key is None:
                continue  # _with_keys recorded why
            checked = self._checker.check(
                report, w.item.envelope, w.key, (), NO_PROOFS, self.member_id, roster, now
            )
            self._judge(w, checked, roster)
        return self._finish(work)

    def _signed_own(self, report: Report) -> _Work:
        """The work item of one report of ours, signed, with our key found."""
        envelope = self._identity.sign(REPORT_TYPE, encode_report(report))
        own = _Work(
            IncomingItem(envelope, ()), hashlib.sha256(envelope.payload).digest(), self.member_id
        )
        if self._with_keys([own]):
            own.item_id = report.report_id
        return own

    def _require_current_roster(self) -> None:
        """Raise RosterExpiredError once the node's roster has expired."""
        if self._rosters.expired(self._clock()):
            raise RosterExpiredError("this node's roster has expired; it accepts no new items")

    def _finish(self, work: list[_Work]) -> list[bytes]:
        """Store the checked items and answer each; with tracing on, in the
        batch's span, whose context the queued rows and case events keep."""
        if not self._tracing.enabled:
            return self._answer(work)
        with self._tracing.span("intake.store", _batch_attributes(work)) as span:
            traceparent = self._tracing.traceparent()
            for w in work:
                w.traceparent = traceparent
            receipts = self._answer(work)
            if span is not None:
                span.set_attributes(_outcome_attributes(work))
            return receipts

    def _answer(self, work: list[_Work]) -> list[bytes]:
        """Store the checked items and answer each."""
        self._search_pdq(work)
        self._store(work)
        self._count(work)
        return [w.receipt or b"" for w in work]

    def _count(self, work: list[_Work]) -> None:
        """Metrics and a log line per refusal (ids and reasons only, never URLs)."""
        tally: Counter[tuple[str, str, str]] = Counter()
        for w in work:
            outcome = "REJECTED" if w.rejection else "STORED"
            reason = w.rejection.reason.name if w.rejection else ""
            # Only known types become label values: a hostile peer could
            # otherwise mint a new time series (memory) per invented type.
            payload_type = w.item.envelope.payload_type
            kind = payload_type if payload_type in DELIVERABLE_TYPES else "other"
            tally[kind, outcome, reason] += 1
            if w.rejection is not None:
                log.info(
                    "item refused",
                    item_id=w.item_id or None,
                    reason=reason,
                    signer=w.item.envelope.signer_member_id[:63],
                )
        for labels, count in tally.items():
            self._metrics.items_received.labels(*labels).inc(count)

    # --- verification ----------------------------------------------------------

    def _authenticate(self, work: list[_Work]) -> None:
        """Limits, signer and key lookup, then one bulk signature check."""
        pending = self._with_keys(work)
        jobs = [
            (
                w.key.public_key,
                pae(w.item.envelope.payload_type, w.item.envelope.payload),
                w.item.envelope.signature,
            )
            for w in pending
            if w.key is not None
        ]
        verdicts = (
            verify_many(jobs, self._executor) if self._verify_signatures else [True] * len(jobs)
        )
        for w, ok in zip(pending, verdicts, strict=True):
            if not ok:
                w.rejection = Rejection(RejectReason.BAD_SIGNATURE, "signature does not verify")

    def _with_keys(self, work: list[_Work]) -> list[_Work]:
        """Envelope limits and the signer's live key; the items that passed."""
        roster = self._rosters.roster
        passed: list[_Work] = []
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
                passed.append(w)
        return passed

    def _parse_and_check(self, work: list[_Work], sender: MemberId) -> None:
        """Parse authenticated payloads, check them, and route reports."""
        now = self._clock()
        roster = self._rosters.roster
        for w in _live(work):
            assert w.key is not None
            w.item_id, parsed = self._checker.parse(
                w.item.envelope,
                w.key,
                w.item.via_member_ids,
                w.item.proofs,
                sender,
                roster,
                now,
            )
            self._judge(w, parsed, roster)

    def _judge(self, w: _Work, parsed: Parsed | Rejection, roster: Roster) -> None:
        """Record an item's parse and checks; route a report."""
        if isinstance(parsed, Rejection):
            w.rejection = parsed
            return
        w.parsed = parsed
        if isinstance(parsed, ParsedReport):
            w.route = route_report(
                roster, self.member_id, parsed.hosting_country, w.item.via_member_ids, self._limits
            )

    def _search_pdq(self, work: list[_Work]) -> None:
        """Search the PDQ hashes of reports this node will file, before the
        transaction: the search runs beside other calls' transactions, and
        the transaction only checks what was indexed since (CaseBook.pdq_matches)."""
        filed_here = [
            (w, parsed)
            for w in _live(work)
            if isinstance(w.route, HandleHere) and isinstance(parsed := w.parsed, ParsedReport)
        ]
        values = [
            h.value
            for _, parsed in filed_here
            for h in parsed.report.hashes
            if h.algorithm is HashAlgorithm.PDQ
        ]
        if not values:
            return
        found = self._casebook.search_pdq(values)
        for w, _ in filed_here:
            w.pdq = found

    # --- storage and answers ----------------------------------------------------

    def _store(self, work: list[_Work]) -> None:
        """Commit the batch's fresh items (grouped with other calls' that wait
        at the same time), then answer every item."""
        fresh = _live(work)
        if fresh:
            try:
                self._group.run(fresh)
            except Exception as exc:
                if not caused_by_items(exc):
                    raise
                self._store_apart(fresh, exc)
        self._replay_accepted(work)
        now = self._clock()
        refusals = [
            (w, rejected(w.item.envelope, w.rejection, w.item_id, self.member_id, now))
            for w in work
            if w.rejection is not None
        ]
        signed = self._sign_receipts([receipt for _, receipt in refusals])
        for (w, _), receipt in zip(refusals, signed, strict=True):
            w.receipt = receipt

    def _store_apart(self, fresh: list[_Work], error: Exception) -> None:
        """Store the items of a batch whose transaction failed on its own items,
        in halves, down to the items that fail alone: those are refused.

        A backstop, for a value no check foresaw: every check that can be
        made runs before storage. Each half is its own transaction, committed
        before any receipt leaves (durable before acknowledged, as always),
        and an item refused here is not stored, so a retry of it is judged
        afresh. Bounded: a batch that needs more than APART_COMMITS
        transactions, or whose every item fails, fails as a whole (a fault
        that hits every item is unlikely to be the items' own, and the
        sender's retry then loses nothing).
        """
        budget = _Budget(APART_COMMITS)
        self._commit_apart(fresh, error, budget)
        if len(fresh) > 1 and not budget.stored:
            for w in fresh:
                w.rejection = None
            raise error

    def _commit_apart(self, failed: list[_Work], error: Exception, budget: _Budget) -> None:
        if len(failed) == 1:
            self._refuse_unstorable(failed[0], error)
            return
        middle = len(failed) // 2
        for half in (failed[:middle], failed[middle:]):
            if not budget.take():
                raise error
            try:
                self._group.run(half)
                budget.stored = True
            except Exception as exc:
                if not caused_by_items(exc):
                    raise
                self._commit_apart(half, exc, budget)

    def _refuse_unstorable(self, w: _Work, error: Exception) -> None:
        """Refuse an item whose transaction fails with it alone."""
        log.error(
            "item could not be stored",
            item_id=w.item_id or None,
            signer=w.item.envelope.signer_member_id[:63],
            error=type(error).__name__,
            exc_info=error,
        )
        w.rejection = Rejection(
            RejectReason.LIMIT_EXCEEDED, "the item holds a value this node cannot store"
        )

    def _commit(self, fresh: list[_Work]) -> None:
        """One write transaction for ``fresh`` (retrying a lost race); sets each
        item's receipt or refusal, then wakes the outbox for new peer items."""
        txn = _Txn()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            txn = _Txn()
            try:
                with self._db.write() as session:
                    self._apply(session, fresh, txn)
                break
            except DBAPIError as exc:
                # Another transaction (another node process on a shared
                # database) created the same case or item first, or (on
                # PostgreSQL) we were picked as a deadlock victim: go again,
                # this time we will see its rows.
                self._casebook.undo(txn.filing)
                if attempt == COMMIT_ATTEMPTS or not lost_a_race(exc):
                    raise
            except BaseException:
                self._casebook.undo(txn.filing)
                raise
        for index, w in enumerate(fresh):
            w.rejection = txn.refusals.get(index)
            w.receipt = txn.receipts.get(index)
        for destination in txn.filing.fanout.destinations:
            self._notify_outbox(destination)

    def _replay_accepted(self, work: list[_Work]) -> None:
        """Answer a refused item with its stored receipt if we accepted it before.

        A sender retries until it holds a receipt; if the roster changed in
        between (the signer's key revoked or dropped, the signer removed, the
        routing changed), the retry is refused now, yet the same bytes were
        accepted and must get the same answer. The stored item is found by
        its id: the parse gave it when the refusal came later, else it is
        read from the payload once a key the signer held in an installed
        roster verifies the signature (so verification still comes before
        parsing). Only the exact envelope (payload and signature) qualifies.
        """
        refused: dict[ItemId, list[_Work]] = {}
        for w in work:
            if w.rejection is not None and self._may_replay(w):
                item_id = w.item_id or self._former_item_id(w)
                if item_id:
                    refused.setdefault(item_id, []).append(w)
        if not refused:
            return
        with self._db.read() as session:
            stored = inbound.find_answered(session, refused)
        for item_id, candidates in refused.items():
            earlier = stored.get(item_id)
            if earlier is None:
                continue
            envelope = decode_envelope(earlier.envelope)
            for w in candidates:
                if envelope == w.item.envelope:
                    w.rejection, w.receipt = None, earlier.receipt

    def _may_replay(self, w: _Work) -> bool:
        """A stored receipt answers only a sender that passes the checks a
        first delivery gets (spec section 10.7): the signer itself, or the
        last forwarder on a path without this node. Anyone else could learn
        from it whether we hold the item and which case it joined.

        Nor does it answer a moved delivery (one with a MOVED chain): that
        is a new routing decision keyed by (report_id, move), and the
        receipt stored for the report's earlier delivery is never its
        answer (section 10.2)."""
        if self._replay_unchecked:
            return True
        if w.item.proofs.moved_by:
            return False
        path = checks.check_path(
            w.sender, w.item.envelope, w.item.via_member_ids, self.member_id, self._limits
        )
        return path is None

    def _former_item_id(self, w: _Work) -> ItemId | Literal[""]:
        """The id of an item refused before parsing for its signer or key, if
        a key the signer held in some installed roster verifies it; else ""."""
        assert w.rejection is not None
        if w.rejection.reason not in _KEY_REFUSALS or not self._verify_signatures:
            return ""
        envelope = w.item.envelope
        # The envelope's own strings: a malformed one names no former key.
        key = self._rosters.former_key(MemberId(envelope.signer_member_id), KeyId(envelope.key_id))
        if key is None or not verify_envelope_signature(envelope, key):
            return ""
        return item_id_of(envelope)

    def _apply(self, session: Session, fresh: list[_Work], txn: _Txn) -> None:
        """One attempt of the batch transaction.

        Items are decided in order; reports to file here are collected and
        filed together (CaseBook.file_many), status updates applied together
        (StatusBook.receive_many), forwards queued in one insert, and every
        receipt signed in one parallel pass before the rows go out.
        """
        now = self._clock()
        work = self._triage(session, fresh, now, txn)
        self._receive_updates(session, fresh, work.updates, now, work.answers, txn)
        self._received(session, fresh, work.relinks, now)  # stale by now: links only
        filed = self._casebook.file_many(session, [f for _, f in work.filings], now, txn.filing)
        for (index, _), result in zip(work.filings, filed, strict=True):
            w = fresh[index]
            work.answers[index] = accepted(
                w.item.envelope,
                w.item_id,
                result.outcome,
                self.member_id,
                now,
                case_id=result.case_id,
            )
        outbox.enqueue_many(session, work.forwards, now)
        txn.filing.fanout.destinations.update(f.destination for f in work.forwards)
        order = sorted(work.answers)
        signed = self._sign_receipts([work.answers[i] for i in order])
        for index, receipt in zip(order, signed, strict=True):
            txn.receipts[index] = receipt
            txn.rows.append(self._row(fresh[index], work.answers[index].outcome, receipt, now))
        if txn.filing.joins:
            self._statuses.catch_up(
                session,
                txn.filing.joins,
                {f.report.report_id: txn.receipts[index] for index, f in work.filings},
                now,
                txn.filing.fanout,
            )
        for index, original in work.copies.items():
            if original in txn.refusals:
                txn.refusals[index] = txn.refusals[original]
            else:
                txn.receipts[index] = txn.receipts[original]
        inbound.insert_items(session, txn.rows)

    def _triage(self, session: Session, fresh: list[_Work], now: datetime, txn: _Txn) -> _Triage:
        """Sort the batch's items: replays and id clashes answered at once,
        repeats within the batch, and what to file, apply or forward."""
        stored = _stored_receipts(session, fresh)
        work = _Triage()
        first: dict[str, int] = {}  # idempotency key -> its first occurrence in this batch
        for index, w in enumerate(fresh):
            earlier = stored.get(w.idempotency_key)
            same = (earlier.payload_sha256 if earlier else None) or (
                fresh[first[w.idempotency_key]].sha256 if w.idempotency_key in first else None
            )
            if same is not None:
                if same != w.sha256:
                    txn.refusals[index] = Rejection(
                        RejectReason.MALFORMED_PAYLOAD, "id already used by a different item"
                    )
                else:
                    if earlier is not None:
                        txn.receipts[index] = earlier.receipt
                    else:
                        work.copies[index] = first[w.idempotency_key]
                    if isinstance(w.parsed, ParsedUpdate) and (
                        w.parsed.chain or w.parsed.joined_reports
                    ):
                        work.relinks.append((index, w.parsed))
                continue
            decided = self._dispose(w, now, work.forwards)
            if isinstance(decided, Rejection):
                txn.refusals[index] = decided
                continue
            first[w.idempotency_key] = index
            if isinstance(decided, Filing):
                work.filings.append((index, decided))
            elif isinstance(decided, ParsedUpdate):
                work.updates.append((index, decided))
            else:
                work.answers[index] = decided
        return work

    def _receive_updates(
        self,
        session: Session,
        fresh: list[_Work],
        updates: list[tuple[int, ParsedUpdate]],
        now: datetime,
        answers: dict[int, Receipt],
        txn: _Txn,
    ) -> None:
        """Apply the batch's status updates together; answer each."""
        results = self._received(session, fresh, updates, now)
        for (index, parsed), refusal in zip(updates, results, strict=True):
            if refusal is not None:
                txn.refusals[index] = refusal
                continue
            w = fresh[index]
            answers[index] = accepted(
                w.item.envelope,
                w.item_id,
                Outcome.ACCEPTED,
                self.member_id,
                now,
                case_id=parsed.update.case_id,
            )

    def _received(
        self,
        session: Session,
        fresh: list[_Work],
        updates: list[tuple[int, ParsedUpdate]],
        now: datetime,
    ) -> list[Rejection | None]:
        """Hand status updates to the reporter side (StatusBook.receive_many)."""
        return self._statuses.receive_many(
            session,
            self._rosters.roster,
            [
                ReceivedUpdate(
                    parsed.update, fresh[index].encoded(), parsed.chain, parsed.joined_reports
                )
                for index, parsed in updates
            ],
            now,
        )

    def _dispose(
        self, w: _Work, now: datetime, forwards: list[outbox.NewOutboxItem]
    ) -> Receipt | Rejection | Filing | ParsedUpdate:
        """Queue a forward, or say what to file or apply."""
        env = w.item.envelope
        parsed = w.parsed
        if not isinstance(parsed, ParsedReport):
            assert parsed is not None
            return parsed
        route = w.route
        assert route is not None  # set for every parsed report
        if isinstance(route, Rejection):
            return route
        if isinstance(route, ForwardTo):
            forwards.append(
                outbox.NewOutboxItem(
                    route.member_id,
                    parsed.report.report_id,
                    env.payload_type,
                    w.encoded(),
                    route.via_member_ids,
                    w.chain(),
                    w.traceparent,
                )
            )
            return accepted(
                env, w.item_id, Outcome.FORWARDED, self.member_id, now, forwarded_to=route.member_id
            )
        return Filing(
            parsed.report,
            parsed.canonical,
            w.encoded(),
            parsed.hosting_country,
            pdq=w.pdq,
            chain=w.chain(),
            traceparent=w.traceparent,
        )

    def _row(
        self, w: _Work, outcome: Outcome, receipt: bytes, now: datetime
    ) -> inbound.NewInboundItem:
        env = w.item.envelope
        return inbound.NewInboundItem(
            item_id=w.item_id,
            payload_type=env.payload_type,
            signer_member_id=env.signer_member_id,
            key_id=env.key_id,
            sender_member_id=w.sender,
            via_member_ids=w.item.via_member_ids,
            envelope=w.encoded(),
            payload_sha256=w.sha256,
            outcome=int(outcome),
            receipt=receipt,
            received_at=now,
            expected_owner=self._expected_owner(w),
            move_id=w.move_id,
            proofs=w.chain(),
        )

    def _expected_owner(self, w: _Work) -> MemberId | None:
        """Who may speak for a report of our own intake (spec section 10.1):
        the member it was routed to now, under the roster we hold."""
        if w.sender != self.member_id or w.item.envelope.signer_member_id != self.member_id:
            return None
        route = w.route
        if isinstance(route, ForwardTo):
            return route.member_id
        return self.member_id if isinstance(route, HandleHere) else None

    def _sign_receipts(self, receipts: Sequence[Receipt]) -> list[bytes]:
        """Sign many receipts in parallel; serialized SignedEnvelopes, in order."""
        envelopes = self._identity.sign_many(
            RECEIPT_TYPE, [encode_receipt(r) for r in receipts], self._executor
        )
        return [encode_envelope(e) for e in envelopes]


def _stored_receipts(session: Session, fresh: list[_Work]) -> dict[str, inbound.StoredReceipt]:
    """Receipts stored for the batch's items, by idempotency key (_Work.idempotency_key)."""
    stored = inbound.find_receipts(session, (w.item_id for w in fresh if not w.move_id))
    moved = inbound.find_moved_receipts(
        session, ((w.item_id, w.move_id) for w in fresh if w.move_id)
    )
    stored.update({f"{report_id}/{move_id}": r for (report_id, move_id), r in moved.items()})
    return stored


def caused_by_items(exc: BaseException) -> bool:
    """Whether a failed transaction may be the fault of the items in it (a
    value out of a column's range, a constraint), so that storing them apart
    helps; not when the database itself is unavailable or the process is
    out of memory."""
    return isinstance(exc, Exception) and not isinstance(
        exc, OperationalError | InterfaceError | MemoryError
    )


@dataclass(slots=True)
class _Budget:
    """Transactions left to store a failed batch apart, and whether any stored."""

    left: int
    stored: bool = False

    def take(self) -> bool:
        """Spend one transaction; False when none is left."""
        self.left -= 1
        return self.left >= 0


def _live(work: list[_Work]) -> list[_Work]:
    """Items not (yet) rejected."""
    return [w for w in work if w.rejection is None]


def _batch_attributes(work: list[_Work]) -> Attributes:
    """Who handed the batch over, how many items, and (small batches) their ids."""
    return {
        "hfed.sender": work[0].sender if work else "",
        **items_attributes([w.item_id for w in work]),
    }


def _outcome_attributes(work: list[_Work]) -> Attributes:
    """How many items were refused, and for which reasons (codes only)."""
    reasons = sorted({w.rejection.reason.name for w in work if w.rejection})
    return {
        "hfed.rejected": sum(1 for w in work if w.rejection),
        "hfed.reject_reasons": reasons,
    }
