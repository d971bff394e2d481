"""Trust: which members and keys this node believes in, and how it keeps that current.

Owns the roster holder (threshold verification against the pinned root keys,
installation, persistence, former keys for replays) and the roster sync
policy (push on install, pull on a timer).

May use: ``core``, ``store``, ``wire`` (roster payload decoding), ``runtime``,
``crypto``. Talking to peers is left to ``peers``; serving rosters to
``api``.
"""
