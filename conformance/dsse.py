"""DSSE pre-authentication encoding and signed envelopes (HFP v1 section 2).

Written independently of the node: a second implementation of the same few
lines is exactly what catches an encoding mistake in either of them.
"""

from __future__ import annotations

from conformance.keys import Ed25519Key, verify
from hfp.v1 import envelope_pb2

REPORT_TYPE = "hfp.v1.Report"
STATUS_UPDATE_TYPE = "hfp.v1.StatusUpdate"
RECEIPT_TYPE = "hfp.v1.Receipt"
ROSTER_TYPE = "hfp.v1.Roster"


def pae(payload_type: str, payload: bytes) -> bytes:
    """``"DSSEv1" SP len(type) SP type SP len(payload) SP payload``.

    Lengths are the ASCII decimal byte counts; the type is UTF-8.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"".join(
        (
            b"DSSEv1 ",
            str(len(type_bytes)).encode("ascii"),
            b" ",
            type_bytes,
            b" ",
            str(len(payload)).encode("ascii"),
            b" ",
            payload,
        )
    )


def sign_envelope(
    key: Ed25519Key,
    signer_member_id: str,
    payload_type: str,
    payload: bytes,
    *,
    key_id: str | None = None,
    signed_type: str | None = None,
) -> envelope_pb2.SignedEnvelope:
    """A SignedEnvelope over ``payload``.

    ``key_id`` overrides the id written into the envelope and ``signed_type``
    the type fed into the PAE, so that cases can build deliberately wrong
    envelopes with the same code as right ones.
    """
    message = pae(signed_type if signed_type is not None else payload_type, payload)
    return envelope_pb2.SignedEnvelope(
        payload=payload,
        payload_type=payload_type,
        signer_member_id=signer_member_id,
        key_id=key.key_id if key_id is None else key_id,
        signature=key.sign(message),
    )


def verify_envelope(envelope: envelope_pb2.SignedEnvelope, public_key: bytes) -> bool:
    """True when the envelope's signature verifies over its PAE with ``public_key``."""
    return verify(public_key, pae(envelope.payload_type, envelope.payload), envelope.signature)
