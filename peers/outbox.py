"""Durable delivery to peers: one queue per destination over the outbox table.

Each destination has worker threads (LANES of them, so that one batch can be
on the wire while the next is claimed). A worker sends the oldest unclaimed
pending items in a batch, verifies every receipt, and retires an item only
by storing the peer's verified receipt with it. An unreachable peer gets a
persisted, capped, jittered backoff, probed by one worker with a few items,
so after a restart the node resumes where it left off; new items wake the
workers at once (no polling delay) unless their peer is backing off.

Several node processes may share one (PostgreSQL) outbox: a worker claims its
batch with a lease in a short transaction (see federation.store.outbox), sends
with no transaction open, then retires the items. A process also looks for
peers with pending items every ``RESCAN_SECONDS``, so it helps with queues
that other processes filled.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import grpc
import structlog

from federation.core.ids import MemberId
from federation.core.reasons import Outcome
from federation.core.receipt import Receipt
from federation.runtime import faultpoints
from federation.runtime.clock import Clock, utc_now
from federation.runtime.metrics import NodeMetrics
from federation.runtime.tracing import DISABLED, Tracing, items_attributes, link_to
from federation.store import outbox as store
from federation.store import status as status_store
from federation.store.database import Database
from federation.trust import RosterHolder
from federation.wire.convert import decode_envelope, envelope_from_proto
from hfp.v1 import federation_service_pb2 as pb
from hfp.v1 import federation_service_pb2_grpc as pb_grpc
from peers.backoff import Backoff
from peers.channel import ChannelPool
from peers.pushback import retry_pushback
from peers.receipts import BadReceiptError, Sent, verify_receipts

log = structlog.get_logger(__name__)

DELIVER_DEADLINE = 30.0
IDLE_WAIT = 5.0
#: How long a claimed batch stays ours: the send deadline plus ample time to
#: verify and store the receipts. After a crash the items wait this long.
LEASE = timedelta(seconds=2 * DELIVER_DEADLINE + 30)
#: Batches in flight to one peer at a time, by default. With two, the peer verifies one
#: batch while it stores the other, and the sender claims the next batch
#: while one is on the wire; the order between batches is not kept, which
#: receivers do not need (status updates are applied by sequence number).
LANES = 2
#: Items sent to a peer that is failing, until one attempt succeeds.
PROBE_BATCH = 10
#: Encoded bytes of one Deliver request at most: half the protocol's 8 MiB,
#: so that items carrying large hand-over proofs (MOVED updates of a big
#: case) are split into several calls instead of being refused for good.
MAX_CALL_BYTES = 4 * 1024 * 1024
#: How often a sender looks for peers with pending items it has no worker for.
RESCAN_SECONDS = 5.0
#: Failures after which the connection to the peer is kept: a peer refusing
#: for load is up and reachable, and reconnecting (a TLS handshake on both
#: nodes) would only add to its load. After any other failure the channel is
#: dropped so that the next attempt connects afresh (see ChannelPool).
KEEP_CHANNEL = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED})


def _by_size(batch: list[store.OutgoingItem], limit: int) -> Iterator[list[store.OutgoingItem]]:
    """The batch in consecutive runs whose items add up to at most ``limit``
    encoded bytes (each run holds at least one item)."""
    run: list[store.OutgoingItem] = []
    size = 0
    for item in batch:
        # Envelope, proofs and path, plus a little framing per field.
        cost = (
            len(item.envelope)
            + len(item.proofs or b"")
            + sum(len(v) + 2 for v in item.via_member_ids)
            + 16
        )
        if run and size + cost > limit:
            yield run
            run, size = [], 0
        run.append(item)
        size += cost
    if run:
        yield run


def process_name() -> str:
    """A name for this sender, unique among processes sharing an outbox."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


ChannelFactory = Callable[[str], grpc.Channel]


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """How the outbox sender works: batch size, lanes per peer, backoff after
    a failure, the lease on claimed items, and the clock, metrics and threads
    it shares with the node."""

    batch_size: int = 500
    lanes: int = LANES
    backoff: Backoff = field(default_factory=Backoff)
    lease: timedelta = LEASE
    clock: Clock = utc_now
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    #: Threads for verifying a batch's receipts (the node's verify pool).
    executor: Executor | None = None
    tracing: Tracing = DISABLED


