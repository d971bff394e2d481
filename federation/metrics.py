"""Prometheus metrics of a node, on a separate HTTP port (``[metrics] listen``).

One registry per node process (not the global default), so that tests can
run several nodes' code in one interpreter without name clashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, start_http_server


@dataclass
class NodeMetrics:
    """The node's counters."""

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

    def serve(self, listen: str) -> int:
        """Serve /metrics on host:port (port 0 picks one); returns the port."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        return int(server.server_address[1])
