"""``hfed devnet console``: the analysts' console of one test-network member.

Runs ``hfed console --devnet DIR --member ID`` as a detached process (like the
nodes, so it outlives the command and ``devnet down`` stops it), with a demo
account whose random password is written to a 0600 file in the network
directory. The demo network's secrets all live in that directory already, so
one more there changes nothing about who can read what; a real hotline adds
its accounts with ``hfed console user add``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from federation.console.users import Role, UserError, UserStore
from federation.devnet.create import LOOPBACK, free_ports
from federation.devnet.manifest import Manifest
from federation.devnet.processes import DevnetError, alive, wait_or_kill

#: The demo account: a supervisor, so every page but user management opens.
DEMO_USER = "demo"
PREFERRED_PORT = 8080
STATE_FILE = "console.json"
LOGIN_FILE = "console-login.txt"
STOP_GRACE = 10.0


@dataclass(frozen=True)
class ConsoleInfo:
    """Where the running console is and how to log in."""

    member_id: str
    url: str
    pid: int
    user: str
    password: str
    password_file: Path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _saved_password(login: Path) -> str | None:
    try:
        lines = login.read_text().splitlines()
    except FileNotFoundError:
        return None
    return lines[1].removeprefix("password: ") if len(lines) > 1 else None


def _demo_password(directory: Path, users: Path) -> str:
    """The demo account's password: made once, kept in a 0600 file; the account
    is (re)created in ``users`` when it is missing there."""
    login = directory / LOGIN_FILE
    password = _saved_password(login)
    if password is None:
        password = secrets.token_urlsafe(18)
        fd = os.open(login, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"user: {DEMO_USER}\npassword: {password}\n")
    store = UserStore(users)
    try:
        if not any(u.name == DEMO_USER for u in store.users()):
            store.add(DEMO_USER, Role.SUPERVISOR, password)
    except UserError as exc:
        raise DevnetError(f"cannot create the demo account: {exc}") from exc
    finally:
        store.close()
    return password


def running(directory: Path) -> ConsoleInfo | None:
    """The console started for this network, if its process is alive."""
    directory = directory.resolve()
    try:
        state = json.loads((directory / STATE_FILE).read_text())
        pid = int(state["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    if b"console" not in cmdline or str(directory).encode() not in cmdline:
        return None  # the pid was reused by something else
    login = directory / LOGIN_FILE
    return ConsoleInfo(
        state["member"], state["url"], pid, DEMO_USER, _saved_password(login) or "?", login
    )


def _wait_up(url: str, pid: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise DevnetError("the console exited:\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(url + "login", timeout=2.0):  # noqa: S310 (loopback)
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise DevnetError(f"the console did not answer at {url} within {timeout:.0f}s")


def start(directory: Path, member: str, timeout: float = 30.0) -> ConsoleInfo:
    """Start the console for ``member`` (once); return where it is and the login."""
    directory = directory.resolve()
    already = running(directory)
    if already is not None:
        return already
    if member not in Manifest.load(directory).nodes():
        raise DevnetError(f"{member} is not a node of this network")
    users = directory / "members" / member / "console-users.sqlite"
    password = _demo_password(directory, users)
    port = PREFERRED_PORT if _port_free(PREFERRED_PORT) else free_ports(1)[0]
    url = f"http://{LOOPBACK}:{port}/"
    log = directory / "console.log"
    command = [
        sys.executable, "-m", "federation.cli.main", "console",
        "--devnet", str(directory), "--member", member,
        "--users", str(users), "--listen", f"{LOOPBACK}:{port}",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI; stopped by `devnet down`
        )
    state = {"pid": process.pid, "member": member, "url": url}
    (directory / STATE_FILE).write_text(json.dumps(state) + "\n")
    _wait_up(url, process.pid, log, timeout)
    return ConsoleInfo(member, url, process.pid, DEMO_USER, password, directory / LOGIN_FILE)


def stop(directory: Path) -> bool:
    """Stop the network's console if it runs (SIGTERM, then SIGKILL); True if it did."""
    directory = directory.resolve()
    info = running(directory)
    (directory / STATE_FILE).unlink(missing_ok=True)
    if info is None:
        return False
    os.kill(info.pid, signal.SIGTERM)
    wait_or_kill(info.pid, time.monotonic() + STOP_GRACE)
    return True
