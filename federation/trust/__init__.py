"""Trust: which members and keys this node believes in, and how it keeps that current.

Owns the roster holder (threshold verification against the pinned root keys,
installation, persistence, former keys for replays) and the roster sync
policy (push on install, pull on a timer).

May use: ``core``, ``store``, ``wire`` (roster payload decoding), ``runtime``,
``crypto``. Never grpc or generated code: the calls to peers are made by a
``RosterPeers`` client the node gives roster sync (``peers.roster_client``);
serving rosters is left to ``api``.
"""

from federation.trust.holder import (
    InstalledRoster,
    RosterHolder,
    RosterRejectedError,
    serialize_signed_roster,
    signed_by_member,
    verify_signed_roster,
)
from federation.trust.sync import RosterCallError, RosterPeers, RosterSync

__all__ = [
    "InstalledRoster",
    "RosterCallError",
    "RosterHolder",
    "RosterPeers",
    "RosterRejectedError",
    "RosterSync",
    "serialize_signed_roster",
    "signed_by_member",
    "verify_signed_roster",
]
