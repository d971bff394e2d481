"""Forming and operating a network: membership requests, the roster source,
the root signing ceremony and the trust file, as separate parties do them.

Every party makes its own secrets; only public material (requests, CSRs,
certificates, detached root signatures, rosters, ``trust.toml``) travels
between them. The ``hfed`` commands of ``federation.cli.network`` and the
test network (``federation.devnet``) are built on these pieces.

May use: ``core``, ``wire``, ``crypto``. Never the node's storage or gRPC.
"""

from federation.network.errors import OperationsError

__all__ = ["OperationsError"]
