"""Against a peer: medallion, the OASIS TAXII 2.1 reference server, memory backend.

medallion is installed from PyPI into its own virtual environment under the
work directory (created once, then reused), started on 127.0.0.1 with its
memory backend and basic auth, and sent the same number of STIX 2.1
indicators (synthetic example.test URLs with a random SHA-256) as our timed
ingest run, in envelopes of our batch size, from the same number of client
threads. Its Add Objects answer carries the status resource; the memory
backend completes the work before answering (status "complete"), so the
time until the last POST returned is the time until everything was stored.

If medallion has not finished within the step's time cap, no further
envelopes are sent and its rate is taken over the objects it did store; as
its per-object cost grows with the collection's size, that flatters it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.progress import say
from bench.report import Results
from federation.devnet.create import free_ports

VERSION = "3.0.0"
USER, PASSWORD = "bench", "bench-password"
API_ROOT = "bench"
COLLECTION = "9f3f7d5e-2c1b-4f6e-9a43-1d2a3b4c5d6e"
TAXII = "application/taxii+json;version=2.1"
HTTP_TIMEOUT = 120.0
START_TIMEOUT = 30.0
INSTALL_TIMEOUT = 600.0


def clean_env() -> dict[str, str]:
    """Our environment without PYTHONPATH, which would leak this project into medallion's."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def ensure_installed(work: Path) -> Path:
    """medallion's own venv (created on first use); the path of its launcher."""
    venv = work / "medallion-venv"
    marker = venv / f".installed-{VERSION}"
    launcher = venv / "bin" / "medallion"
    if marker.exists() and launcher.exists():
        return launcher
    say(f"medallion: creating {venv} and installing medallion=={VERSION} (once)")
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run(
        [python, "-m", "venv", "--clear", str(venv)], check=True, timeout=120, env=clean_env()
    )
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"medallion=={VERSION}"],
        check=True,
        timeout=INSTALL_TIMEOUT,
        env=clean_env(),
    )
    marker.write_text(f"medallion {VERSION}\n")
    return launcher


def write_config(directory: Path, port: int) -> Path:
    """medallion's configuration: memory backend, one writable collection, basic auth."""
    base = f"http://127.0.0.1:{port}"
    data = {
        "/discovery": {
            "title": "benchmark",
            "description": "synthetic data only",
            "default": f"{base}/{API_ROOT}/",
            "api_roots": [f"{base}/{API_ROOT}/"],
        },
        API_ROOT: {
            "information": {
                "title": "benchmark root",
                "versions": [TAXII],
                "max_content_length": 100 * 1024 * 1024,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "reports",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(directory / "data.json"),
        },
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": 100},
    }
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def _headers() -> dict[str, str]:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": TAXII, "Content-Type": TAXII}


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=_headers())
    response = conn.getresponse()
    return response.status, response.read()


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the discovery endpoint answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("medallion exited at start (see its log in the work directory)")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
        try:
            if _request(conn, "GET", "/taxii2/")[0] == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError("medallion did not answer within the start timeout")


def _indicator(index: int, stamp: str) -> dict[str, object]:
    url = f"https://home.example.test/stix/{index}/{uuid.uuid4().hex[:12]}"
    sha = uuid.uuid4().hex + uuid.uuid4().hex
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": stamp,
        "modified": stamp,
        "name": "reported URL",
        "indicator_types": ["malicious-activity"],
        "pattern": f"[url:value = '{url}'] AND [file:hashes.'SHA-256' = '{sha}']",
        "pattern_type": "stix",
        "valid_from": stamp,
    }


def envelopes(count: int, size: int) -> list[tuple[int, bytes]]:
    """``count`` indicators as serialized TAXII envelopes of ``size`` objects."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    bodies = []
    for start in range(0, count, size):
        objects = [_indicator(i, stamp) for i in range(start, min(start + size, count))]
        bodies.append((len(objects), json.dumps({"objects": objects}).encode()))
    return bodies


@dataclass
class Posted:
    """What the POSTs achieved."""

    stored: int = 0
    refused: int = 0
    elapsed: float = 0.0


def post_all(
    port: int, bodies: Sequence[tuple[int, bytes]], threads: int, seconds: float
) -> Posted:
    """POST the envelopes from ``threads`` threads until done or ``seconds`` pass."""
    path = f"/{API_ROOT}/collections/{COLLECTION}/objects/"
    lock = threading.Lock()
    queue = iter(bodies)
    result = Posted()
    start = time.perf_counter()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
        try:
            while time.perf_counter() - start < seconds:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                status, data = _request(conn, "POST", path, body[1])
                answer = json.loads(data) if status == 202 else {}
                with lock:
                    complete = answer.get("status") == "complete"
                    result.stored += int(answer.get("success_count", 0)) if complete else 0
                    result.refused += body[0] - (
                        int(answer.get("success_count", 0)) if complete else 0
                    )
        finally:
            conn.close()

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    result.elapsed = time.perf_counter() - start
    return result


def measure(
    results: Results, work: Path, count: int, size: int, threads: int, seconds: float
) -> None:
    """Install (once), start, post ``count`` objects; record medallion's rate."""
    launcher = ensure_installed(work)
    [port] = free_ports(1)
    config = write_config(work / "medallion-run", port)
    bodies = envelopes(count, size)
    log = (work / "medallion-run" / "medallion.log").open("wb")
    command = [str(launcher), "--host", "127.0.0.1", "--port", str(port), "--log-level", "ERROR"]
    process = subprocess.Popen(
        [*command, str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        wait_ready(port, process)
        say(f"medallion: posting {count:,} objects in envelopes of {size}, cap {seconds:.0f}s")
        posted = post_all(port, bodies, threads, seconds)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
    say(
        f"medallion: stored {posted.stored:,} of {count:,} in {posted.elapsed:.1f}s "
        f"(refused or failed: {posted.refused:,})"
    )
    rate = posted.stored / posted.elapsed
    results.add("medallion_objects_per_s", rate, "objects/s")
    results.add("medallion_objects_stored", posted.stored, "objects")
    results.add("medallion_objects_offered", count, "objects")
