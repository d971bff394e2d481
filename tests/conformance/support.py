"""Helpers for the harness tests: test networks and harness runs via the ``hfed`` CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KNOWN_FAILURES = ROOT / "tests" / "conformance" / "known-failures.txt"
#: Bounds for the subprocesses (seconds).
DEVNET_TIMEOUT = 120
HARNESS_TIMEOUT = 180


def hfed_command() -> list[str]:
    """The ``hfed`` console script of this environment."""
    beside = Path(sys.executable).with_name("hfed")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("hfed")
    if found is None:
        pytest.skip("the hfed console script is not installed")
    return [found]


def hfed(
    *args: str | Path, timeout: float = DEVNET_TIMEOUT, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``hfed ARGS`` and capture its output."""
    return subprocess.run(
        [*hfed_command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass(frozen=True)
class HarnessRun:
    """The outcome of one ``hfed conformance`` run."""

    returncode: int
    lines: list[str]
    stderr: str

    @property
    def last_line(self) -> str:
        return self.lines[-1] if self.lines else ""

    def status_of(self, case_id: str) -> str:
        """PASS, FAIL, XFAIL, XPASS or SKIP for a case, from its progress line."""
        for line in self.lines:
            status, _, rest = line.partition(" ")
            if rest.startswith(case_id + " "):
                return status
        raise AssertionError(f"no progress line for {case_id}")

    def line_of(self, case_id: str) -> str:
        for line in self.lines:
            if line.partition(" ")[2].startswith(case_id + " "):
                return line
        raise AssertionError(f"no progress line for {case_id}")

    def explain(self) -> str:
        return "\n".join(self.lines[-60:]) + "\n" + self.stderr[-3000:]


def run_harness(network: Path, *args: str | Path) -> HarnessRun:
    """``hfed conformance --network NETWORK ARGS``."""
    done = hfed("conformance", "--network", network, *args, timeout=HARNESS_TIMEOUT)
    return HarnessRun(done.returncode, done.stdout.splitlines(), done.stderr)


@contextmanager
def devnet(
    directory: Path, *, env: Mapping[str, str] | None = None, edit: tuple[str, str] | None = None
) -> Iterator[Path]:
    """``hfed devnet init`` + ``up`` in ``directory``; always ``down`` afterwards.

    ``edit`` = (member, text) appends text to that member's node.toml before start.
    """
    init = hfed("devnet", "init", directory)
    assert init.returncode == 0, init.stdout + init.stderr
    if edit is not None:
        member, text = edit
        config = directory / "members" / member / "node.toml"
        config.write_text(config.read_text() + text)
    try:
        up = hfed("devnet", "up", directory, env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        yield directory
    finally:
        hfed("devnet", "down", directory)
