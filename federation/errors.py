"""The node's error hierarchy. ``federation.api.errors`` maps it to gRPC codes.

Every error carries a public message, safe to send to the caller; anything
internal goes to the log only.
"""

from __future__ import annotations


class HfedError(Exception):
    """Base of every error the node reports to a caller."""

    def __init__(self, public_message: str) -> None:
        super().__init__(public_message)
        self.public_message = public_message


class UnauthenticatedError(HfedError):
    """No client certificate, or one that maps to no roster member."""


class PermissionDeniedError(HfedError):
    """The caller's role may not do this."""


class InvalidArgumentError(HfedError):
    """A malformed request."""


class NotFoundError(HfedError):
    """No such object, or one the caller may not see."""


class FailedPreconditionError(HfedError):
    """The request is valid but the node's state forbids it now."""


class RosterExpiredError(FailedPreconditionError):
    """The node's roster has expired: it refuses new items until a fresh one."""


class ResourceExhaustedError(HfedError):
    """A size or rate limit was exceeded."""


class UnavailableError(HfedError):
    """Shutting down or storage unavailable; safe to retry."""
