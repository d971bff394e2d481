"""``hfed devnet console`` (what ``make demo`` runs last): a console beside the
demo network's hotline-dk, a demo login that works, stopped by ``devnet down``."""

from __future__ import annotations

import http.cookiejar
import os
import re
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.console.conftest import DK, NL
from tests.support.net import running_network, small_members, wait_exited

HFED = [sys.executable, "-m", "federation.cli.main"]


def _hfed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFED_")}
    return subprocess.run(
        [*HFED, *args], capture_output=True, text=True, timeout=90, env=env, check=False
    )


def _log_in(url: str, user: str, password: str) -> str:
    """Log in over plain HTTP as a browser would; the inbox page's HTML."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(url + "login", timeout=10) as page:
        match = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    assert match, "the login page carries a CSRF token"
    form = {"csrf": match.group(1), "name": user, "password": password}
    body = urllib.parse.urlencode(form).encode()
    with opener.open(url + "login", data=body, timeout=10) as inbox:
        assert inbox.url.endswith("/inbox"), inbox.url
        return str(inbox.read().decode())


def test_devnet_console_starts_with_a_demo_login_and_stops_with_the_network(
    tmp_path: Path,
) -> None:
    with running_network(tmp_path / "net", small_members(DK, NL)) as net:
        started = _hfed("devnet", "console", str(net.directory))
        assert started.returncode == 0, started.stderr
        address = re.search(r"(http://127\.0\.0\.1:\d+/)", started.stdout)
        password = re.search(r"log in as demo / (\S+)", started.stdout)
        assert address and password, started.stdout

        login_file = net.directory / "console-login.txt"
        assert stat.S_IMODE(login_file.stat().st_mode) == 0o600
        assert password.group(1) in login_file.read_text()
        assert "Inbox" in _log_in(address.group(1), "demo", password.group(1))

        again = _hfed("devnet", "console", str(net.directory))
        assert again.returncode == 0 and address.group(1) in again.stdout  # one console
        pid = int(re.search(r"pid (\d+)", again.stdout).group(1))  # type: ignore[union-attr]

        stopped = _hfed("devnet", "down", str(net.directory))
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped the console" in stopped.stdout
        assert wait_exited(pid, 15)
        with pytest.raises(OSError):
            urllib.request.urlopen(address.group(1) + "login", timeout=2)
