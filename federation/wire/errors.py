"""Errors raised while decoding wire messages."""

from __future__ import annotations


class MalformedMessageError(ValueError):
    """Bytes that do not decode to a valid message; the text is public-safe."""


class EmbeddedMediaError(MalformedMessageError):
    """A message carries a bytes blob that can only be media."""
