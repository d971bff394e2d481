"""Node: the composition root.

Reads the node's configuration and builds the running node from the other
packages (storage, trust, application services, API servicers, outbound
peers, background threads, metrics); the only package that wires them
together and the only one of the node that may use ``peers``.

``compose`` builds the parts (the foundation, outbound peers, the
application services, client capacity); ``server`` puts them behind a gRPC
server and stops them in order.
"""
