"""``hfed devnet up|down|status``: node processes of a test network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.devnet.manifest import Manifest, MemberEntry
from federation.node.config import load_config
from federation.store.migrate import upgrade_url
from peers.channel import ClientIdentity, secure_channel

HEALTH_DEADLINE = 2.0
STOP_GRACE = 15.0


class DevnetError(RuntimeError):
    """A node of the test network could not be started or stopped."""


@dataclass(frozen=True)
class NodeState:
    """What ``status`` reports for one node."""

    member_id: str
    endpoint: str
    pid: int | None
    serving: bool


def _home(directory: Path, member_id: str) -> Path:
    return directory / "members" / member_id


def _pid_file(directory: Path, member_id: str) -> Path:
    return _home(directory, member_id) / "node.pid"


def _live_pid(directory: Path, member_id: str, entry: MemberEntry) -> int | None:
    """The node's pid if that process is alive and is really this node."""
    try:
        pid = int(_pid_file(directory, member_id).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # Guard against pid reuse: the process must be serving this very config.
    return pid if str(directory / entry.config).encode() in cmdline else None


def check_health(directory: Path, entry: MemberEntry, timeout: float = HEALTH_DEADLINE) -> bool:
    """True when the node at ``entry.endpoint`` answers SERVING."""
    identity = ClientIdentity.from_files(
        directory / "ca.pem", directory / entry.tls_cert, directory / entry.tls_key
    )
    with secure_channel(entry.endpoint, identity) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _spawn(directory: Path, member_id: str, entry: MemberEntry) -> int:
    config = directory / entry.config
    # Disposed at once: a pooled connection left open here would share the
    # file's WAL state with whatever later replaces or reopens the database.
    upgrade_url(load_config(config).database_url)
    log = (_home(directory, member_id) / "node.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # survives the CLI; stopped by `devnet down`
    )
    _pid_file(directory, member_id).write_text(f"{process.pid}\n")
    return process.pid


def _log_tail(directory: Path, member_id: str, lines: int = 15) -> str:
    try:
        text = (_home(directory, member_id) / "node.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _selected(manifest: Manifest, only: Sequence[str] | None) -> dict[str, MemberEntry]:
    nodes = manifest.nodes()
    unknown = sorted(set(only or ()) - set(nodes))
    if unknown:
        raise DevnetError(f"not nodes of this network: {', '.join(unknown)}")
    return {k: v for k, v in nodes.items() if not only or k in only}


def up(
    directory: Path, timeout: float = 60.0, only: Sequence[str] | None = None
) -> list[NodeState]:
    """Start every node (or those in ``only``) not already running; wait until all serve."""
    directory = directory.resolve()
    manifest = Manifest.load(directory)
    selected = _selected(manifest, only)
    # Pids we spawned are ours for sure; /proc/<pid>/cmdline can still be
    # empty while the child is inside execve, so don't re-check those by name.
    pids = {m: _live_pid(directory, m, e) or _spawn(directory, m, e) for m, e in selected.items()}
    deadline = time.monotonic() + timeout
    waiting = dict(selected)
    while waiting and time.monotonic() < deadline:
        for member_id, entry in list(waiting.items()):
            if not alive(pids[member_id]):
                raise DevnetError(f"node {member_id} exited:\n{_log_tail(directory, member_id)}")
            if check_health(directory, entry):
                del waiting[member_id]
        if waiting:
            time.sleep(0.2)
    if waiting:
        names = ", ".join(sorted(waiting))
        raise DevnetError(f"not serving after {timeout:.0f}s: {names}")
    return status(directory)


def down(
    directory: Path, timeout: float = STOP_GRACE, only: Sequence[str] | None = None
) -> list[str]:
    """Stop every running node, or those in ``only`` (SIGTERM, then SIGKILL)."""
    directory = directory.resolve()
    manifest = Manifest.load(directory)
    stopped = []
    pids = {}
    for member_id, entry in _selected(manifest, only).items():
        pid = _live_pid(directory, member_id, entry)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            pids[member_id] = pid
    deadline = time.monotonic() + timeout
    for member_id, pid in pids.items():
        wait_or_kill(pid, deadline)
        _pid_file(directory, member_id).unlink(missing_ok=True)
        stopped.append(member_id)
    return stopped


def wait_or_kill(pid: int, deadline: float) -> None:
    """Wait until process ``pid`` (sent SIGTERM) exits, SIGKILL it at ``deadline``
    (a time.monotonic() value)."""
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (reaped or zombie children count as gone)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie that is not our child still shows up; /proc tells.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False


def status(directory: Path) -> list[NodeState]:
    """The state of every node of the network."""
    directory = directory.resolve()
    manifest = Manifest.load(directory)
    states = []
    for member_id, entry in manifest.nodes().items():
        pid = _live_pid(directory, member_id, entry)
        serving = pid is not None and check_health(directory, entry)
        states.append(NodeState(member_id, entry.endpoint, pid, serving))
    return states
