"""Exception hierarchy for the ``crypto`` package.

Callers catch :class:`CryptoError` to handle every failure raised here; the
subclasses let them tell a malformed key apart from a failed signature check.
"""

from __future__ import annotations

__all__ = [
    "CertificateError",
    "CryptoError",
    "KeyFormatError",
    "SignatureError",
    "ThresholdError",
]


class CryptoError(Exception):
    """Base class for all errors raised by the ``crypto`` package."""


class KeyFormatError(CryptoError):
    """A key (raw, hex or PEM) is malformed or of the wrong algorithm."""


class SignatureError(CryptoError):
    """A signature is missing, malformed or does not verify."""


class ThresholdError(CryptoError):
    """A trust anchor is invalid or a k-of-n signature threshold is not met."""


class CertificateError(CryptoError):
    """A certificate or CA input is malformed or unsuitable."""
