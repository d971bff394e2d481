"""The systemd unit (deploy/systemd/hfed.service) passes ``systemd-analyze verify``
and carries the hardening and shutdown settings the operations guide promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from federation.node.config import NodeConfig
from peers.outbox import DELIVER_DEADLINE
from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "hfed.service"
INSTALLED_HFED = "/usr/local/bin/hfed"


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if in_ci():
            pytest.fail("CI must verify the systemd unit: systemd-analyze is missing")
        pytest.skip("systemd-analyze is not installed")
    # verify wants the binaries the unit runs to exist: point them at this venv's hfed.
    hfed = Path(sys.executable).with_name("hfed")
    assert hfed.exists(), f"no hfed script beside {sys.executable}"
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(INSTALLED_HFED, str(hfed)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_is_hardened_and_stops_gracefully() -> None:
    s = _settings()
    assert s["ExecStart"] == [f"{INSTALLED_HFED} serve --config /etc/hfed/node.toml"]
    assert s["User"] == ["hfed"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ReadWritePaths": "/var/lib/hfed",
        "CapabilityBoundingSet": "",
        "KillSignal": "SIGTERM",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }.items():
        assert s[key] == [value], key
    assert "@system-service" in s["SystemCallFilter"]
    assert s["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    # Longer than the node's default grace period plus an outbox batch's deadline.
    grace = NodeConfig.model_fields["grace_seconds"].default
    assert int(s["TimeoutStopSec"][0]) >= grace + DELIVER_DEADLINE