class OutboxSender:
    """Starts and feeds one worker per destination peer."""

    def __init__(
        self,
        member_id: MemberId,
        db: Database,
        rosters: RosterHolder,
        channel_for: ChannelFactory,
        metadata: tuple[tuple[str, str], ...] = (),
        options: OutboxOptions | None = None,
    ) -> None:
        options = options or OutboxOptions()
        self.member_id = member_id
        self.executor = options.executor
        self.db = db
        self.rosters = rosters
        #: Channels to peers, kept open between batches.
        self.channels = ChannelPool(channel_for, grace=DELIVER_DEADLINE + 5)
        self.backoff = options.backoff
        self.batch_size = options.batch_size
        self.lanes = options.lanes
        self.metadata = metadata
        self.clock = options.clock
        self.metrics = options.metrics
        self.lease = options.lease
        self.tracing = options.tracing
        #: Recorded on every item this sender claims (and delivers).
        self.name = process_name()
        self.stopping = threading.Event()
        self._workers: dict[MemberId, list[_PeerWorker]] = {}
        #: Items claimed in memory (SQLite; see claim).
        self._held: set[int] = set()
        #: Each peer's (failing, retry_at) as this process last learned it.
        self._peers: dict[MemberId, tuple[bool, datetime | None]] = {}
        self._held_lock = threading.Lock()
        self._lock = threading.Lock()
        self._scanner: threading.Thread | None = None

    def start(self) -> None:
        """Start workers for every peer that has pending items, and keep looking."""
        if self.db.is_sqlite:
            # One process per SQLite file: a claim found now belongs to a
            # process that died (kill -9, power loss). Waiting out its lease
            # would delay those items by minutes for nothing.
            with self.db.write() as session:
                released = store.release_all(session)
            if released:
                log.info("released claims of a previous run", items=released)
        self._scan()
        if self._scanner is None:
            self._scanner = threading.Thread(target=self._rescan, name="outbox-scan", daemon=True)
            self._scanner.start()

    def _scan(self) -> None:
        with self.db.read() as session:
            destinations = store.pending_destinations(session)
        for destination in destinations:
            with self._lock:
                known = destination in self._workers
            if not known:
                self.notify(destination)

    def _rescan(self) -> None:
        # Items queued by another process sharing the database wake no worker
        # here; a periodic look finds their peers (bounded by ``stopping``).
        while not self.stopping.wait(RESCAN_SECONDS):
            try:
                self._scan()
            except Exception:
                log.exception("outbox scan error")

    def claim(self, destination: MemberId, size: int, now: datetime) -> list[store.OutgoingItem]:
        """Claim the next batch for a peer: in memory on SQLite (one process per
        file), with a database lease on PostgreSQL (processes share the outbox)."""
        if not self.db.is_sqlite:
            with self.db.write() as session:
                return store.claim_batch(session, destination, size, self.name, now, self.lease)
        with self._held_lock:
            with self.db.read() as session:
                batch = store.peek_batch(session, destination, size, now, self._held)
            self._held.update(item.id for item in batch)
        return batch

    def unclaim(self, batch: list[store.OutgoingItem]) -> None:
        """Forget in-memory claims (the items are retired, or free to retry)."""
        with self._held_lock:
            self._held.difference_update(item.id for item in batch)

    def peer_state(self, destination: MemberId) -> tuple[bool, datetime | None]:
        """Whether ``destination`` is failing, and when to try it again.

        Read from storage once (a failure recorded before a restart still
        counts), then kept in memory as this process's deliveries succeed or
        fail: reading it before every batch cost a transaction per batch.
        Processes sharing a PostgreSQL outbox each follow their own failures;
        the failure count they record is shared, so the delay still grows.
        """
        with self._lock:
            known = self._peers.get(destination)
        if known is not None:
            return known
        with self.db.read() as session:
            backoff = store.get_backoff(session, destination)
        state = (
            backoff is not None and backoff.failures > 0,
            backoff.retry_at if backoff else None,
        )
        with self._lock:
            return self._peers.setdefault(destination, state)

    def note_peer(self, destination: MemberId, failing: bool, retry_at: datetime | None) -> None:
        """Remember the outcome of the latest delivery attempt to a peer."""
        with self._lock:
            self._peers[destination] = (failing, retry_at)

    def notify(self, destination: MemberId) -> None:
        """New items for ``destination`` were committed: wake (or start) its worker.

        One lane is woken, the first idle one: a lane that claims a full
        batch wakes the next (see _PeerWorker), so a backlog is drained on
        every lane while a trickle of single items costs one lookup each,
        not one per lane.
        """
        with self._lock:
            if self.stopping.is_set():
                return
            workers = self._workers.get(destination)
            if workers is None:
                workers = [_PeerWorker(self, destination, lane) for lane in range(self.lanes)]
                self._workers[destination] = workers
                for worker in workers:
                    worker.start()
        idle = [w for w in workers if w.idle]
        (idle or workers)[0].wake.set()

    def stop(self) -> None:
        """Stop every worker (an in-flight batch finishes or times out)."""
        self.stopping.set()
        with self._lock:
            workers = [w for lanes in self._workers.values() for w in lanes]
        for worker in workers:
            worker.wake.set()
        for worker in workers:
            worker.join(timeout=DELIVER_DEADLINE + 5)
        if self._scanner is not None:
            self._scanner.join(timeout=5)
        self.channels.close()


