"""The node process: configuration, and the composition root.

``compose`` builds the node's parts (storage, trust, outbound peers, the
application services, client capacity); ``server`` puts them behind a gRPC
server and stops them in order. The only package that wires ``peers`` and
the application packages to ``api``.
"""
