"""Fixtures of the console tests: a small real network and a console beside hotline-dk.

The console runs as ``hfed console --devnet DIR --member hotline-dk`` in a
subprocess on a free loopback port, with an account file of its own; the
browser tests drive it with Debian's chromium through chromedriver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # make `tests.support` importable however pytest is run
    sys.path.insert(0, str(ROOT))

from federation.devnet.create import free_ports  # noqa: E402
from tests.support.net import (  # noqa: E402
    Network,
    running_network,
    small_members,
    wait_exited,
)

DK, NL = "hotline-dk", "hotline-nl"
HFED = [sys.executable, "-m", "federation.cli.main", "console"]
PASSWORD = "a long test password"
#: Accounts every console test may use: name -> role.
ACCOUNTS = {"ana": "analyst", "sue": "supervisor", "sam": "supervisor", "root": "admin"}


@dataclass(frozen=True)
class RunningConsole:
    """A console process beside a node: its address and account file."""

    url: str
    users: Path
    net: Network


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFED_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def add_account(net: Network, users: Path, name: str, role: str) -> None:
    """``hfed console user add`` with the password on stdin."""
    subprocess.run(
        [
            *HFED,
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--users",
            str(users),
            "--devnet",
            str(net.directory),
            "--member",
            DK,
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
        env=_environment(),
    )


def _wait_up(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"console exited: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(url + "/login", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("console did not start in time")


@pytest.fixture(scope="session")
def console_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """hotline-dk and hotline-nl running (police-dk has a profile, no process)."""
    with running_network(
        tmp_path_factory.mktemp("console") / "net", small_members(DK, NL)
    ) as network:
        yield network


@pytest.fixture(scope="session")
def console(
    console_net: Network, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningConsole]:
    """The console of hotline-dk, with one account per role."""
    users = tmp_path_factory.mktemp("console-users") / "users.sqlite"
    for name, role in ACCOUNTS.items():
        add_account(console_net, users, name, role)
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *HFED,
            "--devnet",
            str(console_net.directory),
            "--member",
            DK,
            "--users",
            str(users),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(),
    )
    try:
        _wait_up(url, process)
        yield RunningConsole(url, users, console_net)
    finally:
        process.terminate()
        if not wait_exited(process.pid, 15):
            process.kill()
        process.wait(timeout=15)
