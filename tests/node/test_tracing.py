"""One report's path across two nodes is one trace (issue 18, Observability).

Unlike the other node tests, the two nodes here run in the test process, so
that one in-memory span exporter sees the spans of both: hotline-nl (A)
takes a report about a URL hosted in Denmark, its outbox sends it on to
hotline-dk (B), which files it, and police-dk's WatchReferrals stream at B
sends the new case's event. Everything else is as in production: mutual TLS
on 127.0.0.1, the nodes' real SQLite files, configuration from the files
``devnet init`` wrote, with ``[tracing]`` switched on by override.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from federation.cli.main import cli
from federation.node.config import apply_env_overrides, load_config
from federation.node.server import Node
from federation.store.migrate import upgrade_url
from hfp.v1 import case_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import liaison_service_pb2 as liaison_pb
from hfp.v1 import liaison_service_pb2_grpc as liaison_grpc
from tests.support.hotline import hotline, record, submit_url
from tests.support.net import DEADLINE, Network, create_network, small_members

#: Tracing on, no exporter but the test's (no collector runs here).
TRACING_ON = {"HFED_TRACING__ENABLED": "true", "HFED_TRACING__EXPORTER": "none"}
A, B, LIAISON = "hotline-nl", "hotline-dk", "police-dk"


def start_node(net: Network, member: str, exporter: InMemorySpanExporter) -> Node:
    """The member's node, in this process, exporting its spans to ``exporter``."""
    config = load_config(net.path(net.member(member).config), environ=TRACING_ON)
    upgrade_url(config.database_url)  # as `devnet up` does
    node = Node(config, span_exporters=[exporter])
    node.start()
    return node


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Network, InMemorySpanExporter]]:
    """Two traced nodes (A, B) sharing one in-memory exporter."""
    net = create_network(tmp_path_factory.mktemp("tracing") / "net", small_members(A, B))
    exporter = InMemorySpanExporter()
    nodes = [start_node(net, member, exporter) for member in (A, B)]
    try:
        yield net, exporter
    finally:
        for node in reversed(nodes):
            node.stop(grace=1.0)


def watch_first_event(net: Network, seen: list[liaison_pb.WatchReferralsResponse]) -> None:
    """police-dk's stream at B until its first event (or the deadline)."""
    with net.channel(LIAISON, B) as channel:
        stream = liaison_grpc.LiaisonServiceStub(channel).WatchReferrals(
            liaison_pb.WatchReferralsRequest(), timeout=DEADLINE
        )
        try:
            for response in stream:
                seen.append(response)
                return
        except grpc.RpcError:
            return
        finally:
            stream.cancel()


def wait_for(exporter: InMemorySpanExporter, name: str, timeout: float = DEADLINE) -> None:
    """Until a span called ``name`` has ended."""
    deadline = time.monotonic() + timeout
    while not any(s.name == name for s in exporter.get_finished_spans()):
        assert time.monotonic() < deadline, f"no {name} span within {timeout} s"
        time.sleep(0.05)


def one(spans: Sequence[ReadableSpan], name: str, service: str) -> ReadableSpan:
    """The one span called ``name`` made by node ``service``."""
    found = [
        s for s in spans if s.name == name and s.resource.attributes["service.name"] == service
    ]
    assert len(found) == 1, f"{name} at {service} in the path is not one trace: {found}"
    return found[0]


def parent_of(span: ReadableSpan, parent: ReadableSpan) -> None:
    assert span.parent is not None, f"{span.name} has no parent"
    assert span.parent.span_id == parent.context.span_id, (
        f"{span.name} is not a child of {parent.name}"
    )


@pytest.fixture(scope="module")
def path(traced: tuple[Network, InMemorySpanExporter]) -> tuple[str, list[ReadableSpan]]:
    """The URL of one report submitted at A, and every span its path made."""
    net, exporter = traced
    seen: list[liaison_pb.WatchReferralsResponse] = []
    watcher = threading.Thread(target=watch_first_event, args=(net, seen))
    watcher.start()  # from the start of the log: no race with the filing
    url = f"https://tracing.example.dk/{uuid.uuid4()}?secret=note"
    submit_url(net, A, url, "DK")
    watcher.join(DEADLINE + 2)
    assert seen, "police-dk's stream sent no event"
    wait_for(exporter, "liaison.event")
    # B files and streams before its Deliver answer reaches A: A's send span
    # (which holds the client call's) ends after the event, so wait for it too.
    wait_for(exporter, "outbox.send")
    return url, list(exporter.get_finished_spans())


