"""gRPC adapters: servicers, caller authentication and the error translator.

Servicers decode requests, ask the application packages (``intake``,
``cases``, ``liaison``, ``trust``) and encode their answers; they reach
storage only through those packages' public names, never ``store``.
"""
