"""Size and count limits, documented in one place (see the .proto comments)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

#: The largest integer every storage backend holds (a signed 64-bit column):
#: the upper end of every uint64 field this node stores (sequences, roster
#: versions, event cursors).
MAX_STORED_INT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits a node enforces on what it receives.

    The protocol fixes the per-call and per-field limits; the envelope payload
    cap is this implementation's choice (a maximal report is under 30 KiB).
    """

    #: Items in one Deliver call (protocol: 1000).
    max_batch_items: int = 1000
    #: Encoded size of one Deliver request (protocol: 8 MiB).
    max_batch_bytes: int = 8 * 1024 * 1024
    #: Signed payload bytes of one envelope.
    max_payload_bytes: int = 64 * 1024
    #: Length of payload_type.
    max_payload_type_bytes: int = 64
    #: Characters of Report.url (protocol: 4096).
    max_url_chars: int = 4096
    #: Hashes in one report (protocol: 32).
    max_hashes: int = 32
    #: Characters of Report.site_type (protocol: 64).
    max_site_type_chars: int = 64
    #: Characters of Report.analyst_note and StatusUpdate.note (protocol: 2000).
    max_note_chars: int = 2000
    #: Entries in ForwardedItem.via_member_ids (protocol: 4).
    max_via_entries: int = 4
    #: Signed MOVED updates in ForwardedItem.moved_by (a hand-over chain).
    max_move_chain: int = 8
    #: Receipts in ForwardedItem.joined_receipts.
    max_joined_receipts: int = 100
    #: How far in the receiver's future an item's timestamp may be (protocol: 5 min).
    max_clock_skew: timedelta = timedelta(minutes=5)


DEFAULT_LIMITS = Limits()
