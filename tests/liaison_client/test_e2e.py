"""`hfed liaison` driven as an officer would, against real nodes.

A small network (hotline-dk and hotline-nl running) is started once; each
test copies police-dk's devnet profile (DIR/members/police-dk/liaison.toml)
with its own state directory and runs `hfed liaison ...` as a subprocess.
Every subprocess and every wait is bounded; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("federation.api.liaison")

from federation.devnet import processes
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import receipt_pb2, report_pb2
from tests.support.net import DEADLINE, Network, running_network, small_members

DK, NL = "hotline-dk", "hotline-nl"
HFED = [sys.executable, "-m", "federation.cli.main", "liaison"]
#: Bound of every subprocess that is expected to finish by itself.
RUN_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(
        tmp_path_factory.mktemp("liaison-cli") / "net", small_members(DK, NL)
    ) as network:
        yield network


def copy_profile(net: Network, directory: Path, **overrides: str) -> Path:
    """police-dk's devnet profile with absolute paths and a private state dir."""
    source = net.directory / "members" / "police-dk" / "liaison.toml"
    raw = tomllib.loads(source.read_text())
    for key in ("ca_cert", "cert", "key"):
        raw[key] = str((source.parent / raw[key]).resolve())
    raw["state_dir"] = str(directory / "state")
    raw.update(overrides)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "liaison.toml"
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in raw.items()))
    return path


@pytest.fixture
def profile(net: Network, tmp_path: Path) -> Path:
    return copy_profile(net, tmp_path / "police-dk")


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HFED_LIAISON_PROFILE"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def hfed(profile: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*HFED, *args, "--profile", str(profile)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        env=environment(),
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def submit(net: Network, country: str, tag: str) -> receipt_pb2.Receipt:
    """A report at hotline-dk, with hotline-dk's own TLS identity."""
    report = report_pb2.Report(
        url=f"https://{tag}.example.com/{os.urandom(5).hex()}", hosting_country=country
    )
    with net.channel(DK, DK) as channel:
        return (
            hgrpc.HotlineServiceStub(channel)
            .SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE)
            .receipt
        )


def dk_case(net: Network, tag: str) -> str:
    receipt = submit(net, "DK", tag)
    assert receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED and receipt.case_id
    return receipt.case_id


def events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def all_events(net: Network, tmp_path: Path) -> list[dict[str, Any]]:
    """Every event of the log so far, read by a fresh watch from the start."""
    fresh = copy_profile(net, tmp_path / f"fresh-{os.urandom(3).hex()}")
    return events(
        hfed(fresh, "watch", "--from-start", "--format", "json", "--idle-exit", "3").stdout
    )


def test_list_shows_dk_referrals_only(net: Network, profile: Path) -> None:
    mine = dk_case(net, "list")
    forwarded = submit(net, "NL", "list-nl")
    assert forwarded.outcome == receipt_pb2.OUTCOME_FORWARDED
    rows = list(csv.DictReader(io.StringIO(hfed(profile, "list", "--format", "csv").stdout)))
    assert mine in {r["case_id"] for r in rows}
    assert {r["country"] for r in rows} == {"DK"}
    row = next(r for r in rows if r["case_id"] == mine)
    assert row["status"] == "RECEIVED" and row["reports"] == "1"
    assert row["url"].startswith("https://list.example.com/")
    table = hfed(profile, "list", "--status", "received").stdout
    assert table.splitlines()[0].split()[:2] == ["CASE_ID", "STATUS"]
    assert mine in table
    listed = json.loads(hfed(profile, "list", "--format", "json", "--limit", "1").stdout)
    assert len(listed) == 1


def test_ack_hold_release(net: Network, profile: Path) -> None:
    case_id = dk_case(net, "ack")
    acked = hfed(profile, "ack", case_id, "--reference", "DK-POL-2026-0042").stdout
    assert case_id in acked and "DK-POL-2026-0042" in acked
    held = hfed(profile, "hold", case_id, "--reason", "covert operation", "--until", "2d").stdout
    assert f"case {case_id}: on hold until " in held and "covert operation" in held
    row = next(
        r
        for r in json.loads(hfed(profile, "list", "--format", "json").stdout)
        if r["case_id"] == case_id
    )
    assert row["acknowledged"] == "DK-POL-2026-0042"
    assert row["hold_until"]
    released = hfed(profile, "release", case_id).stdout
    assert f"case {case_id}: hold released" in released
    again = hfed(profile, "release", case_id, ok=False)
    assert again.returncode == 1 and "no active hold" in again.stderr


