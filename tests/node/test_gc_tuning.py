"""The node's process entry point tunes Python's cycle collector (server.tune_gc)."""

from __future__ import annotations

import subprocess
import sys

from federation.node.server import GC_THRESHOLDS

PROBE = """
import gc
from federation.node.server import tune_gc
before = gc.get_freeze_count()
tune_gc()
print(before, gc.get_freeze_count(), *gc.get_threshold())
"""


def test_tune_gc_freezes_what_is_loaded_and_sets_the_thresholds() -> None:
    # In a fresh interpreter: freezing is for a node's own process, never the test run's.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    before, after, *thresholds = (int(x) for x in out)
    assert before == 0
    assert after > 10_000  # gRPC, protobuf, SQLAlchemy... all out of later collections
    assert tuple(thresholds) == GC_THRESHOLDS
