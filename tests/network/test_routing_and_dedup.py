"""Reports routed by hosting country across a real 3-hotline network.

A = hotline-dk, B = hotline-nl, C = hotline-de; the secretariat is the fallback.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hfp.v1 import case_pb2, receipt_pb2, report_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from tests.support.net import DEADLINE, Network, running_network

A, B, C, FALLBACK = "hotline-dk", "hotline-nl", "hotline-de", "secretariat"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("routing") / "net") as network:
        yield network


def submit(net: Network, at: str, url: str, country: str) -> receipt_pb2.Receipt:
    report = report_pb2.Report(
        url=url,
        hosting_country=country,
        hashes=[
            report_pb2.ContentHash(algorithm=report_pb2.HASH_ALGORITHM_SHA256, value=os.urandom(32))
        ],
    )
    with net.channel(at, at) as channel:
        reply = pb_grpc.HotlineServiceStub(channel).SubmitReport(
            pb.SubmitReportRequest(report=report), timeout=DEADLINE
        )
    return reply.receipt


def case_of(net: Network, at: str, report_id: str, timeout: float = 15.0) -> case_pb2.Case:
    """The case holding ``report_id`` at node ``at``, waiting (bounded) for it to arrive."""
    deadline = time.monotonic() + timeout
    with net.channel(at, at) as channel:
        stub = pb_grpc.HotlineServiceStub(channel)
        while True:
            try:
                return stub.GetCase(pb.GetCaseRequest(report_id=report_id), timeout=DEADLINE).case
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


def unique_url(tag: str) -> str:
    return f"https://{tag}.example.com/{os.urandom(6).hex()}"


def test_report_for_b_submitted_at_a_becomes_bs_case(net: Network) -> None:
    receipt = submit(net, A, unique_url("route"), "NL")
    assert receipt.outcome == receipt_pb2.OUTCOME_FORWARDED and receipt.forwarded_to == B
    case = case_of(net, B, receipt.item_id)
    assert case.responsible_member_id == B and case.hosting_country == "NL"
    assert case.status == status_pb2.CASE_STATUS_RECEIVED
    assert [(r.report_id, r.origin_member_id) for r in case.reports] == [(receipt.item_id, A)]


@pytest.mark.parametrize("country", ["FR", "ZZ"])
def test_uncovered_country_goes_to_the_fallback(net: Network, country: str) -> None:
    receipt = submit(net, A, unique_url("fallback"), country)
    assert receipt.forwarded_to == FALLBACK
    assert case_of(net, FALLBACK, receipt.item_id).responsible_member_id == FALLBACK


def test_own_country_is_a_local_case(net: Network) -> None:
    receipt = submit(net, B, unique_url("local"), "NL")
    assert receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED and receipt.case_id


def test_same_url_from_a_and_c_is_one_case_at_b(net: Network) -> None:
    url = unique_url("dup")
    first = submit(net, A, url, "NL")
    second = submit(net, C, url.replace("https://", "HTTPS://") + "#fragment", "NL")
    one = case_of(net, B, first.item_id)
    two = case_of(net, B, second.item_id)
    assert one.case_id == two.case_id
    assert sorted(r.origin_member_id for r in two.reports) == sorted([A, C])


def test_concurrent_duplicates_end_in_exactly_one_case(net: Network) -> None:
    url = unique_url("race")
    receipts: list[receipt_pb2.Receipt] = []
    lock = threading.Lock()

    def one(at: str) -> None:
        r = submit(net, at, url, "NL")
        with lock:
            receipts.append(r)

    threads = [threading.Thread(target=one, args=(at,)) for at in (A, B, C) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(receipts) == 12
    cases = {case_of(net, B, r.item_id).case_id for r in receipts}
    assert len(cases) == 1
    assert len(case_of(net, B, receipts[0].item_id).reports) == 12


def test_hfed_report_and_case_commands(net: Network, tmp_path: Path) -> None:
    hfed = [sys.executable, "-m", "federation.cli.main"]
    where = ["--devnet", str(net.directory), "--member", A]
    url = unique_url("cli")
    out = subprocess.run(
        [
            *hfed,
            "report",
            "submit",
            *where,
            "--url",
            url,
            "--country",
            "NL",
            "--hash",
            "sha256:" + os.urandom(32).hex(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "FORWARDED" in out and B in out
    report_id = out.split()[1].rstrip(":")
    case_id = case_of(net, B, report_id).case_id
    where_b = ["--devnet", str(net.directory), "--member", B]
    shown = subprocess.run(
        [*hfed, "case", "show", *where_b, report_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert case_id in shown and A in shown
    listed = subprocess.run(
        [*hfed, "case", "list", *where_b, "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = list(csv.DictReader(listed.splitlines()))
    assert case_id in {r["case_id"] for r in rows}
    bad = subprocess.run(
        [*hfed, "report", "submit", *where, "--url", "data:image/png;base64,AA", "--country", "NL"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stderr


def test_report_import_csv_with_a_bad_row(net: Network, tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "country", "hashes"])
        writer.writerow([unique_url("csv"), "NL", "sha256:" + os.urandom(32).hex()])
        writer.writerow([unique_url("csv"), "DE", "md5:zz"])  # bad hash: reported, not fatal
        writer.writerow([unique_url("csv"), "DK", ""])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "federation.cli.main",
            "report",
            "import",
            "--devnet",
            str(net.directory),
            "--member",
            A,
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "2 submitted, 1 failed" in result.stdout
    rows = list(csv.DictReader((tmp_path / "batch.results.csv").open()))
    assert [r["outcome"] for r in rows] == ["FORWARDED", "ERROR", "ACCEPTED"]
    assert "not hexadecimal" in rows[1]["error"]
