"""Cryptography for the Hotline Federation Protocol.

Ed25519 signing keys, DSSE envelopes, k-of-n root signatures over rosters and
the network's X.509 CA. Pure functions: no network, no protobuf, and no I/O
apart from reading and writing key files.
"""

from __future__ import annotations

from crypto.dsse import Envelope, pae, sign_envelope, verify_envelope_signature, verify_many
from crypto.errors import (
    CertificateError,
    CryptoError,
    KeyFormatError,
    SignatureError,
    ThresholdError,
)
from crypto.keys import SigningKey, key_id_for, public_key_from_hex, verify_signature
from crypto.threshold import (
    ROSTER_PAYLOAD_TYPE,
    RootSignature,
    ThresholdResult,
    TrustAnchor,
    check_root_signatures,
    require_threshold,
    sign_roster_bytes,
)

__all__ = [
    "ROSTER_PAYLOAD_TYPE",
    "CertificateError",
    "CryptoError",
    "Envelope",
    "KeyFormatError",
    "RootSignature",
    "SignatureError",
    "SigningKey",
    "ThresholdError",
    "ThresholdResult",
    "TrustAnchor",
    "check_root_signatures",
    "key_id_for",
    "pae",
    "public_key_from_hex",
    "require_threshold",
    "sign_envelope",
    "sign_roster_bytes",
    "verify_envelope_signature",
    "verify_many",
    "verify_signature",
]
