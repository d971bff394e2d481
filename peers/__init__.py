"""Outbound side: what this node sends to its peers, and nothing else.

Owns the channels to peer nodes, the outbox sender (one worker per peer,
persisted backoff, receipts verified before an item counts as delivered)
and the roster calls (GetRoster, PublishRoster) that ``federation.trust``'s
roster sync makes through :class:`peers.roster_client.RosterClient`.

May use: ``federation.core``, ``federation.store``, ``federation.wire``,
``federation.runtime`` and the application packages' public names (what
their ``__all__`` lists, imported from the package), ``crypto``, grpc and
generated code, never ``federation.api``. Within ``federation`` only
``node`` (the composition root) and the command-line clients in ``cli``
(channels, backoff) import ``peers``.
"""
