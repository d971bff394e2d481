"""Call metadata both ends of a call agree on (the server reads, clients send)."""

from __future__ import annotations

from federation.core.ids import MemberId

#: Metadata key naming the caller when the node runs in insecure plaintext
#: development mode (there is no certificate to read then).
DEV_MEMBER_METADATA = "x-hfed-dev-member"


def dev_metadata(member_id: MemberId) -> tuple[tuple[str, str], ...]:
    """Call metadata naming the caller to a node in insecure development mode."""
    return ((DEV_MEMBER_METADATA, member_id),)
