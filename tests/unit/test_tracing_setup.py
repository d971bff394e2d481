"""The tracing setup (federation/runtime/tracing.py) and its [tracing] settings."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from federation.node.config import TracingConfig
from federation.runtime.tracing import (
    DISABLED,
    SPAN_ITEM_IDS,
    items_attributes,
    link_to,
    parent_context,
    start_tracing,
    trace_metadata,
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", PARENT + "x"],
)
def test_a_malformed_traceparent_names_no_parent(value: str) -> None:
    assert parent_context(value) is None
    assert link_to(value) is None
    assert trace_metadata({"TRACEPARENT": value}) == ()


def test_the_traceparent_variable_becomes_call_metadata() -> None:
    assert trace_metadata({"TRACEPARENT": PARENT}) == (("traceparent", PARENT),)
    assert trace_metadata({}) == ()


def test_tracing_off_makes_no_span_and_no_context() -> None:
    assert not DISABLED.enabled
    with DISABLED.span("intake.store", {"hfed.items": 1}, parent=PARENT) as span:
        assert span is None
        assert DISABLED.traceparent() is None


def test_a_span_continues_a_stored_traceparent() -> None:
    exporter = InMemorySpanExporter()
    tracing = start_tracing("hotline-dk", extra=[exporter])
    with tracing.span("outbox.send", parent=PARENT) as span:
        assert span is not None
        stored = tracing.traceparent()
    assert stored is not None and stored.split("-")[1] == PARENT.split("-")[1]
    [finished] = exporter.get_finished_spans()
    assert finished.parent is not None and finished.parent.span_id == 0xB7AD6B7169203331
    assert finished.resource.attributes["service.name"] == "hotline-dk"
    tracing.shutdown()


def test_a_peer_cannot_force_sampling_past_the_ratio() -> None:
    exporter = InMemorySpanExporter()
    tracing = start_tracing("hotline-dk", sample_ratio=0.0, extra=[exporter])
    with tracing.span("FederationService/Deliver", parent=PARENT):
        pass
    assert exporter.get_finished_spans() == ()
    # ...and with ratio 1 an unsampled parent does not stop the node recording.
    everything = start_tracing("hotline-dk", sample_ratio=1.0, extra=[exporter])
    with everything.span("FederationService/Deliver", parent=UNSAMPLED):
        pass
    assert len(exporter.get_finished_spans()) == 1


def test_small_batches_name_their_items_large_ones_count_them() -> None:
    small = items_attributes(["a", "b", ""])
    assert small == {"hfed.items": 3, "hfed.item_ids": ["a", "b"]}
    large = items_attributes(["x"] * (SPAN_ITEM_IDS + 1))
    assert large == {"hfed.items": SPAN_ITEM_IDS + 1}


def test_the_otlp_exporter_is_built_when_configured() -> None:
    tracing = start_tracing("hotline-dk", "otlp", "http://127.0.0.1:4317")
    assert tracing.enabled
    tracing.shutdown()


def test_tracing_is_off_by_default_and_the_ratio_is_bounded() -> None:
    assert not TracingConfig().enabled
    with pytest.raises(ValidationError):
        TracingConfig(sample_ratio=1.5)
    with pytest.raises(ValidationError):
        TracingConfig(exporter="jaeger")  # type: ignore[arg-type]
