"""DSSE pre-authentication encoding (PAE) and envelope signing.

Signatures always cover ``pae(payload_type, payload)`` so a signature made for
one payload type can never be replayed as another, and the payload bytes are
verified exactly as received (never re-serialised).
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from crypto.keys import SigningKey, verify_signature

__all__ = [
    "Envelope",
    "VerifyJob",
    "pae",
    "sign_envelope",
    "sign_many",
    "verify_envelope_signature",
    "verify_many",
]

_PAE_PREFIX: Final = b"DSSEv1"
_SP: Final = b" "

# Parallel verification: a few chunks are enough to keep every worker busy;
# tiny chunks would spend more time on scheduling than on libsodium.
_MAX_CHUNKS: Final = 8
_MIN_CHUNK_SIZE: Final = 32

_T = TypeVar("_T")
_R = TypeVar("_R")

VerifyJob = tuple[bytes, bytes, bytes]
"""One verification: (public_key, message, signature)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of a payload.

    ``b"DSSEv1" SP len(type) SP type SP len(payload) SP payload`` with lengths
    as ASCII decimal byte counts and the type encoded as UTF-8.
    """
    type_bytes = payload_type.encode("utf-8")
    return _SP.join(
        (
            _PAE_PREFIX,
            str(len(type_bytes)).encode("ascii"),
            type_bytes,
            str(len(payload)).encode("ascii"),
            payload,
        )
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    """A signed payload: the domain form of the wire ``SignedEnvelope``."""

    payload: bytes
    payload_type: str
    signer_member_id: str
    key_id: str
    signature: bytes


def sign_envelope(
    key: SigningKey, signer_member_id: str, payload_type: str, payload: bytes
) -> Envelope:
    """Sign ``payload`` (via PAE) with ``key`` and wrap it in an :class:`Envelope`."""
    return Envelope(
        payload=payload,
        payload_type=payload_type,
        signer_member_id=signer_member_id,
        key_id=key.key_id,
        signature=key.sign(pae(payload_type, payload)),
    )


def sign_many(
    key: SigningKey,
    signer_member_id: str,
    payload_type: str,
    payloads: Sequence[bytes],
    executor: concurrent.futures.Executor | None = None,
) -> list[Envelope]:
    """Sign many payloads of one type, preserving order.

    Like :func:`verify_many`, large batches are cut into a few chunks signed
    on the executor's threads (libsodium releases the GIL).
    """

    def sign_chunk(chunk: Sequence[bytes]) -> list[Envelope]:
        return [sign_envelope(key, signer_member_id, payload_type, p) for p in chunk]

    return _map_chunks(sign_chunk, payloads, executor)


def verify_envelope_signature(envelope: Envelope, public_key: bytes) -> bool:
    """Return True iff the envelope's signature verifies under ``public_key``.

    Only the signature is checked; whether ``public_key`` belongs to
    ``envelope.signer_member_id`` is the caller's (roster's) decision.
    """
    message = pae(envelope.payload_type, envelope.payload)
    return verify_signature(public_key, message, envelope.signature)


def verify_many(
    jobs: Sequence[VerifyJob],
    executor: concurrent.futures.Executor | None = None,
) -> list[bool]:
    """Verify many (public_key, message, signature) jobs, preserving order.

    With an ``executor`` the jobs are split into a few chunks verified in
    parallel; this scales on threads because libsodium runs without the GIL.
    Batches too small to be worth splitting are verified in the caller.
    """
    return _map_chunks(_verify_chunk, jobs, executor)


def _map_chunks(
    work: Callable[[Sequence[_T]], list[_R]],
    jobs: Sequence[_T],
    executor: concurrent.futures.Executor | None,
) -> list[_R]:
    """Run ``work`` over contiguous chunks of ``jobs`` on ``executor``, in order."""
    chunks = _split(jobs)
    if executor is None or len(chunks) <= 1:
        return work(jobs)
    results: list[_R] = []
    # Executor.map yields in submission order, which keeps results aligned.
    for chunk_result in executor.map(work, chunks):
        results.extend(chunk_result)
    return results


def _split(jobs: Sequence[_T]) -> list[Sequence[_T]]:
    """Cut ``jobs`` into at most _MAX_CHUNKS contiguous, similarly sized slices."""
    wanted = min(_MAX_CHUNKS, math.ceil(len(jobs) / _MIN_CHUNK_SIZE))
    if wanted <= 1:
        return [jobs]
    size = math.ceil(len(jobs) / wanted)
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]


def _verify_chunk(jobs: Sequence[VerifyJob]) -> list[bool]:
    """Verify serially; module-level so a ProcessPoolExecutor can pickle it."""
    return [verify_signature(key, message, signature) for key, message, signature in jobs]
