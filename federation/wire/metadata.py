"""Call metadata both ends of a call agree on (the server reads, clients send)."""

from __future__ import annotations

from federation.core.ids import MemberId

#: Metadata key naming the caller when the node runs in insecure plaintext
#: development mode (there is no certificate to read then).
DEV_MEMBER_METADATA = "x-hfed-dev-member"


def dev_metadata(member_id: MemberId) -> tuple[tuple[str, str], ...]:
    """Call metadata naming the caller to a node in insecure development mode."""
    return ((DEV_MEMBER_METADATA, member_id),)


#: Metadata key naming the analyst on whose behalf the node's own operator
#: identity calls HotlineService (the console sends it). The node reads it
#: only from its own member, and records it in the operator audit.
ANALYST_METADATA = "x-hfed-analyst"
#: Longest analyst name the node records (longer ones are refused).
MAX_ANALYST_NAME = 64


def analyst_metadata(name: str) -> tuple[tuple[str, str], ...]:
    """Call metadata naming the analyst who takes the action."""
    return ((ANALYST_METADATA, name),)
