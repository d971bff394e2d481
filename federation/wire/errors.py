"""Errors raised while decoding wire messages (part of the tree in ``core/errors.py``)."""

from __future__ import annotations

from federation.core.errors import EMBEDDED_MEDIA, MALFORMED_MESSAGE, InvalidArgumentError


class MalformedMessageError(InvalidArgumentError):
    """Bytes that do not decode to a valid message; the text is public-safe.

    ``field`` names the field at fault within the decoded message, when known.
    """

    def __init__(
        self, public_message: str, *, field: str = "", reason: str = MALFORMED_MESSAGE
    ) -> None:
        super().__init__(reason, public_message, field=field)


class EmbeddedMediaError(MalformedMessageError):
    """A message carries a bytes blob that can only be media."""

    def __init__(self, public_message: str, *, field: str = "") -> None:
        super().__init__(public_message, field=field, reason=EMBEDDED_MEDIA)
