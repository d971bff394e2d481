"""Test networks for the benchmarks: create, start and stop real node processes.

Built on ``federation.devnet`` only (the same code as ``hfed devnet``), so the
benchmark measures the node exactly as an operator starts it. Every network
started here is remembered and stopped by ``stop_all`` (called from a
``finally`` in bench.main, so also after CTRL-C).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from crypto.keys import SigningKey
from federation.core.roster import Role, Roster
from federation.devnet import processes
from federation.devnet.create import DEFAULT_MEMBERS, MemberSpec, init_network
from federation.devnet.manifest import Manifest, MemberEntry
from peers.channel import ClientIdentity, secure_channel

DK, NL, DE = "hotline-dk", "hotline-nl", "hotline-de"
POLICE_NL = "police-nl"
#: Members of a benchmark network. Only hotline-dk and hotline-nl can run a
#: node; the others keep the roster endpoints they need (hotline-de as a
#: sender and forward target, the secretariat as the fallback).
_MEMBERS = (DK, NL, DE, "secretariat", POLICE_NL)
_NODES = (DK, NL)

_started: list[Path] = []


def bench_members() -> tuple[MemberSpec, ...]:
    """The member specs of a benchmark network."""
    specs = []
    for spec in DEFAULT_MEMBERS:
        if spec.member_id in _MEMBERS:
            runs = spec.member_id in _NODES
            reserve = not runs and spec.role is not Role.LIAISON
            specs.append(dataclasses.replace(spec, runs_node=runs, reserve_endpoint=reserve))
    return tuple(specs)


@dataclass(frozen=True)
class BenchNet:
    """A benchmark network directory and its manifest."""

    directory: Path
    manifest: Manifest

    def entry(self, member_id: str) -> MemberEntry:
        """A member's manifest entry."""
        return self.manifest.members[member_id]

    def identity(self, member_id: str) -> ClientIdentity:
        """The member's TLS client identity."""
        entry = self.entry(member_id)
        return ClientIdentity.from_files(
            self.directory / self.manifest.ca_cert,
            self.directory / entry.tls_cert,
            self.directory / entry.tls_key,
        )

    @contextmanager
    def channel(self, caller: str, target: str) -> Iterator[grpc.Channel]:
        """A mutual-TLS channel from ``caller``'s identity to ``target``'s node."""
        with secure_channel(self.entry(target).endpoint, self.identity(caller)) as channel:
            yield channel

    def signing_key_path(self, member_id: str) -> Path:
        """Where ``devnet init`` wrote the member's signing key."""
        return self.directory / self.entry(member_id).signing_key

    def signing_key(self, member_id: str) -> SigningKey:
        """The member's signing key."""
        return SigningKey.load(self.signing_key_path(member_id))

    def roster(self) -> Roster:
        """The bootstrap roster, verified against the root keys."""
        return self.manifest.verified_roster(self.directory)

    def db_path(self, member_id: str) -> Path:
        """The node's SQLite file (as the generated node.toml names it)."""
        return self.directory / "members" / member_id / "data" / "node.db"

    def pid(self, member_id: str) -> int:
        """The pid ``devnet up`` recorded for a node."""
        return int((self.directory / "members" / member_id / "node.pid").read_text().strip())


def create(directory: Path) -> BenchNet:
    """A fresh benchmark network in ``directory`` (an older one there is removed)."""
    if directory.exists():
        shutil.rmtree(directory)
    manifest = init_network(directory, bench_members())
    return BenchNet(directory.resolve(), manifest)


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the node processes spawned inside."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start(net: BenchNet, members: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Start nodes (``devnet up``) with extra environment settings; wait until serving."""
    if net.directory not in _started:
        _started.append(net.directory)
    with _environment(env or {}):
        processes.up(net.directory, timeout=120.0, only=list(members))


def stop(net: BenchNet, members: Sequence[str] | None = None) -> None:
    """Stop nodes (SIGTERM, SIGKILL after the grace period)."""
    processes.down(net.directory, only=list(members) if members else None)


def stop_all() -> None:
    """Stop every node of every network started in this run."""
    for directory in _started:
        try:
            processes.down(directory)
        except Exception as exc:  # cleanup must try every network
            print(f"could not stop the nodes in {directory}: {exc}", file=sys.stderr)
    _started.clear()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
