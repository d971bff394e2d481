"""PDQ near-duplicate index: exact boundaries, brute-force cross-checks, API."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from federation.core import pdq_index
from federation.core.pdq_index import PDQ_BYTES, PdqIndex, hamming

Entries = list[tuple[str, bytes]]


def random_hash(rng: random.Random) -> bytes:
    return rng.randbytes(PDQ_BYTES)


def flip_bits(pdq: bytes, count: int, rng: random.Random) -> bytes:
    """``pdq`` with exactly ``count`` distinct bits flipped."""
    value = int.from_bytes(pdq, "big")
    for bit in rng.sample(range(PDQ_BYTES * 8), count):
        value ^= 1 << bit
    return value.to_bytes(PDQ_BYTES, "big")


def brute_force(entries: Entries, query: bytes, threshold: int) -> list[tuple[str, int]]:
    """The specification of search(): a linear scan."""
    best: dict[str, int] = {}
    for key, pdq in entries:
        distance = hamming(pdq, query)
        if distance <= threshold and distance < best.get(key, 257):
            best[key] = distance
    return sorted(best.items(), key=lambda pair: (pair[1], pair[0]))


def load_single(index: PdqIndex, entries: Entries) -> None:
    for key, pdq in entries:
        index.add(key, pdq)


def load_bulk(index: PdqIndex, entries: Entries) -> None:
    index.add_many(entries)
    index.compact()  # exercise the static tables even for small sets


def load_mixed(index: PdqIndex, entries: Entries) -> None:
    half = len(entries) // 2
    index.add_many(entries[:half])
    index.compact()
    load_single(index, entries[half:])  # these stay in the delta


LOADERS: dict[str, Callable[[PdqIndex, Entries], None]] = {
    "single": load_single,
    "bulk": load_bulk,
    "mixed": load_mixed,
}


# --- hamming ---


def test_hamming() -> None:
    zero = bytes(PDQ_BYTES)
    assert hamming(zero, zero) == 0
    assert hamming(zero, b"\xff" * PDQ_BYTES) == 256
    assert hamming(b"\x0f", b"\x01") == 3
    with pytest.raises(ValueError, match="length"):
        hamming(b"\x00", b"\x00\x00")


def test_flip_bits_is_exact() -> None:
    rng = random.Random(1)
    pdq = random_hash(rng)
    for count in (0, 1, 30, 31, 32, 200):
        assert hamming(pdq, flip_bits(pdq, count, rng)) == count


# --- boundaries ---


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("distance", "found"), [(0, True), (1, True), (30, True), (31, True), (32, False), (33, False)]
)
def test_threshold_boundary(loader: str, distance: int, found: bool) -> None:
    rng = random.Random(distance)
    stored = random_hash(rng)
    entries = [("case-target", stored)] + [(f"case-{i}", random_hash(rng)) for i in range(200)]
    index = PdqIndex(threshold=31)
    LOADERS[loader](index, entries)
    query = flip_bits(stored, distance, rng)
    result = index.search(query)
    if found:
        assert result == [("case-target", distance)]
    else:
        assert result == []


def test_boundary_holds_for_many_bit_patterns() -> None:
    # Pigeonhole must hold however the flipped bits spread over substrings.
    rng = random.Random(7)
    index = PdqIndex()
    stored = random_hash(rng)
    index.add("case-target", stored)
    for _ in range(300):
        assert index.search(flip_bits(stored, 31, rng)) == [("case-target", 31)]
        assert index.search(flip_bits(stored, 32, rng)) == []


def test_worst_case_spread_exactly_at_threshold() -> None:
    # 31 bits spread as 1 or 2 per 16-bit substring: every substring but one
    # differs by 2, so only the radius-1 probe of that one finds the match.
    stored = bytes(PDQ_BYTES)
    value = 0
    bits = [s * 16 + b for s in range(16) for b in (0, 1)][:31]
    for bit in bits:
        value |= 1 << bit
    query = value.to_bytes(PDQ_BYTES, "big")
    for loader in LOADERS.values():
        index = PdqIndex()
        loader(index, [("case-x", stored)])
        assert index.search(query) == [("case-x", 31)]


# --- planted matches among many ---


@pytest.mark.parametrize("loader", LOADERS)
def test_planted_matches_found_and_nothing_else(loader: str) -> None:
    rng = random.Random(42)
    entries: Entries = [(f"case-{i}", random_hash(rng)) for i in range(20_000)]
    query = random_hash(rng)
    planted = {"near-a": 3, "near-b": 17, "near-c": 31}
    for key, distance in planted.items():
        entries.append((key, flip_bits(query, distance, rng)))
    entries.append(("far-d", flip_bits(query, 32, rng)))
    rng.shuffle(entries)
    index = PdqIndex()
    LOADERS[loader](index, entries)
    assert index.search(query) == [("near-a", 3), ("near-b", 17), ("near-c", 31)]
    assert index.search(query, threshold=17) == [("near-a", 3), ("near-b", 17)]
    assert index.search(query, threshold=2) == []


# --- keys and hashes ---


def test_several_keys_per_hash_and_several_hashes_per_key() -> None:
    rng = random.Random(3)
    shared = random_hash(rng)
    index = PdqIndex()
    index.add("case-b", shared)
    index.add("case-a", shared)
    index.add("case-c", flip_bits(shared, 5, rng))
    index.add("case-a", flip_bits(shared, 9, rng))  # a second hash of case-a
    index.add("case-b", shared)  # the same pair again
    assert len(index) == 5
    # One result per key, at its smallest distance, sorted by distance then key.
    assert index.search(shared) == [("case-a", 0), ("case-b", 0), ("case-c", 5)]


def test_remove_key() -> None:
    rng = random.Random(4)
    pdq = random_hash(rng)
    index = PdqIndex()
    index.add("case-a", pdq)
    index.add("case-b", pdq)
    index.add("case-a", flip_bits(pdq, 2, rng))
    index.remove("case-a")
    assert len(index) == 1
    assert index.search(pdq) == [("case-b", 0)]
    index.remove("case-a")  # unknown now: no-op
    index.remove("never-added")
    index.add("case-a", pdq)  # a removed key can come back
    assert index.search(pdq) == [("case-a", 0), ("case-b", 0)]


def test_remove_entry_undoes_one_addition() -> None:
    rng = random.Random(5)
    pdq, other = random_hash(rng), random_hash(rng)
    index = PdqIndex()
    index.add("case-a", pdq)
    index.add("case-a", pdq)
    index.add("case-a", other)
    assert index.remove_entry("case-a", pdq)
    assert index.search(pdq) == [("case-a", 0)]  # one copy remains
    assert index.remove_entry("case-a", pdq)
    assert index.search(pdq) == []
    assert not index.remove_entry("case-a", pdq)
    assert not index.remove_entry("case-z", pdq)
    assert index.search(other) == [("case-a", 0)]
    assert len(index) == 1


def test_removed_slots_are_reused_correctly() -> None:
    rng = random.Random(6)
    entries: Entries = [(f"case-{i}", random_hash(rng)) for i in range(3000)]
    index = PdqIndex()
    index.add_many(entries)
    index.compact()
    removed = entries[:1000]
    for key, _ in removed:
        index.remove(key)
    # New hashes land in reused slots whose old table entries are stale.
    fresh: Entries = [(f"new-{i}", flip_bits(entries[i][1], 10, rng)) for i in range(1000)]
    load_single(index, fresh)
    live = entries[1000:] + fresh
    assert len(index) == len(live)
    for _, pdq in removed[:200] + fresh[:200]:
        assert index.search(pdq) == brute_force(live, pdq, 31)


# --- brute-force cross-check ---


@pytest.mark.parametrize("loader", LOADERS)
def test_matches_linear_scan(loader: str) -> None:
    rng = random.Random(2024)
    base: Entries = [(f"case-{i}", random_hash(rng)) for i in range(5000)]
    planted: Entries = []
    for i in range(1000):
        _, source = rng.choice(base)
        planted.append((f"near-{i}", flip_bits(source, rng.randint(0, 40), rng)))
    entries = base + planted
    rng.shuffle(entries)
    index = PdqIndex()
    LOADERS[loader](index, entries)
    queries = [pdq for _, pdq in rng.sample(entries, 150)]
    queries += [flip_bits(rng.choice(entries)[1], rng.randint(0, 40), rng) for _ in range(150)]
    queries += [random_hash(rng) for _ in range(50)]
    for query in queries:
        assert index.search(query) == brute_force(entries, query, 31)


@pytest.mark.parametrize("loader", LOADERS)
def test_many_queries_at_once_match_linear_scan(loader: str) -> None:
    # Enough queries to span several chunks and to take the delta's dense
    # bucket offsets; then additions, and a second batch must see them.
    rng = random.Random(77)
    entries: Entries = [(f"case-{i}", random_hash(rng)) for i in range(4000)]
    entries += [
        (f"near-{i}", flip_bits(rng.choice(entries)[1], rng.randint(0, 40), rng))
        for i in range(800)
    ]
    index = PdqIndex()
    LOADERS[loader](index, entries)

    def queries() -> list[bytes]:
        picked = [flip_bits(rng.choice(entries)[1], rng.randint(0, 40), rng) for _ in range(250)]
        return picked + [random_hash(rng) for _ in range(50)]

    first = queries()
    assert index.search_many(first) == [brute_force(entries, q, 31) for q in first]
    later: Entries = [(f"later-{i}", flip_bits(q, 3, rng)) for i, q in enumerate(first[:100])]
    load_single(index, later)
    entries += later
    second = first[:100] + queries()
    assert index.search_many(second) == [brute_force(entries, q, 31) for q in second]


def test_lower_thresholds_match_linear_scan() -> None:
    rng = random.Random(9)
    base: Entries = [(f"case-{i}", random_hash(rng)) for i in range(2000)]
    entries = base + [
        (f"near-{i}", flip_bits(rng.choice(base)[1], rng.randint(0, 50), rng)) for i in range(500)
    ]
    index = PdqIndex(threshold=48)
    load_mixed(index, entries)
    for _ in range(60):
        query = flip_bits(rng.choice(entries)[1], rng.randint(0, 50), rng)
        for threshold in (0, 15, 16, 31, 32, 48):
            assert index.search(query, threshold) == brute_force(entries, query, threshold)


def test_delta_merges_automatically() -> None:
    rng = random.Random(10)
    entries: Entries = [(f"case-{i}", random_hash(rng)) for i in range(10_000)]
    index = PdqIndex()
    load_single(index, entries)  # crosses the delta bound at least once
    for key, pdq in rng.sample(entries, 50):
        assert index.search(pdq)[0] == (key, 0)


# --- validation ---


@pytest.mark.parametrize("length", [0, 16, 31, 33, 144])
def test_wrong_lengths_refused(length: int) -> None:
    index = PdqIndex()
    bad = bytes(length)
    with pytest.raises(ValueError, match="32 bytes"):
        index.add("case-a", bad)
    with pytest.raises(ValueError, match="32 bytes"):
        index.search(bad)
    with pytest.raises(ValueError, match="32 bytes"):
        index.remove_entry("case-a", bad)


def test_add_many_is_all_or_nothing() -> None:
    index = PdqIndex()
    good = bytes(PDQ_BYTES)
    with pytest.raises(ValueError, match="32 bytes"):
        index.add_many([("case-a", good), ("case-b", b"short")])
    assert len(index) == 0
    assert index.search(good) == []
    index.add_many([])
    assert len(index) == 0


def test_thresholds_validated() -> None:
    with pytest.raises(ValueError, match="threshold"):
        PdqIndex(threshold=-1)
    with pytest.raises(ValueError, match="threshold"):
        PdqIndex(threshold=257)
    index = PdqIndex(threshold=31)
    assert index.threshold == 31
    with pytest.raises(ValueError, match="threshold"):
        index.search(bytes(PDQ_BYTES), threshold=32)
    with pytest.raises(ValueError, match="threshold"):
        index.search(bytes(PDQ_BYTES), threshold=-1)


def test_search_accepts_bytearray_and_memoryview() -> None:
    pdq = random.Random(11).randbytes(PDQ_BYTES)
    index = PdqIndex()
    index.add("case-a", pdq)
    assert index.search(bytearray(pdq)) == [("case-a", 0)]  # type: ignore[arg-type]
    assert index.search(memoryview(pdq)) == [("case-a", 0)]  # type: ignore[arg-type]


# --- concurrency ---


def test_reads_concurrent_with_writes() -> None:
    rng = random.Random(12)
    index = PdqIndex()
    index.add_many((f"case-{i}", random_hash(rng)) for i in range(5000))
    target = random_hash(rng)
    index.add("target", target)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert ("target", 0) in index.search(target)
        except BaseException as exc:  # surfaced to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    writer_rng = random.Random(13)
    for i in range(6000):  # enough to trigger merges and slot reuse
        index.add(f"w-{i}", random_hash(writer_rng))
        if i % 3 == 0:
            index.remove(f"w-{i - 1}")
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []


# --- snapshots: search before, complete later ---


def test_search_since_finds_what_was_added_after_the_snapshot() -> None:
    rng = random.Random(21)
    old = [(f"old-{i}", random_hash(rng)) for i in range(3000)]
    index = PdqIndex()
    load_mixed(index, old)
    queries = [random_hash(rng) for _ in range(20)]
    snapshot, before = index.search_many_at(queries)
    assert before == [brute_force(old, q, 31) for q in queries]
    # Others file meanwhile: near neighbours of some queries, and noise.
    new = [(f"new-{i}", flip_bits(q, 5 + i, rng)) for i, q in enumerate(queries[:10])]
    new += [(f"noise-{i}", random_hash(rng)) for i in range(500)]
    load_single(index, new[:5])
    index.add_many(new[5:])
    since = index.search_since(snapshot, queries)
    assert since is not None
    assert since == [brute_force(new, q, 31) for q in queries]
    # Together they are exactly what a search now finds.
    for query, early, late in zip(queries, before, since, strict=True):
        merged = sorted(dict(early + late).items(), key=lambda pair: (pair[1], pair[0]))
        assert merged == index.search(query)
    assert index.search_since(index.snapshot(), queries) == [[] for _ in queries]


def test_search_since_asks_for_a_full_search_after_a_removal() -> None:
    rng = random.Random(22)
    index = PdqIndex()
    index.add_many((f"case-{i}", random_hash(rng)) for i in range(100))
    query = random_hash(rng)
    snapshot, _ = index.search_many_at([query])
    index.add("late", query)
    index.remove_entry("late", query)  # a rolled-back filing
    assert index.search_since(snapshot, [query]) is None
    assert index.search_since(index.snapshot(), [query]) == [[]]


def test_search_since_asks_for_a_full_search_when_the_log_is_outgrown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pdq_index, "_LOG_ENTRIES", 50)
    rng = random.Random(23)
    index = PdqIndex()
    snapshot = index.snapshot()
    index.add_many((f"case-{i}", random_hash(rng)) for i in range(40))
    assert index.search_since(snapshot, [random_hash(rng)]) == [[]]
    index.add_many((f"more-{i}", random_hash(rng)) for i in range(40))
    assert index.search_since(snapshot, [random_hash(rng)]) is None


def test_searches_beside_slot_reuse_never_pair_a_key_with_another_hash() -> None:
    """Searches run outside the lock while removals free slots and additions
    take them again: every (key, distance) answered must be the key's own."""
    rng = random.Random(24)
    query = random_hash(rng)
    hashes = {f"near-{i}": flip_bits(query, 10 + i % 20, rng) for i in range(200)}
    hashes.update({f"far-{i}": random_hash(rng) for i in range(2000)})
    index = PdqIndex()
    index.add_many(hashes.items())
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            for _ in range(2000):
                if stop.is_set():
                    break
                for key, distance in index.search(query):
                    assert distance == hamming(query, hashes[key]) <= 31, key
        except BaseException as exc:  # surfaced to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    keys = sorted(hashes)
    writer_rng = random.Random(25)
    for _ in range(20_000):  # remove then add again: the freed slot is reused
        key = writer_rng.choice(keys)
        index.remove(key)
        index.add(key, hashes[key])
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
