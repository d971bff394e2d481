"""The crypto ceiling: Ed25519 verifies and signs per second per core.

Every accepted item costs at least one signature verification (the item) and
one signature (its receipt). On one core the two take 1/v + 1/s seconds per
item, so one core cannot accept more than 1 / (1/v + 1/s) items per second,
and ``cores`` cores no more than cores / (1/v + 1/s). The node verifies and
signs with PyNaCl (libsodium) on its hot path; `cryptography` (OpenSSL) is
measured beside it for comparison.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import nacl.signing
from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.progress import say
from bench.report import Results
from bench.verify_bench import MESSAGE, cryptography_verifier, nacl_verifier, rate


def _nacl_sign() -> Callable[[], None]:
    key = nacl.signing.SigningKey.generate()

    def sign() -> None:
        key.sign(MESSAGE)

    return sign


def _cryptography_sign() -> Callable[[], None]:
    key = ed25519.Ed25519PrivateKey.generate()

    def sign() -> None:
        key.sign(MESSAGE)

    return sign


#: (figure key, operation factory), each timed on one thread (= one core).
OPERATIONS: tuple[tuple[str, Callable[[], Callable[[], None]]], ...] = (
    ("verify_per_s_core_nacl", nacl_verifier),
    ("sign_per_s_core_nacl", _nacl_sign),
    ("verify_per_s_core_cryptography", cryptography_verifier),
    ("sign_per_s_core_cryptography", _cryptography_sign),
)


def ceiling_items_per_s(verify_rate: float, sign_rate: float, cores: int) -> float:
    """Items per second ``cores`` cores could accept if they did nothing but crypto."""
    return cores / (1 / verify_rate + 1 / sign_rate)


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def measure(results: Results, seconds: float) -> None:
    """Time each operation for ``seconds`` on one thread; record the ceiling."""
    for key, make in OPERATIONS:
        say(f"ceiling: {key} for {seconds:.1f}s")
        results.add(key, rate(make(), seconds, threads=1), "ops/s")
    count = cores()
    results.add("cores", count, "cores")
    verify = results.get("verify_per_s_core_nacl")
    sign = results.get("sign_per_s_core_nacl")
    assert verify is not None and sign is not None
    results.add("ceiling_items_per_s", ceiling_items_per_s(verify, sign, count), "items/s")
