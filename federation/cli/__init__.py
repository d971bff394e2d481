"""The ``hfed`` command line: operators', analysts' and police liaisons' commands.

A client: analyst and liaison commands call a node's gRPC API; operator
commands (``db``, ``outbox``, ``audit``) open the node's own database through
its configuration. May use anything of the node; nothing imports ``cli``.
"""
