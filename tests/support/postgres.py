"""A throwaway PostgreSQL cluster on loopback for tests.

Uses the server binaries of Debian's ``postgresql`` package
(/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so
when the tests run as root the cluster is created and run as the
``postgres`` user, in a directory it owns. The cluster listens on a free
port on 127.0.0.1 only (and a Unix socket in its own directory), trusts
local connections, and is removed when stopped. Every wait is bounded.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

START_TIMEOUT = 60.0
COMMAND_TIMEOUT = 120.0


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server binaries (or no way to run them) on this machine."""


def find_bindir() -> Path | None:
    """The newest installed server binary directory, if any."""
    found = []
    for pg_ctl in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        version = Path(pg_ctl).parent.parent.name
        if version.isdigit():
            found.append((int(version), Path(pg_ctl).parent))
    if found:
        return max(found)[1]
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One running cluster; ``url(name)`` for its databases."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="hfed-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._started = False

    # --- lifecycle -------------------------------------------------------

    def _run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def start(self) -> None:
        """initdb and pg_ctl start; waits (bounded) until the server accepts connections."""
        if self.as_postgres:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailableError("running as root but no 'postgres' user") from exc
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.root.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        # fsync off: a throwaway cluster needs no crash safety, and creating
        # a database per test is much faster without it.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        )
        self._started = True
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server and remove its files."""
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            self._started = False
            shutil.rmtree(self.root, ignore_errors=True)

    # --- databases -------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database (psycopg 3, TCP on loopback)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement in autocommit mode (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            conn.execute(sql.encode())

    def create_database(self, prefix: str = "t", template: str | None = None) -> str:
        """A new empty (or template-cloned) database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        clause = f" TEMPLATE {template}" if template else ""
        self.execute(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database`` (closing its connections)."""
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster() -> PostgresCluster:
    """A running throwaway cluster, or PostgresUnavailableError."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailableError(
            "PostgreSQL server binaries not found (apt-get install -y postgresql)"
        )
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