class _PeerWorker(threading.Thread):
    """Delivers the queue of one destination, in order."""

    def __init__(self, sender: OutboxSender, destination: MemberId, lane: int = 0) -> None:
        name = f"outbox-{destination}" + (f"-{lane}" if lane else "")
        super().__init__(name=name, daemon=True)
        self.sender = sender
        # Outbox rows and wake-ups name a peer in plain text: here it becomes its id.
        self.destination = destination
        #: Lane 0 also probes a failing peer; the others only help a healthy one.
        self.lane = lane
        self.wake = threading.Event()
        #: Waiting for work (read by notify to pick a lane to wake).
        self.idle = False

    def run(self) -> None:
        while not self.sender.stopping.is_set():
            try:
                self._step()
            except Exception:
                # Storage hiccups must not kill the queue: log and retry later.
                log.exception("outbox worker error", peer=self.destination)
                self.sender.stopping.wait(IDLE_WAIT)

    def _idle(self) -> None:
        self.idle = True
        self.wake.wait(IDLE_WAIT)
        self.wake.clear()
        self.idle = False

    def _step(self) -> None:
        sender = self.sender
        failing, retry_at = sender.peer_state(self.destination)
        now = sender.clock()
        if failing and self.lane:
            self._idle()
            return
        if retry_at is not None and retry_at > now:
            sender.stopping.wait((retry_at - now).total_seconds())
            return
        # While a peer keeps failing, probe it with a few items instead of
        # loading and encoding a full batch for every attempt.
        size = PROBE_BATCH if failing else sender.batch_size
        batch = sender.claim(self.destination, size, now)
        if not batch:
            self._idle()
            return
        if len(batch) == size:  # more may be waiting: get the next lane going
            sender.notify(self.destination)
        try:
            self._send(batch)
        except BaseException:
            # Not sent or not recorded: let any process retry at once rather
            # than after the lease (a receipt already stored is kept).
            if not sender.db.is_sqlite:
                with sender.db.write() as session:
                    store.release(session, [i.id for i in batch])
            raise
        finally:
            sender.unclaim(batch)
        if len(batch) < size and not sender.peer_state(self.destination)[0]:
            # Delivered, and the queue was empty behind this batch when it
            # was claimed: anything committed since has woken a lane (this
            # one, if no other was idle), so look again only when woken.
            # (After a failure the next step waits out the backoff instead.)
            self._idle()

    def _send(self, batch: list[store.OutgoingItem]) -> None:
        """Deliver a claimed batch in calls within MAX_CALL_BYTES, in order;
        after a failed call the rest stays queued for the next attempt."""
        member = self.sender.rosters.roster.member(self.destination)
        if member is None or not member.endpoint:
            self._failed(batch, "destination is not a roster member with an endpoint")
            return
        for chunk in _by_size(batch, MAX_CALL_BYTES):
            if not self._send_call(member.endpoint, chunk):
                return

    def _send_call(self, endpoint: str, batch: list[store.OutgoingItem]) -> bool:
        """One Deliver call; True when its receipts were recorded."""
        sender = self.sender
        request = pb.DeliverRequest()
        for item in batch:
            forwarded = request.items.add(via_member_ids=item.via_member_ids)
            forwarded.envelope.MergeFromString(item.envelope)
            if item.proofs is not None:
                # Stored as a ForwardedItem holding only its proof fields.
                forwarded.MergeFromString(item.proofs)
        faultpoints.reach(faultpoints.OUTBOX_BEFORE_SEND)
        channel = sender.channels.get(endpoint)
        try:
            reply = self._deliver(channel, request, batch)
        except grpc.RpcError as exc:
            if exc.code() not in KEEP_CHANNEL:
                sender.channels.discard(endpoint, channel)
            self._failed(batch, f"{exc.code().name}: {exc.details()}", retry_pushback(exc))
            return False
        faultpoints.reach(faultpoints.OUTBOX_AFTER_REPLY)
        if len(reply.receipts) != len(batch):
            self._failed(batch, "peer returned a wrong number of receipts")
            return False
        self._record(batch, reply)
        return True

    def _deliver(
        self, channel: grpc.Channel, request: pb.DeliverRequest, batch: list[store.OutgoingItem]
    ) -> pb.DeliverResponse:
        """The Deliver call; with tracing on, in a span continuing the trace of
        the batch's first traced item and linked to the other items' traces
        (a span has one parent, and the call one traceparent)."""
        sender = self.sender

        def call() -> pb.DeliverResponse:
            return pb_grpc.FederationServiceStub(channel).Deliver(
                request, timeout=DELIVER_DEADLINE, metadata=sender.metadata
            )

        if not sender.tracing.enabled:
            return call()
        traces = list(dict.fromkeys(i.traceparent for i in batch if i.traceparent))
        links = [link for link in map(link_to, traces[1:]) if link is not None]
        attributes = {"hfed.peer": self.destination, **items_attributes([i.item_id for i in batch])}
        with sender.tracing.span(
            "outbox.send", attributes, parent=traces[0] if traces else None, links=links
        ):
            return call()

    def _record(self, batch: list[store.OutgoingItem], reply: pb.DeliverResponse) -> None:
        """Verify the batch's receipts (in bulk, before any transaction), then
        retire the answered items in one short write."""
        sender = self.sender
        now = sender.clock()
        sent = [decode_envelope(item.envelope) for item in batch]
        results = verify_receipts(
            [envelope_from_proto(r) for r in reply.receipts],
            [
                Sent(i.item_id, hashlib.sha256(e.payload).digest())
                for i, e in zip(batch, sent, strict=True)
            ],
            sender.rosters.roster,
            self.destination,
            sender.executor,
        )
        finished: list[store.Finished] = []
        links: list[tuple[str, str]] = []
        bad: list[store.OutgoingItem] = []
        observed: list[tuple[store.OutgoingItem, Receipt]] = []
        for item, envelope, receipt_pb, result in zip(
            batch, sent, reply.receipts, results, strict=True
        ):
            if isinstance(result, BadReceiptError):
                log.error(
                    "bad receipt from peer",
                    peer=self.destination,
                    item_id=item.item_id,
                    reason=str(result),
                )
                bad.append(item)
                continue
            observed.append((item, result))
            finished.append(
                store.Finished(item.id, _state_of(result.outcome), receipt_pb.SerializeToString())
            )
            if result.case_id and envelope.signer_member_id == sender.member_id:
                # Our own report joined a case there: remember which, so the
                # case's updates (even those sent before it joined) are ours.
                links.append((item.item_id, result.case_id))
        was_failing, _ = sender.peer_state(self.destination)
        with sender.db.write() as session:
            store.finish(session, finished, now, sender.name)
            status_store.link_reports(session, links, now)
            if not bad and was_failing:
                store.record_success(session, self.destination)
        # Counted once the rows are retired, so the delivered counters and
        # the depth gauge (read from the database) never disagree at a scrape.
        for item, result in observed:
            self._observe(item, result, now)
        if not bad:
            sender.note_peer(self.destination, False, None)
        if bad:
            self._failed(bad, "peer sent receipts that do not verify")
        log.info("delivered to peer", peer=self.destination, items=len(batch) - len(bad))

    def _observe(self, item: store.OutgoingItem, receipt: Receipt, now: datetime) -> None:
        """Metrics and, for a refusal, a log line."""
        metrics = self.sender.metrics
        metrics.outbox_delivered.labels(self.destination, receipt.outcome.name).inc()
        if item.created_at is not None:
            metrics.delivery_latency.labels(self.destination).observe(
                max(0.0, (now - item.created_at).total_seconds())
            )
        if _state_of(receipt.outcome) is store.OutboxState.REJECTED:
            reason = receipt.reject_reason.name if receipt.reject_reason else ""
            metrics.outbox_rejected.labels(self.destination, reason).inc()
            log.warning(
                "peer rejected item",
                peer=self.destination,
                item_id=item.item_id,
                reason=receipt.reject_reason,
                detail=receipt.detail,
            )

    def _failed(
        self, batch: list[store.OutgoingItem], error: str, pushback: timedelta | None = None
    ) -> None:
        """Count a failed attempt and schedule the next one: after our backoff,
        and never sooner than the wait the peer asked for (``pushback``)."""
        sender = self.sender
        sender.metrics.outbox_failures.labels(self.destination).inc()
        delay: Callable[[int], timedelta] = sender.backoff.delay
        if pushback is not None:
            delay = _at_least(delay, pushback)
        with sender.db.write() as session:
            store.note_attempt(session, [i.id for i in batch], error)
            retry_at = store.record_failure(session, self.destination, error, sender.clock(), delay)
        sender.note_peer(self.destination, True, retry_at)
        log.warning(
            "delivery to peer failed",
            peer=self.destination,
            error=error,
            items=len(batch),
            retry_at=_iso(retry_at),
            pushback_ms=None if pushback is None else round(pushback.total_seconds() * 1000),
        )


def _at_least(
    delay_after: Callable[[int], timedelta], floor: timedelta
) -> Callable[[int], timedelta]:
    """``delay_after``, but never shorter than ``floor``."""
    return lambda failures: max(delay_after(failures), floor)


def _state_of(outcome: Outcome) -> store.OutboxState:
    if outcome is Outcome.REJECTED:
        return store.OutboxState.REJECTED
    return store.OutboxState.DELIVERED


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")
