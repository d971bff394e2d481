"""Fixtures for the operator commands: a network formed by separate parties."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # make `tests.operations` importable however pytest is run
    sys.path.insert(0, str(ROOT))
