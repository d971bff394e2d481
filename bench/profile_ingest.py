"""Profile the ingest path in one process: DeliveryService.deliver on a real SQLite file.

No gRPC and no second process: what is left is verification, parsing,
filing, signing and the SQLite transaction, which is where ingest spends its
time. Prints reports/s and the CPU time per report of all threads; with
``--profile`` also a cProfile table of the calling thread (its absolute
figures are inflated by the profiler; read it for proportions). For the
running node under load use py-spy instead (README "Performance").

    .venv/bin/python -m bench.profile_ingest --reports 6000 --profile --sort tottime

``--store N`` starts from a copy of the cached N-case database of the ingest
benchmark (bench/.work, built on first use) to see what a large store costs.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import pstats
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import preload
from bench.main import DEFAULT_WORK
from bench.progress import say
from crypto.dsse import sign_envelope
from crypto.keys import SigningKey
from federation.cases.filing import CaseBook
from federation.core.limits import Limits
from federation.core.reasons import REPORT_TYPE
from federation.core.report import ContentHash, HashAlgorithm, Report
from federation.devnet.create import init_network
from federation.devnet.smoke import synthetic_report
from federation.intake import Books, DeliveryOptions, DeliveryService, IncomingItem, NodeIdentity
from federation.node.compose import trust_anchor
from federation.node.config import load_config
from federation.node.server import tune_gc
from federation.status.issuing import StatusBook
from federation.store.database import Database
from federation.store.migrate import upgrade
from federation.trust.holder import RosterHolder
from federation.wire.convert import encode_report

RECEIVER, SENDER = "hotline-nl", "hotline-dk"


def _service(directory: Path, stored: int) -> tuple[DeliveryService, SigningKey]:
    """hotline-nl's delivery service, composed as the node composes it, on a
    database holding ``stored`` preloaded cases."""
    manifest = init_network(directory)
    config = load_config(directory / manifest.members[RECEIVER].config)
    if stored:
        database_file = Path(config.database_url.removeprefix("sqlite:///"))
        database_file.parent.mkdir(parents=True, exist_ok=True)
        preload.install_copy(preload.template(DEFAULT_WORK, stored, say), database_file)
    database = Database(config.database_url, background_checkpoints=True)
    upgrade(database)
    rosters = RosterHolder(trust_anchor(config), database)
    assert config.trust.roster is not None
    rosters.load(config.trust.roster.read_bytes())
    identity = NodeIdentity(RECEIVER, SigningKey.load(config.signing.paths[0]))
    pool = ThreadPoolExecutor(2, thread_name_prefix="verify")
    statuses = StatusBook(
        RECEIVER,
        identity.sign,
        sign_many=lambda kind, payloads: identity.sign_many(kind, payloads, pool),
    )
    casebook = CaseBook(RECEIVER, statuses)
    casebook.load(database)  # the stored PDQ hashes, as the node loads them at start
    service = DeliveryService(
        identity,
        rosters,
        database,
        Limits(),
        Books(casebook, statuses),
        DeliveryOptions(executor=pool),
    )
    return service, SigningKey.load(directory / manifest.members[SENDER].signing_key)


def _reports(count: int, rng: random.Random) -> list[Report]:
    """Synthetic reports: 10 % hosted in DE (forwarded), 5 % repeating a URL,
    each with a random SHA-256 and PDQ hash."""
    made: list[Report] = []
    for index in range(count):
        report = synthetic_report(SENDER, "DE" if index % 10 == 0 else "NL")
        if made and index % 20 == 1:
            report = dataclasses.replace(report, url=rng.choice(made).url)
        hashes = (
            ContentHash(HashAlgorithm.SHA256, os.urandom(32)),
            ContentHash(HashAlgorithm.PDQ, os.urandom(32)),
        )
        made.append(dataclasses.replace(report, hashes=hashes))
    return made


def main() -> None:
    """Run the measurement described in the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=6000, help="reports to deliver")
    parser.add_argument("--batch", type=int, default=500, help="items per deliver call")
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    parser.add_argument(
        "--store", type=int, default=0, help="start from the benchmark's N-case database"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hfed-profile-") as work:
        service, key = _service(Path(work) / "net", args.store)
        rng = random.Random(1)  # noqa: S311 - reproducible test data, not secrets
        items = [
            IncomingItem(sign_envelope(key, SENDER, REPORT_TYPE, encode_report(r)), ())
            for r in _reports(args.reports, rng)
        ]
        tune_gc()  # as the node's process does once it serves
        profiler = cProfile.Profile()
        started, cpu = time.perf_counter(), time.process_time()
        if args.profile:
            profiler.enable()
        for start in range(0, len(items), args.batch):
            service.deliver(SENDER, items[start : start + args.batch])
        profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{len(items):,} reports in {elapsed:.2f} s: {len(items) / elapsed:,.0f} reports/s, "
        f"{cpu / len(items) * 1e6:.0f} us of CPU per report (all threads)"
    )
    if args.profile:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(30)


if __name__ == "__main__":
    main()
