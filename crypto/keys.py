"""Ed25519 signing keys, key ids and signature verification.

PyNaCl (libsodium) does the signing and verifying because it is the hot path;
``cryptography`` is used only to read and write PKCS#8 PEM files and to hand
keys to its X.509 code.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import os
from pathlib import Path
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from crypto.errors import KeyFormatError
from crypto.files import write_private

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "key_id_for",
    "public_key_from_hex",
    "verify_signature",
]

PUBLIC_KEY_SIZE: Final = 32
SEED_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

# A node verifies against a handful of member and root keys; a small cache
# avoids rebuilding VerifyKey objects per message without growing unbounded
# when a peer sends many distinct (bogus) keys.
_VERIFY_KEY_CACHE_SIZE: Final = 256


def key_id_for(raw_public_key: bytes) -> str:
    """Return the key id: lower-case hex SHA-256 of the 32 raw public key bytes.

    Raises:
        KeyFormatError: if ``raw_public_key`` is not exactly 32 bytes.
    """
    if not isinstance(raw_public_key, bytes) or len(raw_public_key) != PUBLIC_KEY_SIZE:
        raise KeyFormatError(f"an Ed25519 public key must be {PUBLIC_KEY_SIZE} raw bytes")
    return hashlib.sha256(raw_public_key).hexdigest()


def public_key_from_hex(text: str) -> bytes:
    """Decode a 64-character hex string into a 32-byte raw public key.

    Raises:
        KeyFormatError: if ``text`` is not exactly 64 hex characters.
    """
    if not isinstance(text, str) or len(text) != 2 * PUBLIC_KEY_SIZE:
        raise KeyFormatError(f"a public key in hex must be {2 * PUBLIC_KEY_SIZE} characters")
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("public key is not valid hex") from exc


class SigningKey:
    """An Ed25519 private key, held as its 32-byte seed inside PyNaCl."""

    __slots__ = ("_key_id", "_nacl", "_public_key", "_secret")

    def __init__(self, seed: bytes) -> None:
        """Create a key from a 32-byte seed.

        Raises:
            KeyFormatError: if ``seed`` is not exactly 32 bytes.
        """
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise KeyFormatError(f"an Ed25519 seed must be {SEED_SIZE} bytes")
        self._nacl = nacl.signing.SigningKey(seed)
        # The public key and id never change; computing them once keeps the
        # properties free on the hot path.
        self._public_key: bytes = bytes(self._nacl.verify_key)
        # libsodium's 64-byte secret key, for signing through the bindings:
        # SigningKey.sign wraps each result in a SignedMessage, a third of
        # the cost of a signature spent in Python holding the GIL.
        self._secret = nacl.bindings.crypto_sign_seed_keypair(seed)[1]
        self._key_id: str = key_id_for(self._public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        """Create a new key from the operating system's CSPRNG."""
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM ("PRIVATE KEY") Ed25519 key.

        Raises:
            KeyFormatError: if the PEM is unparsable, encrypted, or not Ed25519.
        """
        private_key = _load_pem_private_key(data)
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise KeyFormatError(
                f"expected an Ed25519 private key, got {type(private_key).__name__}"
            )
        return cls(private_key.private_bytes_raw())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a PEM key file written by :meth:`save` (or by OpenSSL)."""
        return cls.from_pem(Path(path).read_bytes())

    def to_pem(self) -> bytes:
        """Encode the key as unencrypted PKCS#8 PEM."""
        return self.to_cryptography().private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key as PEM to ``path`` atomically with mode 0o600."""
        write_private(path, self.to_pem())

    def to_cryptography(self) -> ed25519.Ed25519PrivateKey:
        """Return the same key as a ``cryptography`` object (for X.509 code)."""
        return ed25519.Ed25519PrivateKey.from_private_bytes(self._nacl.encode())

    @property
    def public_key(self) -> bytes:
        """The 32 raw bytes of the Ed25519 public key."""
        return self._public_key

    @property
    def key_id(self) -> str:
        """The key id (hex SHA-256 of :attr:`public_key`)."""
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached Ed25519 signature of ``message``."""
        return nacl.bindings.crypto_sign(message, self._secret)[:SIGNATURE_SIZE]

    def __repr__(self) -> str:
        # Never include the seed: reprs end up in logs and tracebacks.
        return f"SigningKey(key_id={self._key_id!r})"


def _load_pem_private_key(data: bytes) -> object:
    """Parse a PEM private key, mapping every failure to KeyFormatError."""
    if b"ENCRYPTED PRIVATE KEY" in data:
        raise KeyFormatError("encrypted private keys are not supported; use unencrypted PKCS#8")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"cannot parse PEM private key: {exc}") from exc


@functools.lru_cache(maxsize=_VERIFY_KEY_CACHE_SIZE)
def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey | None:
    """Build (and cache) a VerifyKey; None when the bytes cannot be a key."""
    try:
        return nacl.signing.VerifyKey(public_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Check a detached Ed25519 signature; never raises.

    Returns False for a bad signature, a signature that is not 64 bytes, or a
    public key that is not 32 bytes or not a valid curve point (libsodium
    rejects invalid and small-order points during verification).
    """
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        return False
    verify_key = _verify_key(public_key)
    if verify_key is None:
        return False
    try:
        verify_key.verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        # BadSignatureError is a CryptoError; ValueError/TypeError cover a
        # message of the wrong type. The contract is a boolean, never a raise.
        return False
    return True
