"""Synthetic signed reports, pre-signed into serialized Deliver batches.

Everything here happens before any timing starts: reports are built, signed
and serialized to the exact DeliverRequest bytes the client sends, so that
the measured client does nothing but move bytes. Large workloads are signed
in a process pool (spawn start method, one worker per core).

Test data only: URLs on example.test, random SHA-256 and PDQ values.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from crypto.dsse import sign_envelope
from crypto.keys import SigningKey
from federation.core.ids import new_uuid7
from federation.core.reasons import REPORT_TYPE
from federation.core.report import ContentHash, HashAlgorithm, Report
from federation.runtime.clock import utc_now
from federation.wire.convert import encode_report, envelope_to_proto
from hfp.v1 import federation_service_pb2 as fed_pb

#: Below this many items signing in-process beats starting worker processes.
POOL_THRESHOLD = 20_000


@dataclass(frozen=True)
class PlannedItem:
    """One report to sign: where it points and where it is hosted."""

    url: str
    country: str
    #: The outcome the receiving node should answer with.
    expect: str


@dataclass(frozen=True)
class Batch:
    """A serialized DeliverRequest and what its items should produce."""

    data: bytes
    size: int
    expected: Counter[str]


def plan_items(
    count: int,
    tag: str,
    rng: random.Random,
    *,
    batch_size: int = 500,
    home: str = "NL",
    away: str = "DE",
    away_share: float = 0.10,
    duplicate_share: float = 0.05,
) -> list[PlannedItem]:
    """``count`` reports: mostly hosted at ``home`` (filed), ``away_share`` at
    ``away`` (forwarded), and ``duplicate_share`` repeating an earlier home URL
    (joining its open case).

    A duplicate repeats a URL of its own batch, so that its expected outcome
    holds whatever order concurrent batches are committed in.
    """
    items: list[PlannedItem] = []
    home_urls: list[str] = []
    for index in range(count):
        if index % batch_size == 0:
            home_urls = []
        draw = rng.random()
        if draw < away_share:
            url = f"https://away.example.test/{tag}/{index}/{rng.getrandbits(48):012x}"
            items.append(PlannedItem(url, away, "OUTCOME_FORWARDED"))
        elif draw < away_share + duplicate_share and home_urls:
            items.append(PlannedItem(rng.choice(home_urls), home, "OUTCOME_DUPLICATE"))
        else:
            url = f"https://home.example.test/{tag}/{index}/{rng.getrandbits(48):012x}"
            home_urls.append(url)
            items.append(PlannedItem(url, home, "OUTCOME_ACCEPTED"))
    return items


def synthetic_hashes() -> tuple[ContentHash, ...]:
    """A random SHA-256 and a random PDQ hash."""
    return (
        ContentHash(HashAlgorithm.SHA256, os.urandom(32)),
        ContentHash(HashAlgorithm.PDQ, os.urandom(32)),
    )


def make_report(signer: str, url: str, country: str) -> Report:
    """A complete synthetic report authored by ``signer``."""
    return Report(
        report_id=new_uuid7(),
        origin_member_id=signer,
        created_at=utc_now(),
        url=url,
        hashes=synthetic_hashes(),
        media_type=1,
        classification=3,
        hosting_country=country,
    )


_keys: dict[str, SigningKey] = {}


def _key(path: str) -> SigningKey:
    """The signing key at ``path``, loaded once per process."""
    if path not in _keys:
        _keys[path] = SigningKey.load(Path(path))
    return _keys[path]


def sign_batch(key_path: str, signer: str, plan: Sequence[PlannedItem]) -> bytes:
    """The serialized DeliverRequest carrying ``plan``'s reports, signed by ``signer``."""
    key = _key(key_path)
    items = []
    for planned in plan:
        report = make_report(signer, planned.url, planned.country)
        envelope = sign_envelope(key, signer, REPORT_TYPE, encode_report(report))
        items.append(fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope)))
    return fed_pb.DeliverRequest(items=items).SerializeToString()


def presign(
    key_path: Path, signer: str, plan: Sequence[PlannedItem], batch_size: int, workers: int
) -> list[Batch]:
    """Sign ``plan`` into batches of ``batch_size`` (in a spawn pool when large)."""
    chunks = [plan[i : i + batch_size] for i in range(0, len(plan), batch_size)]
    if len(plan) < POOL_THRESHOLD or workers < 2:
        blobs = [sign_batch(str(key_path), signer, chunk) for chunk in chunks]
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            blobs = list(
                pool.map(sign_batch, [str(key_path)] * len(chunks), [signer] * len(chunks), chunks)
            )
    return [
        Batch(blob, len(chunk), Counter(p.expect for p in chunk))
        for blob, chunk in zip(blobs, chunks, strict=True)
    ]
