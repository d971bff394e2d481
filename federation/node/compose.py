"""The parts a node is composed of, each built by one small function.

In the order the node builds them: the foundation (storage, trust, the
node's identity and shared threads), the outbound peers (roster sync and
the outbox sender), the application services, and the capacity set aside
for client calls. ``federation.node.server`` binds them to a gRPC server,
starts the background threads and stops everything in reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta

import grpc
import structlog
from opentelemetry.sdk.trace.export import SpanExporter

from crypto.keys import public_key_from_hex
from crypto.threshold import TrustAnchor
from federation.api.admission import ClientLane
from federation.api.heavy import HeavyReads
from federation.cases import (
    AuthoredReports,
    CaseActions,
    CaseBook,
    CaseChanges,
    CaseLookup,
    FilingFollower,
    OperatorAudit,
    OverduePolicy,
    OverdueWatcher,
)
from federation.core.ids import MemberId
from federation.core.limits import Limits
from federation.intake import Books, DeliveryOptions, DeliveryService, NodeIdentity
from federation.liaison import Bell, CallAudit, ReferralDesk, RefusalAudit
from federation.node.config import NodeConfig
from federation.node.material import MaterialError, load_signing_keys
from federation.runtime.metrics import NodeMetrics
from federation.runtime.tracing import DISABLED, Tracing, start_tracing
from federation.status import ReceivingFaults, StatusBook
from federation.store.database import Database
from federation.store.migrate import require_current
from federation.trust import RosterHolder, RosterSync
from federation.wire.metadata import dev_metadata
from peers.backoff import Backoff
from peers.channel import ClientIdentity, insecure_channel, secure_channel, traced_channels
from peers.outbox import OutboxOptions, OutboxSender
from peers.roster_client import RosterClient

log = structlog.get_logger(__name__)

ChannelFactory = Callable[[str], grpc.Channel]


def trust_anchor(config: NodeConfig) -> TrustAnchor:
    """The pinned root keys and threshold from the configuration."""
    keys = [public_key_from_hex(k) for k in config.trust.root_public_keys]
    return TrustAnchor.from_public_keys(keys, config.trust.threshold)


def limits_from(config: NodeConfig) -> Limits:
    """Protocol limits with the configured overrides."""
    return Limits(
        max_batch_items=config.limits.max_batch_items,
        max_batch_bytes=config.limits.max_batch_bytes,
    )


# --- the foundation ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Foundation:
    """What every other part is built on."""

    config: NodeConfig
    #: Test faults switched on in the configuration (see TestingConfig).
    faults: frozenset[str]
    db: Database
    rosters: RosterHolder
    identity: NodeIdentity
    limits: Limits
    #: Threads that verify and sign in bulk (Deliver, receipts, status updates).
    executor: futures.ThreadPoolExecutor
    metrics: NodeMetrics
    tracing: Tracing = DISABLED


def open_storage(config: NodeConfig) -> Database:
    """The node's database, refused unless its schema is current."""
    db = Database(config.database_url, background_checkpoints=True)
    require_current(db)
    return db


def active_faults(config: NodeConfig) -> frozenset[str]:
    """The configured test faults, each announced loudly in the log."""
    faults = frozenset(config.testing.faults)
    for fault in sorted(faults):
        log.warning("TEST FAULT ACTIVE: this node is deliberately broken", fault=fault)
    return faults


def load_trust(config: NodeConfig, db: Database, faults: frozenset[str]) -> RosterHolder:
    """The installed roster (stored or bootstrap), which must name this node."""
    rosters = RosterHolder(trust_anchor(config), db, allow_stale="accept-stale-roster" in faults)
    rosters.load(config.trust.roster.read_bytes() if config.trust.roster else None)
    if rosters.roster.member(config.member_id) is None:
        raise SystemExit(f"member {config.member_id} is not in the roster")
    return rosters


def node_identity(config: NodeConfig, rosters: RosterHolder) -> NodeIdentity:
    """The node's signing keys, the one in use chosen by the installed roster."""
    try:
        keys = load_signing_keys(config.signing.paths)
    except MaterialError as exc:
        raise SystemExit(str(exc)) from exc
    return NodeIdentity(config.member_id, keys, lambda: rosters.roster)


def node_tracing(config: NodeConfig, exporters: Sequence[SpanExporter] = ()) -> Tracing:
    """The node's tracing from ``[tracing]`` (off: DISABLED), also exporting to
    ``exporters`` (in-process ones: tests)."""
    cfg = config.tracing
    if not cfg.enabled:
        return DISABLED
    log.info("tracing on", exporter=cfg.exporter, sample_ratio=cfg.sample_ratio)
    return start_tracing(config.member_id, cfg.exporter, cfg.endpoint, cfg.sample_ratio, exporters)


def foundation(config: NodeConfig, span_exporters: Sequence[SpanExporter] = ()) -> Foundation:
    """Open storage, load trust, and make the node's identity, shared threads
    and tracing."""
    db = open_storage(config)
    faults = active_faults(config)
    rosters = load_trust(config, db, faults)
    return Foundation(
        config,
        faults,
        db,
        rosters,
        node_identity(config, rosters),
        limits_from(config),
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify"),
        NodeMetrics(),
        node_tracing(config, span_exporters),
    )


# --- outbound peers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outbound:
    """What this node sends to its peers: rosters, and the outbox's items."""

    sync: RosterSync
    outbox: OutboxSender


