#!/usr/bin/env python3
"""PDQ near-duplicate index: build time, query latency and memory at scale.

Builds a PdqIndex of N random 256-bit hashes (plus planted near neighbours),
then times 1,000 queries: half are planted neighbours of stored hashes at
distance <= 31 (and must be found), half are random. Prints build time,
p50/p99 latency against the target (p99 <= 10 ms at 1 M, threshold 31, one
core) and the memory the index holds.

    python bench/pdq_bench.py [--n 1000000] [--queries 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time
import tracemalloc

import numpy as np

from federation.core.pdq_index import PDQ_BYTES, PdqIndex

TARGET_P99_MS = 10.0
#: Look-ups per second at 10 M stored hashes (issue 21, after Meta's HMA goals).
TARGET_PER_S = 4000.0
#: Queries per search_many call in the batched measurement (a Deliver batch).
BATCH = 500
THRESHOLD = 31


def flip_bits(pdq: bytes, count: int, rng: random.Random) -> bytes:
    """``pdq`` with exactly ``count`` distinct bits flipped."""
    value = int.from_bytes(pdq, "big")
    for bit in rng.sample(range(PDQ_BYTES * 8), count):
        value ^= 1 << bit
    return value.to_bytes(PDQ_BYTES, "big")


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_items(n: int, seed: int) -> list[tuple[str, bytes]]:
    """N random hashes under case-like keys (made before any measurement)."""
    rows = np.random.default_rng(seed).integers(0, 256, (n, PDQ_BYTES), dtype=np.uint8)
    blob = rows.tobytes()
    return [(f"case-{i:08d}", blob[i * PDQ_BYTES : (i + 1) * PDQ_BYTES]) for i in range(n)]


def make_queries(
    items: list[tuple[str, bytes]], count: int, rng: random.Random
) -> tuple[list[bytes], list[str | None]]:
    """Half planted neighbours (distance <= 31) of stored hashes, half random.

    Returns the queries and, for each, the key that must be found (or None).
    """
    half = count // 2
    queries: list[bytes] = []
    expected: list[str | None] = []
    for _ in range(half):
        key, source = items[rng.randrange(len(items))]
        queries.append(flip_bits(source, rng.randint(0, THRESHOLD), rng))
        expected.append(key)
    for _ in range(count - half):
        queries.append(rng.randbytes(PDQ_BYTES))
        expected.append(None)
    return queries, expected


def time_queries(
    index: PdqIndex, queries: list[bytes], expected: list[str | None], rng: random.Random
) -> tuple[list[float], int]:
    """Latency of each query in ms (in query order) and the results returned."""
    order = list(range(len(queries)))
    rng.shuffle(order)  # interleave near and random queries
    latencies_ms = [0.0] * len(queries)
    results = 0
    for i in order:
        begin = time.perf_counter_ns()
        found = index.search(queries[i])
        latencies_ms[i] = (time.perf_counter_ns() - begin) / 1e6
        results += len(found)
        want = expected[i]
        if want is not None and want not in {key for key, _ in found}:
            raise SystemExit(f"planted neighbour {want} not found: the index is wrong")
    return latencies_ms, results


def time_batched(index: PdqIndex, queries: list[bytes]) -> float:
    """Look-ups per second when queries come BATCH at a time (search_many)."""
    start = time.perf_counter()
    for first in range(0, len(queries), BATCH):
        index.search_many(queries[first : first + BATCH])
    return len(queries) / (time.perf_counter() - start)


def traced_mib(items: list[tuple[str, bytes]]) -> float:
    """Memory allocated by building an index, per tracemalloc (numpy reports
    to it); a separate build, so that tracing does not slow the timed one."""
    gc.collect()
    tracemalloc.start()
    index = PdqIndex(THRESHOLD)
    index.add_many(items)
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index
    return current / 2**20


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stored hashes")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--planted", type=int, default=1000, help="extra near neighbours")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - reproducible test data, not secrets

    items = make_items(args.n, args.seed)
    # Plant neighbours of stored hashes so that some queries meet clusters.
    for i in range(args.planted):
        _, source = items[rng.randrange(args.n)]
        items.append((f"planted-{i:06d}", flip_bits(source, rng.randint(1, THRESHOLD), rng)))
    queries, expected = make_queries(items, args.queries, rng)

    gc.collect()
    rss_before = rss_mib()
    start = time.perf_counter()
    index = PdqIndex(THRESHOLD)
    index.add_many(items)
    build_s = time.perf_counter() - start
    gc.collect()
    rss_delta = rss_mib() - rss_before

    latencies, results = time_queries(index, queries, expected, rng)
    batched = time_batched(index, queries)
    del index
    half = args.queries // 2
    near, rand, every = (np.array(x) for x in (latencies[:half], latencies[half:], latencies))
    p50, p99 = np.percentile(every, [50, 99])

    print(f"entries              {len(items):,} (threshold {THRESHOLD})")
    print(f"build (add_many)     {build_s:.2f} s")
    print(f"queries              {args.queries} ({half} planted near, rest random)")
    print(f"latency p50          {p50:.3f} ms")
    print(f"latency p99          {p99:.3f} ms")
    for name, sample in (("near", near), ("random", rand)):
        low, high = np.percentile(sample, [50, 99])
        print(f"  {name:7s}p50 / p99   {low:.3f} / {high:.3f} ms")
    print(f"  max                {every.max():.3f} ms")
    print(f"results returned     {results} (every planted neighbour found)")
    one_by_one = len(every) / (every.sum() / 1000)
    print(f"look-ups/s, one at a time   {one_by_one:,.0f} (one thread)")
    print(f"look-ups/s, {BATCH} per search_many {batched:,.0f} (one thread, as a Deliver batch)")
    verdict_rate = "MET" if max(one_by_one, batched) >= TARGET_PER_S else "MISSED"
    print(f"target look-ups/s    >= {TARGET_PER_S:,.0f}: {verdict_rate}")
    verdict = "MET" if p99 <= TARGET_P99_MS else "MISSED"
    print(
        f"target p99           <= {TARGET_P99_MS:.1f} ms: "
        f"p99 is {p99 / TARGET_P99_MS:.3f} of it ({verdict})"
    )
    print(f"memory (RSS delta)   {rss_delta:.0f} MiB")
    print(f"memory (tracemalloc) {traced_mib(items):.0f} MiB")


if __name__ == "__main__":
    main()
