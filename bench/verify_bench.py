#!/usr/bin/env python3
"""Ed25519 verification speed: PyNaCl (libsodium) vs cryptography (OpenSSL).

Justifies the hot-path choice in crypto/keys.py. Prints verifies per second
for each library on one thread and on two threads, and the ratio.

    python bench/verify_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import nacl.signing
from cryptography.hazmat.primitives.asymmetric import ed25519

MESSAGE = os.urandom(400)  # about the size of a report's DSSE encoding


def nacl_verifier() -> Callable[[], None]:
    """One PyNaCl verification of MESSAGE per call."""
    key = nacl.signing.SigningKey.generate()
    signature = key.sign(MESSAGE).signature
    verify_key = key.verify_key

    def verify() -> None:
        verify_key.verify(MESSAGE, signature)

    return verify


def cryptography_verifier() -> Callable[[], None]:
    """One `cryptography` verification of MESSAGE per call."""
    key = ed25519.Ed25519PrivateKey.generate()
    signature = key.sign(MESSAGE)
    public = key.public_key()
    return lambda: public.verify(signature, MESSAGE)


def rate(fn: Callable[[], None], seconds: float, threads: int) -> float:
    """Verifications per second over ``seconds`` with ``threads`` threads."""
    deadline = time.perf_counter() + seconds

    def work() -> int:
        count = 0
        while time.perf_counter() < deadline:
            for _ in range(100):
                fn()
            count += 100
        return count

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: work(), range(threads)))
    return total / (time.perf_counter() - start)


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"{'library':<14}{'threads':>8}{'verifies/s':>14}")
    results = {}
    for name, make in (("pynacl", nacl_verifier), ("cryptography", cryptography_verifier)):
        for threads in (1, 2):
            results[name, threads] = rate(make(), args.seconds, threads)
            print(f"{name:<14}{threads:>8}{results[name, threads]:>14,.0f}")
    for threads in (1, 2):
        ratio = results["pynacl", threads] / results["cryptography", threads]
        print(f"ratio pynacl/cryptography, {threads} thread(s): {ratio:.2f}x")


if __name__ == "__main__":
    main()
