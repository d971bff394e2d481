"""Raw gRPC throughput: the same Deliver traffic against a handler that does nothing.

A tiny gRPC server runs in its own process (its own interpreter, as the node
has), built like the node's: mutual TLS with a network certificate, a
16-thread pool, the same message caps. Its Deliver handler ignores the request
bytes and returns a fixed DeliverResponse as large as a real one (one real
signed receipt per item of the batch). The client sends the same pre-signed
batch bytes from the same number of threads as the ingest run. What this
reaches is what the transport alone allows on this machine: the node cannot
beat it.

    python -m bench.grpc_raw --serve CERT KEY CA REPLY PORT_FILE   (internal)
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

from bench.netctl import DK, NL, BenchNet
from bench.progress import say
from bench.report import Results
from bench.sender import send_batches
from bench.workload import Batch
from crypto.dsse import sign_envelope
from federation.core.reasons import RECEIPT_TYPE, Outcome
from federation.core.receipt import accepted
from federation.runtime.clock import utc_now
from federation.wire.convert import decode_envelope, encode_receipt, envelope_to_proto
from hfp.v1 import federation_service_pb2 as fed_pb
from peers.channel import secure_channel

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
WORKER_THREADS = 16
START_TIMEOUT = 30.0


def fixed_reply(net: BenchNet, batch: Batch) -> bytes:
    """A DeliverResponse with one real signed receipt per item of ``batch``."""
    key = net.signing_key(NL)
    request = fed_pb.DeliverRequest.FromString(batch.data)
    now = utc_now()
    receipts = []
    for index, item in enumerate(request.items):
        envelope = decode_envelope(item.envelope.SerializeToString())
        receipt = accepted(
            envelope, f"{index:036d}", Outcome.ACCEPTED, NL, now, case_id=f"{index:036d}"
        )
        signed = sign_envelope(key, NL, RECEIPT_TYPE, encode_receipt(receipt))
        receipts.append(envelope_to_proto(signed))
    return fed_pb.DeliverResponse(receipts=receipts).SerializeToString()


def serve(cert: Path, key: Path, ca: Path, reply_file: Path, port_file: Path) -> None:
    """Run the empty Deliver handler until SIGTERM (subprocess side)."""
    reply = reply_file.read_bytes()
    handler = grpc.method_handlers_generic_handler(
        "hfp.v1.FederationService",
        {"Deliver": grpc.unary_unary_rpc_method_handler(lambda _request, _context: reply)},
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(WORKER_THREADS),
        handlers=[handler],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_concurrent_streams", WORKER_THREADS),  # as the node
        ],
    )
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    port_file.write_text(str(port))
    while not done.wait(0.5):  # wake up for the handler (see federation.node.server.serve)
        pass
    server.stop(grace=1).wait(5)


def _wait_port(port_file: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        if process.poll() is not None:
            raise RuntimeError("the empty gRPC server exited at start")
        time.sleep(0.05)
    raise RuntimeError("the empty gRPC server did not start")


def measure(
    results: Results, net: BenchNet, batch: Batch, threads: int, seconds: float, work: Path
) -> None:
    """Throughput of the empty handler with the ingest traffic, in items/s."""
    work.mkdir(parents=True, exist_ok=True)
    reply_file, port_file = work / "reply.bin", work / "port"
    reply_file.write_bytes(fixed_reply(net, batch))
    port_file.unlink(missing_ok=True)
    home = net.directory / "members" / NL
    command = [sys.executable, "-m", "bench.grpc_raw", "--serve"]
    paths = [home / "tls.pem", home / "tls.key", net.directory / "ca.pem", reply_file, port_file]
    process = subprocess.Popen([*command, *map(str, paths)], env=os.environ.copy())
    try:
        port = _wait_port(port_file, process)
        _send(results, net, batch, threads, seconds, f"127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _send(
    results: Results, net: BenchNet, batch: Batch, threads: int, seconds: float, endpoint: str
) -> None:
    say(f"grpc: empty handler, {threads} threads, {seconds:.0f}s")
    count = max(threads * 2, math.ceil(seconds * 2000))  # more than can be sent in time
    with secure_channel(endpoint, net.identity(DK)) as channel:
        send_batches(channel, [batch] * threads, threads, math.inf)  # connect and warm up
        sent = send_batches(channel, [batch] * count, threads, seconds)
    results.add("grpc_empty_items_per_s", sent.items / sent.elapsed, "items/s")
    results.add("grpc_request_bytes", len(batch.data), "bytes")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--serve":
        serve(*(Path(arg) for arg in sys.argv[2:]))
    else:
        sys.exit(__doc__)
