"""The README's demo command tells its story on a fresh network without error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.net import running_network


def test_devnet_demo_story(tmp_path: Path) -> None:
    with running_network(tmp_path / "net") as net:
        result = subprocess.run(
            [sys.executable, "-m", "federation.cli.main", "devnet", "demo", str(net.directory)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "joins case" in out and "acknowledged with reference" in out
    assert out.count("CONTENT_REMOVED (signatures verified)") == 2
    assert "1 case(s) removed" in out