def test_one_trace_spans_submit_forward_file_and_liaison_stream(
    path: tuple[str, list[ReadableSpan]],
) -> None:
    _, spans = path
    submit = one(spans, "HotlineService/SubmitReport", A)
    # Only the submit's trace: B's RECEIVED update travels back to A in a
    # trace of its own, with spans of the same names.
    trace = [s for s in spans if s.context.trace_id == submit.context.trace_id]
    queued = one(trace, "intake.store", A)
    send = one(trace, "outbox.send", A)
    call = one(trace, "/hfp.v1.FederationService/Deliver", A)  # the gRPC instrumentation's
    deliver = one(trace, "FederationService/Deliver", B)
    filed = one(trace, "intake.store", B)
    event = one(trace, "liaison.event", B)
    chain = [submit, queued, send, call, deliver, filed, event]

    assert submit.parent is None or submit.parent.is_remote
    for child, parent in zip(chain[1:], chain, strict=False):
        parent_of(child, parent)
    assert submit.kind is SpanKind.SERVER and deliver.kind is SpanKind.SERVER
    assert call.kind is SpanKind.CLIENT
    assert event.attributes is not None and event.attributes["hfed.event_kind"] == "CASE_OPENED"
    assert filed.attributes is not None and filed.attributes["hfed.sender"] == A


def test_a_recorded_status_reaches_the_reporter_in_the_recording_call_trace(
    traced: tuple[Network, InMemorySpanExporter], path: tuple[str, list[ReadableSpan]]
) -> None:
    net, exporter = traced
    url, _ = path
    [case] = list_cases(net, B, url)
    record(net, B, case.case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
    deadline = time.monotonic() + DEADLINE
    while True:
        spans = list(exporter.get_finished_spans())
        recorded = [s for s in spans if s.name == "HotlineService/RecordStatus"]
        trace = [
            s for s in spans if recorded and s.context.trace_id == recorded[0].context.trace_id
        ]
        if any(s.name == "intake.store" and _service(s) == A for s in trace):
            break
        assert time.monotonic() < deadline, "the update's delivery to A left the trace"
        time.sleep(0.05)
    send = one(trace, "outbox.send", B)
    parent_of(send, one(trace, "HotlineService/RecordStatus", B))
    parent_of(
        one(trace, "FederationService/Deliver", A),
        one(trace, "/hfp.v1.FederationService/Deliver", B),
    )


def test_a_liaison_command_joins_the_trace_named_by_traceparent(
    traced: tuple[Network, InMemorySpanExporter],
) -> None:
    net, exporter = traced
    trace_id = uuid.uuid4().hex
    profile = net.directory / "members" / LIAISON / "liaison.toml"
    env = {"TRACEPARENT": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}
    done = CliRunner().invoke(cli, ["liaison", "list", "--profile", str(profile)], env=env)
    assert done.exit_code == 0, done.output
    wait_for(exporter, "LiaisonService/ListReferrals")
    listed = [s for s in exporter.get_finished_spans() if s.name == "LiaisonService/ListReferrals"]
    assert any(format(s.context.trace_id, "032x") == trace_id for s in listed)


def list_cases(net: Network, at: str, url: str) -> list[Any]:
    """The cases at ``at`` of the URL."""
    request = hpb.ListCasesRequest(filters=case_pb2.CaseFilter(url=url))
    with hotline(net, at) as stub:
        return list(stub.ListCases(request, timeout=DEADLINE).cases)


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def _strings(span: ReadableSpan) -> Iterator[str]:
    yield span.name
    for value in (span.attributes or {}).values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, Sequence):
            yield from (str(v) for v in value)
    for event in span.events:
        yield event.name
        yield from (str(v) for v in (event.attributes or {}).values())
    if span.status.description:
        yield span.status.description


def test_spans_carry_no_report_content(path: tuple[str, list[ReadableSpan]]) -> None:
    url, spans = path
    secrets = (url, "tracing.example.dk", "secret=note")
    for span in spans:
        for text in _strings(span):
            assert not any(s in text for s in secrets), (
                f"{span.name} carries report content: {text}"
            )
    allowed = ("rpc.", "hfed.")
    for span in spans:
        for key in span.attributes or {}:
            assert key.startswith(allowed), f"{span.name} has attribute {key}"


def test_overrides_switch_tracing_on() -> None:
    raw: dict[str, object] = {}
    assert apply_env_overrides(raw, TRACING_ON) == sorted(TRACING_ON)
    assert raw == {"tracing": {"enabled": True, "exporter": "none"}}