def peer_channels(
    config: NodeConfig, identity: Callable[[], ClientIdentity] | None
) -> tuple[ChannelFactory, tuple[tuple[str, str], ...]]:
    """How this node opens channels to its peers (and the metadata it sends).

    ``identity`` gives the TLS material in use at the moment a channel opens,
    so a channel opened after a reload presents the renewed certificate.
    """
    if config.insecure_plaintext or identity is None:
        return insecure_channel, dev_metadata(config.member_id)
    return (lambda endpoint: secure_channel(endpoint, identity())), ()


def outbound(base: Foundation, identity: Callable[[], ClientIdentity] | None) -> Outbound:
    """Roster sync and the outbox sender (not started yet)."""
    cfg = base.config
    plain_channel_for, metadata = peer_channels(cfg, identity)
    channel_for = traced_channels(plain_channel_for, base.tracing)
    sync = RosterSync(
        cfg.member_id,
        base.rosters,
        RosterClient(channel_for, metadata=metadata),
        pull_interval=cfg.roster_pull_seconds,
    )
    options = OutboxOptions(
        batch_size=cfg.outbox.batch_size,
        lanes=cfg.outbox.lanes,
        backoff=Backoff(cfg.outbox.backoff_base_seconds, cfg.outbox.backoff_cap_seconds),
        metrics=base.metrics,
        executor=base.executor,
        tracing=base.tracing,
    )
    outbox = OutboxSender(cfg.member_id, base.db, base.rosters, channel_for, metadata, options)
    return Outbound(sync, outbox)


# --- application services ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Application:
    """The application services the API layer adapts, and the overdue watch."""

    delivery: DeliveryService
    lookup: CaseLookup
    actions: CaseActions
    authored: AuthoredReports
    desk: ReferralDesk
    bell: Bell
    overdue: OverduePolicy
    watcher: OverdueWatcher
    operator_audit: OperatorAudit
    #: Follows other processes' filings (PostgreSQL only; None on SQLite).
    follower: FilingFollower | None = None


def status_book(base: Foundation) -> StatusBook:
    """Issues our status updates, signing many at once on the verify threads."""
    identity, executor = base.identity, base.executor
    return StatusBook(
        identity.member_id,
        identity.sign,
        sign_many=lambda payload_type, payloads: identity.sign_many(
            payload_type, payloads, executor
        ),
        faults=ReceivingFaults(
            accept_non_owner="accept-non-owner-update" in base.faults,
            apply_held_unchecked="apply-held-unchecked" in base.faults,
        ),
        traceparent=base.tracing.traceparent,
    )


def case_book(base: Foundation, statuses: StatusBook) -> CaseBook:
    """The case book, its PDQ index filled from storage."""
    casebook = CaseBook(base.identity.member_id, statuses, base.config.dedup.pdq_threshold)
    casebook.load(base.db)
    return casebook


def delivery(base: Foundation, books: Books) -> DeliveryService:
    """The Deliver pipeline (also our own intake's)."""
    return DeliveryService(
        base.identity,
        base.rosters,
        base.db,
        base.limits,
        books,
        DeliveryOptions(
            executor=base.executor,
            metrics=base.metrics,
            verify_signatures="skip-signature-check" not in base.faults,
            tracing=base.tracing,
            replay_unchecked="replay-receipt-unchecked" in base.faults,
        ),
    )


def bell_after_writes(db: Database) -> Bell:
    """A bell rung after every write transaction (wakes WatchReferrals streams)."""
    bell = Bell()
    db.after_write.append(bell.ring)
    return bell


def application(base: Foundation, notify_outbox: Callable[[MemberId], None]) -> Application:
    """Every application service, sharing one status book and case book."""
    cfg, db, rosters = base.config, base.db, base.rosters
    statuses = status_book(base)
    casebook = case_book(base, statuses)
    overdue = OverduePolicy(timedelta(hours=cfg.takedown.overdue_after_hours))
    bell = bell_after_writes(db)
    changes = CaseChanges(db, statuses, lambda: rosters.roster, notify_outbox)
    desk = ReferralDesk(changes, overdue)
    watcher = OverdueWatcher(
        db, overdue, interval=cfg.takedown.check_every_seconds, also=desk.expire_holds
    )
    return Application(
        delivery(base, Books(casebook, statuses, notify_outbox)),
        CaseLookup(db, overdue),
        CaseActions(changes, base.limits),
        AuthoredReports(db, base.identity.member_id, overdue),
        desk,
        bell,
        overdue,
        watcher,
        OperatorAudit(db),
        filing_follower(cfg, db, casebook, bell),
    )


def filing_follower(
    cfg: NodeConfig, db: Database, casebook: CaseBook, bell: Bell
) -> FilingFollower | None:
    """The follower of other node processes' filings, where there can be any."""
    if not cfg.shares_database:
        return None
    return FilingFollower(casebook, db, cfg.scale_out.follow_seconds, on_new=bell.ring)


# --- client capacity --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientCapacity:
    """What keeps HotlineService and LiaisonService calls from taking the
    peers' capacity: their own thread pool and cap, the heavy-read slots,
    and the batched audit of refused calls."""

    lane: ClientLane
    heavy: HeavyReads
    refusals: RefusalAudit
    audit: CallAudit


def client_capacity(
    config: NodeConfig, db: Database, client_services: tuple[str, ...]
) -> ClientCapacity:
    """The client lane, heavy-read slots and call audit (its refusal writer started)."""
    adm = config.admission
    lane = ClientLane(
        client_services, config.client_threads, adm.client_calls_total or config.client_threads
    )
    refusals = RefusalAudit(db)
    refusals.start()
    return ClientCapacity(
        lane, HeavyReads(adm.heavy_reads_total), refusals, CallAudit(db, refusals)
    )
