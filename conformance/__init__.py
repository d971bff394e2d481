"""Black-box conformance harness for HFP v1 nodes (``hfed conformance``).

The harness talks to a node only over the wire: it imports the generated
protocol code (``hfp``), gRPC, PyNaCl, ``cryptography`` and ``click``, and
never the node's own packages (``federation``, ``peers``, ``crypto``).
``tests/conformance/test_harness_imports.py`` enforces that.

It plays the test network's ``conformance`` member twice over: as a client of
the node under test, and as a peer node on the endpoint the manifest reserves
for it, so that what the node forwards towards ``XA`` can be observed.
"""

from __future__ import annotations

__all__ = ["HARNESS_VERSION"]

#: Version of the case set; printed in the summary and the JUnit file.
HARNESS_VERSION = "2.0"
