"""Ed25519 keys as the harness needs them: from PKCS#8 PEM files, from fixed seeds.

Signing and verifying use PyNaCl; ``cryptography`` only reads and writes the
PEM files of the test network. A ``key_id`` is the lower-case hex SHA-256 of
the raw 32-byte public key (HFP v1 section 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

#: Prefix of the label-derived seeds (see ``Ed25519Key.from_label``).
SEED_DOMAIN = b"hfp-conformance/v1/seed:"


class KeyFileError(ValueError):
    """A key file that is not an unencrypted PKCS#8 Ed25519 private key."""


def key_id(public_key: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return hashlib.sha256(public_key).hexdigest()


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Ed25519Key:
    """An Ed25519 private key held as its 32-byte seed."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise ValueError("an Ed25519 seed has 32 bytes")

    @classmethod
    def from_label(cls, label: str) -> Ed25519Key:
        """A deterministic key: seed = SHA-256(SEED_DOMAIN || label).

        Used for the fixed test vectors and for the extra keys the harness
        adds to the ``conformance`` member, so every run uses the same ids.
        """
        return cls(hashlib.sha256(SEED_DOMAIN + label.encode()).digest())

    @classmethod
    def from_pem(cls, pem: bytes) -> Ed25519Key:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key."""
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"not an unencrypted PKCS#8 private key: {exc}") from exc
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise KeyFileError("not an Ed25519 private key")
        return cls(private.private_bytes_raw())

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Key:
        """Load a PEM key file (see ``from_pem``)."""
        try:
            return cls.from_pem(path.read_bytes())
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc}") from exc

    def to_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM (test material only)."""
        private = ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> bytes:
        """The 32 raw public key bytes."""
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)

    @property
    def key_id(self) -> str:
        """Lower-case hex SHA-256 of the public key."""
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature (deterministic, RFC 8032)."""
        return bytes(nacl.signing.SigningKey(self.seed).sign(message).signature)
