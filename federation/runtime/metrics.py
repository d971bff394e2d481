"""Prometheus metrics of a node, on a separate HTTP port (``[metrics] listen``).

One registry per node process (not the global default), so that tests can
run several nodes' code in one interpreter without name clashes. Counters
move as work happens; queue and case gauges are read from the database at
scrape time, so they are right whichever process (or restart) did the work.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from federation.runtime.clock import Clock, utc_now
from federation.store import gauges
from federation.store import outbox as outbox_store
from federation.store.database import Database

#: Seconds from an item entering the outbox to the peer's receipt.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Seconds a served call took, to its status (a stream: to its end).
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600)


@dataclass
class NodeMetrics:
    """The node's counters and histograms."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.items_received = Counter(
            "hfed_items_received",
            "Items received (Deliver and own intake), by payload type, outcome and reject reason.",
            ["payload_type", "outcome", "reason"],
            registry=self.registry,
        )
        self.outbox_delivered = Counter(
            "hfed_outbox_delivered",
            "Items a peer acknowledged, by peer and outcome.",
            ["peer", "outcome"],
            registry=self.registry,
        )
        self.outbox_rejected = Counter(
            "hfed_outbox_rejected",
            "Items a peer refused (kept, not retried), by peer and reject reason.",
            ["peer", "reason"],
            registry=self.registry,
        )
        self.outbox_failures = Counter(
            "hfed_outbox_send_failures",
            "Failed delivery attempts to a peer.",
            ["peer"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "hfed_delivery_latency_seconds",
            "Time from an item entering the outbox to the peer's verified receipt.",
            ["peer"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._add_rpc_metrics()

    def _add_rpc_metrics(self) -> None:
        """Per-method call counts and durations (fed by ``api.call_metrics``), build info."""
        self.rpc_calls = Counter(
            "hfed_rpc_calls",
            "Calls served, by method (Service/Method) and gRPC status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_duration = Histogram(
            "hfed_rpc_duration_seconds",
            "Time from a call's start to its status (a streaming call: to its end), by method.",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        build = Gauge(
            "hfed_build_info",
            "Always 1; the labels name the node's version, Python and grpcio.",
            ["version", "python", "grpc"],
            registry=self.registry,
        )
        build.labels(*build_versions()).set(1)

    def watch_store(self, db: Database, overdue_after: timedelta, clock: Clock = utc_now) -> None:
        """Also report queue depths, oldest ages, open and overdue cases."""
        self.registry.register(_StoreCollector(db, overdue_after, clock))

    def watch_lifetimes(
        self,
        expiries: Callable[[], Mapping[str, datetime | None]],
        can_sign: Callable[[], bool],
        clock: Clock = utc_now,
    ) -> None:
        """Also report the roster's and certificate's remaining lifetime and
        whether the node has a key to sign with."""
        self.registry.register(_LifetimeCollector(expiries, can_sign, clock))

    def serve(self, listen: str) -> int:
        """Serve /metrics on host:port (port 0 picks one); returns the port."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        return int(server.server_address[1])


def build_versions() -> tuple[str, str, str]:
    """This node's package version, the Python version and the grpcio version."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return installed("hotline-federation"), platform.python_version(), installed("grpcio")


class _StoreCollector(Collector):
    """Gauges computed from the database when Prometheus scrapes."""

    def __init__(self, db: Database, overdue_after: timedelta, clock: Clock) -> None:
        self._db = db
        self._overdue_after = overdue_after
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        depth = GaugeMetricFamily("hfed_outbox_depth", "Items waiting for a peer.", labels=["peer"])
        oldest = GaugeMetricFamily(
            "hfed_outbox_oldest_age_seconds",
            "Age of the oldest item waiting for a peer.",
            labels=["peer"],
        )
        with self._db.read() as session:
            for state in outbox_store.queue_states(session):
                depth.add_metric([state.destination], state.pending)
                age = (now - state.oldest_pending).total_seconds() if state.oldest_pending else 0
                oldest.add_metric([state.destination], age)
            open_cases = gauges.open_cases(session)
            overdue = gauges.overdue_cases(session, now - self._overdue_after)
        yield depth
        yield oldest
        yield GaugeMetricFamily("hfed_open_cases", "Open cases held here.", value=open_cases)
        yield GaugeMetricFamily(
            "hfed_overdue_takedowns",
            "Cases with a takedown notice older than the deadline.",
            value=overdue,
        )


#: Gauge names of ``_LifetimeCollector`` by what expires (Upkeep.expiries keys).
_LIFETIME_GAUGES = {
    "roster": ("hfed_roster_expires_in_seconds", "Seconds until the installed roster expires."),
    "TLS certificate": (
        "hfed_tls_certificate_expires_in_seconds",
        "Seconds until this node's TLS certificate expires.",
    ),
}


class _LifetimeCollector(Collector):
    """Remaining lifetimes, computed when Prometheus scrapes (negative once expired)."""

    def __init__(
        self,
        expiries: Callable[[], Mapping[str, datetime | None]],
        can_sign: Callable[[], bool],
        clock: Clock,
    ) -> None:
        self._expiries = expiries
        self._can_sign = can_sign
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        for what, when in self._expiries().items():
            if when is not None and what in _LIFETIME_GAUGES:
                name, documentation = _LIFETIME_GAUGES[what]
                yield GaugeMetricFamily(name, documentation, value=(when - now).total_seconds())
        yield GaugeMetricFamily(
            "hfed_signing_key_available",
            "1 when the roster lists a key this node holds as valid now, else 0.",
            value=1 if self._can_sign() else 0,
        )