def test_case_outside_the_jurisdiction_is_not_found(net: Network, profile: Path) -> None:
    report = report_pb2.Report(url="https://nl-only.example.com/x", hosting_country="NL")
    with net.channel(NL, NL) as channel:
        nl_case = (
            hgrpc.HotlineServiceStub(channel)
            .SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE)
            .receipt.case_id
        )
    assert nl_case
    # Another country's case and an id that exists nowhere look exactly alike.
    for case_id in (nl_case, "0190c6c2-7a3b-7c4d-8e5f-123456789abc"):
        result = hfed(profile, "ack", case_id, "--reference", "X", ok=False)
        assert result.returncode == 5, result.stderr
        assert f"no such referral in your jurisdiction: {case_id}" in result.stderr


def test_wrong_node_is_explained(net: Network, tmp_path: Path) -> None:
    nl = net.member(NL)
    wrong = copy_profile(net, tmp_path / "wrong", node=nl.endpoint, node_member_id=NL)
    result = hfed(wrong, "list", ok=False)
    assert result.returncode == 4
    assert "not responsible for your jurisdictions (DK)" in result.stderr
    assert f"{NL} ({nl.endpoint})" in result.stderr


def test_export_csv(net: Network, profile: Path, tmp_path: Path) -> None:
    case_id = dk_case(net, "export")
    hfed(profile, "ack", case_id, "--reference", "REF-7")
    out = tmp_path / "referrals.csv"
    result = hfed(profile, "export", "--since", "1d", "--output", str(out))
    assert re.search(r"exported \d+ referrals to ", result.stderr)
    rows = {r["case_id"]: r for r in csv.DictReader(out.open(newline=""))}
    row = rows[case_id]
    assert row["hosting_country"] == "DK" and row["reports"] == "1"
    assert row["reporters"] == DK and row["police_reference"] == "REF-7"
    assert row["police_acknowledged_at"].endswith("Z")
    assert re.fullmatch(r"RECEIVED@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["history"])


def test_watch_resumes_without_repeats(net: Network, profile: Path, tmp_path: Path) -> None:
    dk_case(net, "watch")
    dk_case(net, "watch")
    first = events(hfed(profile, "watch", "--format", "json", "--max-events", "2").stdout)
    assert len(first) == 2
    case_id = dk_case(net, "watch")
    hfed(profile, "ack", case_id, "--reference", "W-1")
    second = events(hfed(profile, "watch", "--format", "json", "--max-events", "1").stdout)
    rest = events(hfed(profile, "watch", "--format", "json", "--idle-exit", "3").stdout)
    seen = [e["sequence"] for e in first + second + rest]
    assert seen == sorted(set(seen)), "an event was repeated or out of order"
    assert seen == [e["sequence"] for e in all_events(net, tmp_path)], "an event was skipped"
    assert [e["kind"] for e in rest[-2:]] == ["CASE_OPENED", "ACKNOWLEDGED"]
    assert {e["case_id"] for e in rest[-2:]} == {case_id}
    text = hfed(profile, "watch", "--idle-exit", "2")
    assert text.stdout == "" and "after event" in text.stderr


class Watcher:
    """A `hfed liaison watch` subprocess whose lines are collected as they come."""

    def __init__(self, profile: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*HFED, "watch", "--profile", str(profile), "--format", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr = ""
        assert self.process.stdout is not None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> None:
        """Collect events until one matches (bounded)."""
        deadline = time.monotonic() + timeout
        while not any(match(e) for e in self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self.lines.empty()):
                raise AssertionError(f"no matching event; got {self.seen}")
            try:
                self.seen.append(json.loads(self.lines.get(timeout=min(remaining, 1.0))))
            except queue.Empty:
                continue

    def stop(self) -> int:
        """Ctrl-C, then the exit status; collects what is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        time.sleep(0.2)  # let the pump drain the closed pipe
        while not self.lines.empty():
            self.seen.append(json.loads(self.lines.get_nowait()))
        return code


def test_watch_across_a_node_restart(net: Network, profile: Path, tmp_path: Path) -> None:
    before = dk_case(net, "restart-before")
    watcher = Watcher(profile, "--from-start", "--reconnect-for", "60")
    try:
        watcher.wait_for(lambda e: e["case_id"] == before)
        processes.down(net.directory, only=[DK])
        processes.up(net.directory, timeout=60.0, only=[DK])
        after = dk_case(net, "restart-after")
        watcher.wait_for(lambda e: e["case_id"] == after and e["kind"] == "CASE_OPENED")
    finally:
        code = watcher.stop()
    assert code == 0, watcher.stderr
    assert "lost the node" in watcher.stderr and "reconnected" in watcher.stderr
    seen = [e["sequence"] for e in watcher.seen]
    assert seen == sorted(set(seen)), "an event was repeated or out of order"
    everything = [e["sequence"] for e in all_events(net, tmp_path)]
    assert seen == everything[: len(seen)], "an event was skipped"
    # The place was saved at the last printed event: nothing more to show.
    resumed = hfed(profile, "watch", "--format", "json", "--idle-exit", "2")
    assert [e["sequence"] for e in events(resumed.stdout)] == everything[len(seen) :]
