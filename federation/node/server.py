"""The node process: composition root, gRPC server, graceful shutdown."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace.export import SpanExporter

from federation.api.admission import (
    Admission,
    AdmissionInterceptor,
    AdmissionLimits,
    AdmissionRefusedError,
    RefusalHook,
)
from federation.api.auth import Callers
from federation.api.call_metrics import CallMetrics
from federation.api.decoding import DecodeGuard
from federation.api.errors import code_name
from federation.api.federation import FederationServicer
from federation.api.hotline import HotlineDesk, HotlineServicer
from federation.api.liaison import EventFeed, LiaisonServicer
from federation.api.services import CLIENT_SERVICES, LIAISON_SERVICE, SERVICE_NAMES, add_services
from federation.api.tracing import CallSpans
from federation.node.compose import (
    Application,
    ClientCapacity,
    Foundation,
    Outbound,
    application,
    client_capacity,
    foundation,
    outbound,
)
from federation.node.config import AdmissionConfig, NodeConfig
from federation.node.material import MaterialError, ServerTls
from federation.node.upkeep import Upkeep
from federation.oversight import Oversight

log = structlog.get_logger(__name__)

#: Slack over the batch limit for the rest of the gRPC frame; anything larger
#: is refused by gRPC itself with RESOURCE_EXHAUSTED before we parse it.
_FRAME_SLACK = 64 * 1024
_MAX_SEND = 32 * 1024 * 1024

#: Clients may ping an idle connection this often (to keep it open through
#: NAT and firewalls); faster pings are a flood, and after gRPC's default two
#: strikes the node closes the connection.
_MIN_CLIENT_PING_MS = 20_000


def admission_limits(config: NodeConfig) -> AdmissionLimits:
    """Admission limits from ``[admission]``; streams_total defaults to half the
    client services' threads."""
    adm = config.admission
    return AdmissionLimits(
        calls_in_flight_per_member=adm.calls_in_flight_per_member,
        streams_per_member=adm.streams_per_member,
        streams_total=adm.streams_total or max(1, config.client_threads // 2),
        calls_per_second=adm.calls_per_second,
        burst=adm.burst,
    )


def connection_options(adm: AdmissionConfig) -> list[tuple[str, int]]:
    """gRPC server options that bound what one connection can hold or send."""
    metadata = adm.max_metadata_bytes
    return [
        # Soft and hard limit equal: gRPC refuses metadata between them only
        # with a probability, and a limit should answer the same every time.
        ("grpc.max_metadata_size", metadata),
        ("grpc.absolute_max_metadata_size", metadata),
        # Ping connections, drop the ones that do not answer: a vanished
        # liaison must not hold its streams (and threads) for ever. The server
        # waits for the ping's answer ping_timeout_ms (default 60 s) however
        # keepalive_timeout_ms is set (tests/reliability/test_admission.py).
        ("grpc.keepalive_time_ms", round(adm.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", round(adm.keepalive_timeout_seconds * 1000)),
        ("grpc.http2.ping_timeout_ms", round(adm.keepalive_timeout_seconds * 1000)),
        ("grpc.http2.min_ping_interval_without_data_ms", _MIN_CLIENT_PING_MS),
        ("grpc.http2.max_ping_strikes", 2),
    ]


def audit_refused_liaison_calls(liaison: LiaisonServicer) -> RefusalHook:
    """Every police call is audited, also one refused before its servicer ran."""
    prefix = f"/{LIAISON_SERVICE}/"

    def audit(context: grpc.ServicerContext, method: str, error: AdmissionRefusedError) -> None:
        if method.startswith(prefix):
            rpc = method.removeprefix(prefix)
            liaison.audit(
                context, rpc, [], code_name(error), error.public_message, cause=error.limit.value
            )

    return audit


def liaison_servicer(
    base: Foundation, app: Application, capacity: ClientCapacity, stopping: threading.Event
) -> LiaisonServicer:
    """LiaisonService: referral streams end when ``stopping`` is set."""
    return LiaisonServicer(
        app.desk,
        Callers(base.rosters, base.config.insecure_plaintext),
        capacity.audit,
        EventFeed(app.bell, stopping),
        capacity.heavy,
        base.tracing,
    )


def grpc_server(base: Foundation, capacity: ClientCapacity, on_refused: RefusalHook) -> grpc.Server:
    """The gRPC server with its admission control, decoding guard and limits."""
    cfg = base.config
    admission = AdmissionInterceptor(
        Admission(admission_limits(cfg), unmetered={cfg.member_id}),
        SERVICE_NAMES,  # not health or reflection: they answer a refused member too
        dev_plaintext=cfg.insecure_plaintext,
        hold_for_tests="hold-calls" in base.faults,
        on_refused=on_refused,
        lane=capacity.lane,
    )
    # Metrics outermost (refusals are calls too), spans next (with tracing
    # on; refused calls are in the trace too), admission (cheap refusals),
    # then decoding failures as INVALID_ARGUMENT.
    traced = [CallSpans(base.tracing, SERVICE_NAMES)] if base.tracing.enabled else []
    return grpc.server(
        futures.ThreadPoolExecutor(cfg.worker_threads, thread_name_prefix="rpc"),
        interceptors=[
            CallMetrics(base.metrics, SERVICE_NAMES),
            *traced,
            admission,
            DecodeGuard(SERVICE_NAMES),
        ],
        options=[
            ("grpc.max_receive_message_length", base.limits.max_batch_bytes + _FRAME_SLACK),
            ("grpc.max_send_message_length", _MAX_SEND),
            # Off unless configured: a second node started by mistake on a
            # SQLite node's port must fail to bind, not share its calls.
            ("grpc.so_reuseport", int(cfg.scale_out.reuse_port)),
            # No grpc.max_concurrent_streams: set to the worker threads, it
            # made busy channels fail calls with REFUSED_STREAM. Calls still
            # queued when SIGTERM comes are CANCELLED without storing
            # anything; senders retry them (tests/reliability).
            *connection_options(cfg.admission),
        ],
    )


def add_servicers(
    server: grpc.Server,
    base: Foundation,
    app: Application,
    peers: Outbound,
    capacity: ClientCapacity,
    liaison: LiaisonServicer,
    certificate_not_after: Callable[[], datetime | None],
) -> None:
    """FederationService, HotlineService and LiaisonService on ``server``."""
    callers = Callers(base.rosters, base.config.insecure_plaintext)
    federation = FederationServicer(
        app.delivery, base.rosters, base.limits, callers, on_roster_installed=peers.sync.installed
    )
    oversight = Oversight(base.db, lambda: base.rosters.roster, certificate_not_after)
    hotline = HotlineServicer(
        HotlineDesk(
            app.delivery, app.lookup, app.actions, app.authored, app.operator_audit, oversight
        ),
        callers,
        base.limits,
        heavy_reads=capacity.heavy,
    )
    add_services(server, federation, hotline, liaison)


def add_health(server: grpc.Server, config: NodeConfig) -> health.HealthServicer:
    """The health service (and reflection, when configured) on ``server``."""
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection:
        names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
    return health_servicer


def serve_metrics(base: Foundation, app: Application) -> int:
    """Gauges read from the store at scrape time; the metrics port when served, else 0."""
    base.metrics.watch_store(base.db, app.overdue.after)
    listen = base.config.metrics.listen
    if not listen:
        return 0
    port = base.metrics.serve(listen)
    log.info("metrics served", listen=listen, port=port)
    return port


def start_background(peers: Outbound, app: Application) -> None:
    """Start roster sync, the outbox sender, the overdue watch and (on
    PostgreSQL) the follower of other processes' filings, once serving."""
    peers.sync.start()
    peers.outbox.start()
    app.watcher.start()
    if app.follower is not None:
        app.follower.start()


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a running node holds, to stop it."""

    base: Foundation
    peers: Outbound
    app: Application
    capacity: ClientCapacity
    server: grpc.Server
    health: health.HealthServicer


def server_tls(config: NodeConfig) -> ServerTls | None:
    """The server's reloadable TLS material (None in plaintext mode)."""
    if config.insecure_plaintext or config.tls is None:
        return None
    try:
        return ServerTls(config.tls)
    except MaterialError as exc:
        raise SystemExit(str(exc)) from exc


def node_upkeep(base: Foundation, config_path: Path | None) -> Upkeep:
    """Reloads, the signing watch and expiry warnings, reported in metrics too."""
    upkeep = Upkeep(base.config, config_path, base.identity, base.rosters, server_tls(base.config))
    base.rosters.on_install.append(upkeep.roster_installed)
    base.metrics.watch_lifetimes(upkeep.expiries, lambda: upkeep.can_sign)
    return upkeep


class Node:
    """One running HFP node."""

    def __init__(
        self,
        config: NodeConfig,
        config_path: Path | None = None,
        span_exporters: Sequence[SpanExporter] = (),
    ) -> None:
        self.config = config
        #: In-process span exporters besides the configured one (tests).
        self._span_exporters = tuple(span_exporters)
        #: The configuration file, read again on reload for the signing key files.
        self.config_path = config_path
        self._parts: _Parts | None = None
        self._stopping = threading.Event()
        self._upkeep: Upkeep | None = None
        self.port: int = 0
        self.metrics_port: int = 0

    def start(self) -> None:
        """Open storage, load trust, bind and start serving."""
        cfg = self.config
        base = foundation(cfg, self._span_exporters)
        self._upkeep = node_upkeep(base, self.config_path)
        tls = self._upkeep.tls
        peers = outbound(base, tls.client_identity if tls else None)
        self._upkeep.on_tls_renewed.append(peers.outbox.channels.renew)
        app = application(base, peers.outbox.notify)
        capacity = client_capacity(cfg, base.db, CLIENT_SERVICES)
        server, health_servicer = self._serve(base, app, peers, capacity)
        self._upkeep.attach(health_servicer)
        self._upkeep.tick()
        start_background(peers, app)
        self._parts = _Parts(base, peers, app, capacity, server, health_servicer)
        log.info(
            "node serving",
            member_id=cfg.member_id,
            listen=cfg.listen,
            port=self.port,
            roster_version=base.rosters.roster.version,
        )

    def _serve(
        self, base: Foundation, app: Application, peers: Outbound, capacity: ClientCapacity
    ) -> tuple[grpc.Server, health.HealthServicer]:
        """The gRPC server with every service, bound and started, reporting SERVING."""
        liaison = liaison_servicer(base, app, capacity, self._stopping)
        server = grpc_server(base, capacity, audit_refused_liaison_calls(liaison))
        assert self._upkeep is not None  # made by start() before serving
        expiry = self._upkeep.certificate_not_after
        add_servicers(server, base, app, peers, capacity, liaison, expiry)
        health_servicer = add_health(server, base.config)
        self.port = self._bind(server)
        server.start()
        for name in ("", *SERVICE_NAMES):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.metrics_port = serve_metrics(base, app)
        return server, health_servicer

    def _bind(self, server: grpc.Server) -> int:
        cfg = self.config
        if cfg.insecure_plaintext:
            log.warning(
                "INSECURE PLAINTEXT MODE: no TLS, callers are not authenticated; "
                "never use this outside a development machine",
                listen=cfg.listen,
            )
            port = server.add_insecure_port(cfg.listen)
        else:
            assert self._upkeep is not None and self._upkeep.tls is not None
            port = server.add_secure_port(cfg.listen, self._upkeep.tls.credentials())
        if port == 0:
            raise SystemExit(f"cannot listen on {cfg.listen} (address in use?)")
        return port

    def stop(self, grace: float | None = None) -> None:
        """Stop: refuse new calls and report NOT_SERVING, let in-flight ones finish."""
        parts = self._parts
        if parts is None:
            return
        self._parts = None
        grace = self.config.grace_seconds if grace is None else grace
        log.info("node stopping", grace_seconds=grace)
        # New calls are refused from the moment anyone can see NOT_SERVING:
        # with the health change first, a busy node (its threads holding the
        # GIL) could still admit calls between the two. In-flight calls,
        # health watches included, go on for ``grace``.
        stopped = parts.server.stop(grace)
        parts.health.enter_graceful_shutdown()
        self._stopping.set()  # ends liaison streams; clients resume from their cursor
        stopped.wait()
        parts.capacity.lane.shutdown()
        parts.capacity.refusals.stop()  # refused calls still queued reach the audit log
        parts.peers.outbox.stop()
        parts.app.watcher.stop()
        if parts.app.follower is not None:
            parts.app.follower.stop()
        parts.peers.sync.stop()
        parts.base.executor.shutdown(wait=True)
        parts.base.db.dispose()
        parts.base.tracing.shutdown()  # exports the spans still buffered
        log.info("node stopped")

    def reload(self, why: str) -> None:
        """Read the TLS material and signing keys again (SIGHUP, changed files)."""
        if self._upkeep is not None:
            self._upkeep.reload(why)

    def tick(self) -> None:
        """The periodic checks: changed files, signing ability, expiry warnings."""
        if self._upkeep is not None:
            self._upkeep.tick()

    def wait(self) -> None:
        """Block until the server terminates."""
        if self._parts is not None:
            self._parts.server.wait_for_termination()


#: How often the main thread wakes to run pending signal handlers.
SIGNAL_POLL_SECONDS = 0.5

#: Collector thresholds of a serving node (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 100)


def tune_gc() -> None:
    """Make Python's cycle collector cheap for a long-running node.

    Profiles of ingest showed the collector taking about 15 % of the time:
    with the default thresholds it ran every few hundred allocations, and
    each full collection walked every object loaded at start-up (gRPC,
    protobuf, SQLAlchemy, the roster) although none of them ever becomes
    garbage. Freezing what exists once the node is up takes those out of
    every later collection, and a larger young generation lets most of a
    batch's short-lived objects die by reference counting before a
    collection looks at them (in-process: 1,914-1,975 -> 2,135-2,229
    reports/s). The cost: a start-up object that later ends up in a
    reference cycle is never freed, which is why this runs in the node's
    process entry point only, not where tests start nodes in-process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(config: NodeConfig, config_path: Path | None = None) -> None:
    """Run a node until SIGTERM or SIGINT, then shut down gracefully; SIGHUP
    reloads its TLS material and signing keys."""
    node = Node(config, config_path)
    node.start()
    tune_gc()
    stop = threading.Event()
    hangup = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        (hangup if signum == signal.SIGHUP else stop).set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    # Python runs signal handlers only in the main thread, when it wakes up.
    # The kernel may deliver SIGTERM to any of gRPC's threads, which does
    # not interrupt a main thread blocked in an untimed wait: it would sleep
    # through the signal for good. Waking twice a second bounds the delay.
    # The reload runs here, on the main thread, never inside the handler.
    while not stop.wait(SIGNAL_POLL_SECONDS):
        if hangup.is_set():
            hangup.clear()
            node.reload("SIGHUP")
        node.tick()
    node.stop()
