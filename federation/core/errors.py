"""The node's domain errors: a short tree, and the reasons they name.

Three roots, all plain Python:

* ``HfedError``: a refusal a caller may be told about. Its class says what
  kind of refusal it is (the API layer, ``federation.api.errors``, alone turns
  the class into a gRPC code); each instance carries a ``reason`` (one of the
  UPPER_SNAKE constants below, sent as ``google.rpc.ErrorInfo.reason``) and a
  ``public_message`` safe to send. Anything internal goes to the log only.
* ``SetupError``: the node cannot start (configuration, database schema);
  for the operator, never for a caller.
* ``PeerError``: a peer's answer to one of our outbound calls that we cannot
  use (a bad receipt, a failed roster call); it goes to our log and the
  peer's backoff, never to a caller.

::

    HfedError
    ├── UnauthenticatedError
    ├── PermissionDeniedError
    ├── InvalidArgumentError          (``field``: the request field at fault)
    │   ├── UrlError                  core/canonical_url.py
    │   ├── RosterError               core/roster.py
    │   │   └── RosterRejectedError   trust/holder.py
    │   └── MalformedMessageError     wire/errors.py
    │       └── EmbeddedMediaError
    ├── NotFoundError
    ├── FailedPreconditionError
    │   └── RosterExpiredError
    ├── ResourceExhaustedError
    │   └── AdmissionRefusedError     api/admission.py
    └── UnavailableError
        └── NoSigningKeyError       intake/identity.py
    SetupError
    ├── ConfigError                   node/config.py
    └── SchemaError                   store/migrate.py
    PeerError
    ├── BadReceiptError               peers/receipts.py
    └── RosterCallError               trust/sync.py

Storage failures stay in SQLAlchemy's own tree (``OperationalError``, with
``store.database.WriterBusyError`` below it); the API layer maps them to
UNAVAILABLE.

``crypto`` keeps its own ``CryptoError`` root (it is a package of its own).
The table of reasons and the codes they go out with is in the module
docstring of ``federation.api.errors``.
"""

from __future__ import annotations

from typing import Final

# --- reasons (google.rpc.ErrorInfo.reason) --------------------------------------
# Who is calling
NO_MEMBER_IDENTITY: Final = "NO_MEMBER_IDENTITY"
UNKNOWN_MEMBER: Final = "UNKNOWN_MEMBER"
ROLE_NOT_ALLOWED: Final = "ROLE_NOT_ALLOWED"
NOT_OPERATOR: Final = "NOT_OPERATOR"
OUTSIDE_JURISDICTION: Final = "OUTSIDE_JURISDICTION"
# What the request holds
UNDECODABLE_REQUEST: Final = "UNDECODABLE_REQUEST"
MALFORMED_MESSAGE: Final = "MALFORMED_MESSAGE"
EMBEDDED_MEDIA: Final = "EMBEDDED_MEDIA"
REQUIRED_FIELD: Final = "REQUIRED_FIELD"
INVALID_TIMESTAMP: Final = "INVALID_TIMESTAMP"
UNKNOWN_ENUM_VALUE: Final = "UNKNOWN_ENUM_VALUE"
BAD_PAGE_TOKEN: Final = "BAD_PAGE_TOKEN"  # noqa: S105 (a reason, not a secret)
BAD_PAGE_SIZE: Final = "BAD_PAGE_SIZE"
BAD_CURSOR: Final = "BAD_CURSOR"
INVALID_URL: Final = "INVALID_URL"
INVALID_COUNTRY: Final = "INVALID_COUNTRY"
INVALID_REPORT: Final = "INVALID_REPORT"
FOREIGN_ORIGIN: Final = "FOREIGN_ORIGIN"
BAD_ANALYST_NAME: Final = "BAD_ANALYST_NAME"
TEXT_LENGTH: Final = "TEXT_LENGTH"
BAD_HOLD_UNTIL: Final = "BAD_HOLD_UNTIL"
MOVED_NEEDS_COUNTRY: Final = "MOVED_NEEDS_COUNTRY"
INVALID_ROSTER: Final = "INVALID_ROSTER"
ROSTER_NOT_TRUSTED: Final = "ROSTER_NOT_TRUSTED"
ROSTER_OFFER_EXPIRED: Final = "ROSTER_OFFER_EXPIRED"
# What the node holds
UNKNOWN_CASE: Final = "UNKNOWN_CASE"
ILLEGAL_TRANSITION: Final = "ILLEGAL_TRANSITION"
HOLD_ACTIVE: Final = "HOLD_ACTIVE"
NO_ACTIVE_HOLD: Final = "NO_ACTIVE_HOLD"
TOO_LATE_FOR_HOLD: Final = "TOO_LATE_FOR_HOLD"
NOTHING_TO_MOVE: Final = "NOTHING_TO_MOVE"
CURSOR_AHEAD: Final = "CURSOR_AHEAD"
ROSTER_EXPIRED: Final = "ROSTER_EXPIRED"
ROSTER_NOT_NEWER: Final = "ROSTER_NOT_NEWER"
# Limits and availability (admission's own reasons: api/admission.py Limit)
BATCH_TOO_MANY_ITEMS: Final = "BATCH_TOO_MANY_ITEMS"
BATCH_TOO_LARGE: Final = "BATCH_TOO_LARGE"
SHUTTING_DOWN: Final = "SHUTTING_DOWN"
STORAGE_UNAVAILABLE: Final = "STORAGE_UNAVAILABLE"
NO_SIGNING_KEY: Final = "NO_SIGNING_KEY"
#: The catch-all: a bug, never a refusal; its message is fixed.
INTERNAL: Final = "INTERNAL"


class HfedError(Exception):
    """Base of every error the node reports to a caller."""

    #: Seconds after which the same call would succeed, when known.
    retry_after: float | None = None

    def __init__(self, reason: str, public_message: str) -> None:
        super().__init__(public_message)
        self.reason = reason
        self.public_message = public_message

    def metadata(self) -> dict[str, str]:
        """Facts beside the reason a caller may act on (ErrorInfo metadata)."""
        return {}


class UnauthenticatedError(HfedError):
    """No client certificate, or one that maps to no roster member."""


class PermissionDeniedError(HfedError):
    """The caller's role or standing may not do this."""


class InvalidArgumentError(HfedError):
    """A malformed request; ``field`` names the request field at fault when known
    (a dotted path from the request message, e.g. ``report.url``)."""

    def __init__(self, reason: str, public_message: str, *, field: str = "") -> None:
        super().__init__(reason, public_message)
        self.field = field


class NotFoundError(HfedError):
    """No such object, or one the caller may not see."""


class FailedPreconditionError(HfedError):
    """The request is valid but the node's state forbids it now."""


class RosterExpiredError(FailedPreconditionError):
    """The node's roster has expired: it refuses new items until a fresh one."""

    def __init__(self, public_message: str) -> None:
        super().__init__(ROSTER_EXPIRED, public_message)


class ResourceExhaustedError(HfedError):
    """A size or rate limit was exceeded."""


class UnavailableError(HfedError):
    """Shutting down or storage unavailable; safe to retry."""


class SetupError(Exception):
    """The node cannot start as configured; the message is for its operator."""


class PeerError(Exception):
    """A peer's answer to our outbound call that we cannot use (log and back off)."""
