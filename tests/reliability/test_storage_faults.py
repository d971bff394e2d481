"""Storage failing under a running node: the database locked, the disk full.

hotline-nl's node keeps its data in one SQLite file (WAL mode, busy_timeout
10 s). While it runs:

* another process takes the database's write lock (BEGIN EXCLUSIVE) and
  holds it past the node's busy_timeout: a Deliver must then fail with
  UNAVAILABLE (retryable), carry no receipt and store nothing, and succeed
  once the lock is released;
* the node's file-size limit (RLIMIT_FSIZE, set on the running process with
  prlimit; Python ignores SIGXFSZ, so writes fail with EFBIG as on a full
  disk) is lowered to just above its current files: batches are accepted
  until SQLite cannot grow its files, then a Deliver must fail cleanly
  (UNAVAILABLE or RESOURCE_EXHAUSTED, never INTERNAL or UNKNOWN) with nothing
  of it stored; once the limit is lifted the retry is stored without a
  restart, and after a restart every item is stored exactly once with the
  receipts already given.
"""

from __future__ import annotations

import os
import resource
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing

import grpc
import pytest

from federation.devnet import processes
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.crashes import (
    id_counts,
    integrity_ok,
    receipt_envelope,
    set_check,
    start_node,
    stored_receipts_of,
)
from tests.support.net import (
    BULK_DEADLINE,
    Network,
    item,
    make_report,
    outcome_name,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

NODE, SENDER = "hotline-nl", "hotline-dk"
#: Longer than the node's busy_timeout (10 s, federation/store/database.py)
#: plus the time it takes to answer.
LOCKED_CALL_DEADLINE = 40.0
#: Refusals a sender can act on (retry later); anything else is a defect.
CLEAN_REFUSALS = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
#: Words a refusal's detail must not contain (internals of the storage layer).
INTERNALS = ("sqlite", "sqlalchemy", "locked", "disk i/o", "traceback", "node.db")
#: Room above the node's current file sizes before its writes fail.
HEADROOM = 1024 * 1024
FILL_BATCH = 100
MAX_FILL_BATCHES = 60


@pytest.fixture(scope="module")
def fnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("storage-faults") / "net"
    with running_network(directory, small_members(NODE)) as network:
        yield network


def _batch(net: Network, count: int) -> tuple[fed_pb.DeliverRequest, list[str]]:
    key = net.signing_key(SENDER)
    reports = [make_report(SENDER, "NL") for _ in range(count)]
    return (
        fed_pb.DeliverRequest(items=[item(sign_report(r, key)) for r in reports]),
        [r.report_id for r in reports],
    )


def _call(
    net: Network, request: fed_pb.DeliverRequest, timeout: float = BULK_DEADLINE
) -> tuple[grpc.StatusCode, str, list[bytes]]:
    """Deliver ``request``: (code, details, receipts)."""
    with net.stub(SENDER, NODE) as stub:
        try:
            reply = stub.Deliver(request, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", []
    return grpc.StatusCode.OK, "", [r.SerializeToString() for r in reply.receipts]


def _accepted(net: Network, receipts: list[bytes], ids: list[str]) -> None:
    roster = net.bootstrap_roster().roster
    assert len(receipts) == len(ids)
    for item_id, data in zip(ids, receipts, strict=True):
        receipt = verify_receipt(net, receipt_envelope(data), roster)
        assert (receipt.item_id, outcome_name(receipt)) == (item_id, "OUTCOME_ACCEPTED")


def _clean_refusal(code: grpc.StatusCode, details: str) -> None:
    assert code in CLEAN_REFUSALS, f"storage failure answered with {code.name}: {details!r}"
    assert details, "a refusal without a human-readable detail"
    assert not any(word in details.lower() for word in INTERNALS), details


@pytest.mark.timeout(180)
def test_database_locked_past_busy_timeout_refused_then_stored(fnet: Network) -> None:
    """Hold the node's SQLite write lock from another process for longer than its
    busy_timeout while delivering 50 items: expect UNAVAILABLE with no receipt and
    nothing stored; after the lock is released the retry is accepted and each item
    stored once, nothing lost."""
    request, ids = _batch(fnet, 50)
    with closing(sqlite3.connect(fnet.db_path(NODE), timeout=30.0, isolation_level=None)) as lock:
        lock.execute("BEGIN EXCLUSIVE")
        try:
            code, details, receipts = _call(fnet, request, LOCKED_CALL_DEADLINE)
            assert receipts == []
            _clean_refusal(code, details)
            assert code == grpc.StatusCode.UNAVAILABLE
        finally:
            lock.execute("ROLLBACK")
    assert stored_receipts_of(fnet, NODE, ids) == {}, "a refused batch left items behind"

    code, details, receipts = _call(fnet, request)
    assert code == grpc.StatusCode.OK, details
    _accepted(fnet, receipts, ids)
    assert stored_receipts_of(fnet, NODE, ids) == dict(zip(ids, receipts, strict=True))


def _file_sizes(net: Network) -> dict[str, int]:
    data = net.db_path(NODE).parent
    return {p.name: p.stat().st_size for p in data.iterdir() if p.is_file()}


@pytest.mark.timeout(300)
def test_disk_full_refused_cleanly_then_recovered(fnet: Network) -> None:
    """Lower the running node's file-size limit to just above its files and deliver
    batches of 100 until one fails: expect a clean refusal (UNAVAILABLE or
    RESOURCE_EXHAUSTED) with nothing of that batch stored and the node alive; after
    the limit is lifted the retry is stored, and after a restart every item is stored
    exactly once with the receipts given before, nothing lost."""
    pid = fnet.pid(NODE)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    sizes = _file_sizes(fnet)
    limit = max(sizes.values()) + HEADROOM
    print(f"\nnode files: {sizes}; file-size limit {limit}")
    given: dict[str, bytes] = {}
    refused: tuple[fed_pb.DeliverRequest, list[str]] | None = None
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))
    try:
        for _ in range(MAX_FILL_BATCHES):
            request, ids = _batch(fnet, FILL_BATCH)
            code, details, receipts = _call(fnet, request)
            if code != grpc.StatusCode.OK:
                print(f"refused after {len(given)} items: {code.name}: {details}")
                _clean_refusal(code, details)
                refused = request, ids
                break
            given.update(zip(ids, receipts, strict=True))
        assert refused is not None, f"{MAX_FILL_BATCHES} batches fitted under the limit"
        assert stored_receipts_of(fnet, NODE, refused[1]) == {}, "a refused batch was stored"
        os.kill(pid, 0)  # still running
        assert fnet.healthy(NODE), "the node stopped serving when its disk filled up"
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))

    # Room again: the same node takes the refused batch, no restart needed.
    request, ids = refused
    code, details, receipts = _call(fnet, request)
    assert code == grpc.StatusCode.OK, f"no recovery once the disk had room: {code}: {details}"
    _accepted(fnet, receipts, ids)
    given.update(zip(ids, receipts, strict=True))

    # A restart finds a sound database holding everything, once.
    processes.down(fnet.directory, only=[NODE])
    assert integrity_ok(fnet, NODE)
    start_node(fnet, NODE)
    # (Other tests of this module stored items too: count only ours.)
    check = set_check(
        given,
        *(
            Counter({k: n for k, n in id_counts(fnet, NODE, table, column).items() if k in given})
            for table, column in (("inbound_items", "item_id"), ("case_reports", "report_id"))
        ),
    )
    print(check.summary())
    assert check.ok, check.summary()
    stored = stored_receipts_of(fnet, NODE, given)
    assert stored == given, "stored receipts differ from those given"
