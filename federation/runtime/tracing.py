"""OpenTelemetry tracing of one report's path across nodes (off by default).

The node's own spans (``intake.store``, ``outbox.send``, ``liaison.event``)
and the gRPC edges' spans (``api/tracing.py`` serving, the instrumentation's
client interceptor in ``peers/channel.py``) come from one ``Tracing`` per
node, with the member id as ``service.name``. Across a queue the context
travels as a W3C ``traceparent`` string stored with the row (outbox item,
case event) and restored when the row is sent or streamed.

With tracing off every entry point here is a flag test: no span, no context
change, no string, so the Deliver hot path pays nothing per item (or per
batch beyond one attribute read). Span names and attributes carry only
member ids, item ids, case ids, counts and reason codes: never a URL, a
hash, a note or any other report content (tests/node/test_tracing.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from federation.core.errors import SetupError

#: The W3C header (and gRPC metadata key) that carries a trace context.
TRACEPARENT = "traceparent"
#: Where spans go: an OTLP collector over gRPC, standard output, or nowhere
#: (spans are still made, for an exporter added in-process: tests).
Exporter = Literal["otlp", "console", "none"]
Attributes = Mapping[str, AttributeValue]

#: Batches up to this size name their item ids in a span (larger ones only count).
SPAN_ITEM_IDS = 50

_W3C = TraceContextTextMapPropagator()
_INSTRUMENTATION = "hotline-federation"


def parent_context(traceparent: str | None) -> Context | None:
    """The context a stored or received traceparent names (None: absent or malformed)."""
    if not traceparent:
        return None
    context = _W3C.extract({TRACEPARENT: traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def link_to(traceparent: str | None) -> Link | None:
    """A span link to the trace a stored traceparent names, if it names one."""
    context = parent_context(traceparent)
    if context is None:
        return None
    return Link(trace.get_current_span(context).get_span_context())


def trace_metadata(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the W3C traceparent in ``environ["TRACEPARENT"]``
    (the convention of tracing-aware scripts), if it holds a valid one."""
    value = environ.get(TRACEPARENT.upper(), "").strip()
    return ((TRACEPARENT, value),) if parent_context(value) is not None else ()


class Tracing:
    """The node's tracer, or (no provider) tracing switched off."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        #: Read on hot paths before anything else is done for tracing.
        self.enabled = provider is not None
        self.tracer: trace.Tracer = (
            provider.get_tracer(_INSTRUMENTATION) if provider else trace.NoOpTracer()
        )

    def traceparent(self) -> str | None:
        """The current span's traceparent, to store with a queued row (None when off)."""
        if not self.enabled:
            return None
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get(TRACEPARENT)

    @contextmanager
    def _span(
        self,
        name: str,
        attributes: Attributes,
        parent: str | None,
        kind: SpanKind,
        links: Sequence[Link],
    ) -> Iterator[Span]:
        # Exceptions are not recorded: their messages (a database error's
        # parameters, say) could carry report content.
        with self.tracer.start_as_current_span(
            name,
            parent_context(parent),
            kind,
            attributes,
            links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        parent: str | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] = (),
    ) -> AbstractContextManager[Span | None]:
        """A current span (child of ``parent``, a traceparent, when given; else of
        the current one); a context giving None when tracing is off."""
        if not self.enabled:
            return nullcontext()
        return self._span(name, attributes or {}, parent, kind, links)

    def shutdown(self) -> None:
        """Export what is buffered and stop (node shutdown)."""
        if self.provider is not None:
            self.provider.shutdown()


def items_attributes(item_ids: Sequence[str]) -> dict[str, AttributeValue]:
    """A batch's size and, for batches up to SPAN_ITEM_IDS items, their ids."""
    attributes: dict[str, AttributeValue] = {"hfed.items": len(item_ids)}
    if len(item_ids) <= SPAN_ITEM_IDS:
        attributes["hfed.item_ids"] = [i for i in item_ids if i]
    return attributes


#: Tracing switched off: the default of every part that can trace.
DISABLED = Tracing()


def _exporter(kind: Exporter, endpoint: str) -> SpanExporter | None:
    if kind == "console":
        return ConsoleSpanExporter()
    if kind != "otlp":
        return None
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
    except ImportError as exc:  # an optional dependency: the [otlp] extra
        raise SetupError(
            "tracing.exporter = otlp needs opentelemetry-exporter-otlp-proto-grpc "
            "(pip install 'hotline-federation[otlp]')"
        ) from exc
    return OTLPSpanExporter(endpoint=endpoint or None)


def start_tracing(
    service_name: str,
    exporter: Exporter = "none",
    endpoint: str = "",
    sample_ratio: float = 1.0,
    extra: Sequence[SpanExporter] = (),
) -> Tracing:
    """A node's tracing, exporting to ``exporter`` (batched) and to ``extra``
    (each span as it ends: in-process exporters of tests).

    Every node samples by the same rule on the trace id, whoever started the
    trace (ParentBased with the ratio for remote parents too): nodes with
    equal ratios keep the same traces whole, and a peer's ``sampled`` flag
    cannot make this node record more than its own ratio allows.
    """
    ratio = TraceIdRatioBased(sample_ratio)
    sampler = ParentBased(ratio, remote_parent_sampled=ratio, remote_parent_not_sampled=ratio)
    provider = TracerProvider(
        sampler=sampler, resource=Resource.create({"service.name": service_name})
    )
    main = _exporter(exporter, endpoint)
    if main is not None:
        provider.add_span_processor(BatchSpanProcessor(main))
    for each in extra:
        provider.add_span_processor(SimpleSpanProcessor(each))
    return Tracing(provider)
