"""API: the gRPC adapters of the node's three services.

Owns the servicers (FederationService for peers, HotlineService for the
node's own operator and analysts, LiaisonService for police), caller
authentication from the mutual-TLS certificate, admission control (per
caller limits, a separate lane for clients), request decoding and the one
translation of domain errors into gRPC status.

May use: the application packages (``intake``, ``trust``, ``cases``,
``status``, ``liaison``), ``core``, ``wire``, ``runtime`` and generated code.
Never ``store``: every read and write goes through an application package.
"""
