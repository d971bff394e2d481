"""The Prometheus endpoint reflects traffic: counters, latency, queue and case gauges."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import report_pb2
from tests.support.net import DEADLINE, Network, running_network, small_members

A, B = "hotline-dk", "hotline-nl"
COUNT = 20


def scrape(net: Network, member: str) -> dict[str, float]:
    """Samples of a node's /metrics (name{labels} -> value)."""
    url = f"http://{net.member(member).metrics}/metrics"
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*(?:\{.*\})?) (\S+)", line)
        if match and not line.startswith("#"):
            samples[match.group(1)] = float(match.group(2))
    return samples


def test_metrics_move_with_traffic(tmp_path: Path) -> None:
    with running_network(tmp_path / "net", small_members(A, B, "secretariat")) as net:
        before = scrape(net, A)
        with net.channel(A, A) as channel:
            stub = pb_grpc.HotlineServiceStub(channel)
            for _ in range(COUNT):
                report = report_pb2.Report(
                    url=f"https://metrics.example.com/{os.urandom(4).hex()}", hosting_country="NL"
                )
                stub.SubmitReport(pb.SubmitReportRequest(report=report), timeout=DEADLINE)
            with pytest.raises(grpc.RpcError):  # counted with its code
                stub.GetCase(pb.GetCaseRequest(case_id="no-such-case"), timeout=DEADLINE)
        delivered = 'hfed_outbox_delivered_total{outcome="FORWARDED",peer="hotline-nl"}'
        accepted = 'hfed_outbox_delivered_total{outcome="ACCEPTED",peer="hotline-nl"}'
        depth = 'hfed_outbox_depth{peer="hotline-nl"}'
        deadline = time.monotonic() + 20
        after = scrape(net, A)
        # The counter moves when the receipts are in; the depth gauge (read
        # from the database at scrape time) when the rows are retired, a
        # moment later: wait for both.
        while (after.get(accepted, 0) < COUNT or after.get(depth, 0) > 0) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
            after = scrape(net, A)
        received = (
            'hfed_items_received_total{outcome="STORED",payload_type="hfp.v1.Report",reason=""}'
        )
        assert after[received] - before.get(received, 0) == COUNT
        assert after[accepted] == COUNT and delivered not in after
        assert after['hfed_delivery_latency_seconds_count{peer="hotline-nl"}'] == COUNT
        assert after[depth] == 0
        at_b = scrape(net, B)
        assert at_b["hfed_open_cases"] == COUNT
        assert at_b["hfed_overdue_takedowns"] == 0
        assert_rpc_metrics(after, scrape(net, B))
        for member in (A, B):  # reported URLs never reach the logs
            log = (net.directory / "members" / member / "node.log").read_text()
            assert "metrics.example.com" not in log


def assert_rpc_metrics(at_a: dict[str, float], at_b: dict[str, float]) -> None:
    """Calls per method and code, their durations, and the build info."""
    submit = 'method="HotlineService/SubmitReport"'
    assert at_a[f'hfed_rpc_calls_total{{code="OK",{submit}}}'] == COUNT
    assert at_a[f"hfed_rpc_duration_seconds_count{{{submit}}}"] == COUNT
    get_case = 'hfed_rpc_calls_total{code="NOT_FOUND",method="HotlineService/GetCase"}'
    assert at_a[get_case] == 1
    assert at_b['hfed_rpc_calls_total{code="OK",method="FederationService/Deliver"}'] >= 1
    build = [name for name, value in at_a.items() if name.startswith("hfed_build_info{")]
    assert len(build) == 1 and at_a[build[0]] == 1 and 'version="' in build[0]
