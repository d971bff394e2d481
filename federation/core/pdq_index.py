"""Near-duplicate lookup of 256-bit PDQ hashes by Hamming distance.

HFP v1 §5: a report's PDQ hash links its case to every case holding a hash
within the configured distance (default 31). Cases number in the millions, so
a query must not scan them all: this is multi-index hashing (Norouzi, Punjani
and Fleet, "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012).

**How it works.** The 256 bits are cut into ``m = 16`` substrings of 16 bits.
By pigeonhole, if two hashes differ in at most ``r`` bits, at least one of the
16 substrings differs in at most ``floor(r / 16)`` bits. So each substring
position has a table from its 16-bit value to the entries holding it; a query
probes, in each table, every value within ``floor(r / 16)`` bits of its own
substring, and the entries found are candidates that are then checked exactly
with a vectorised popcount. Nothing is missed (pigeonhole) and nothing is
reported beyond the threshold (exact check).

**Why m = 16.** Norouzi et al. suggest substrings of about log2(N) bits, so
that a bucket holds about one entry: 20 bits at 1 M, m ≈ 13. Sixteen
substrings of 16 bits are the nearest choice that suits the machine: each
substring is a native ``uint16`` read by a zero-copy view, and each table is a
dense 65,536-entry offset array (no hashing). With r = 31 the radius per
substring is 1, i.e. 1 + 16 = 17 probes per table, 272 in all; a random query
meets about N·16·17/65,536 ≈ 4,150 candidates at N = 1 M, which one numpy
popcount verifies in tens of microseconds. m = 8 (32-bit substrings) would
need radius 3, i.e. 5,489 probes per table; m = 32 (8-bit) needs radius 0 but
its buckets hold ~3,900 entries each, ~125,000 candidates per query. Real PDQ
hashes are not uniform, so some buckets are fuller than average: that costs
time, never correctness.

**Layout.** Tables are a static, sorted "base" (for each table, the slots
ordered by substring value plus an offset array: compressed sparse rows)
rebuilt in bulk with numpy, and a small dynamic "delta" of recent additions
that is merged into the base when it grows past a bound. The delta is a
second set of tables in the same shape, except that its buckets are found by
binary search over sorted keys (a search of a large batch of queries makes a
dense offset array for it instead, once per change); it is re-sorted lazily,
once per search after additions, so a batch of additions costs one sort.
Hashes are stored word-major, four 64-bit words per slot, and candidates are
checked a word at a time, a chunk of queries at a time: a random candidate
is out of reach after one or two words, so most of the full hash is never
read, and a chunk's arrays stay in the CPU caches. A removed entry's slot
is only marked dead and may be reused; stale table entries it leaves behind
are harmless because every candidate is checked against the slot's current
hash and liveness.

**Threads.** Every public method takes one internal lock, so reads concurrent
with writes are safe; callers should still serialise their writes (as
:class:`~federation.cases.filing.CaseBook` does) so that add/undo sequences stay
meaningful. A merge of the delta (every 4,096 to 65,536 additions, 0.3-0.5 s at
1 M entries) holds the lock, so a search may wait for it. A search holds the
lock only to take references to the tables: the gather and popcount (most of
its time at a million entries, and numpy runs them without the GIL) happen
outside it, so searches run beside each other and beside additions. Arrays
are replaced, never changed in place, except where a removal frees a slot
and an addition takes it again; a search that overlapped either is run
again under the lock.

**Snapshots.** :meth:`search_many_at` also says where the index stood
(:class:`PdqSnapshot`), and :meth:`search_since` finds the entries added
after that point, by brute force over a short log of recent additions. So a
batch can be searched before its write transaction and completed cheaply
inside it, with the same answer as a search inside it (or ``None``, asking
for a full search, after a removal or once the log no longer reaches back).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from federation.core.ids import CaseId

__all__ = ["PDQ_BYTES", "PdqIndex", "PdqSnapshot", "hamming"]

#: Length of a PDQ hash (256 bits).
PDQ_BYTES: Final = 32
_BITS: Final = PDQ_BYTES * 8
_TABLES: Final = 16  # m: substrings, each one uint16
_BUCKETS: Final = 1 << 16
# The delta is merged into the base once it holds this many entries, or
# 1/16 of the base if that is larger, up to a cap (each entry adds 16 sorted
# bucket keys, re-merged at every batch of additions). A merge rebuilds the
# base (0.3-0.5 s at 1 M entries) inside the filing transaction that crosses
# the bound, holding the writer and the index: at 1 M a cap of 16,384 stalled
# ingest every few seconds, and 65,536 was 4-12 % faster there, back to back.
_DELTA_MIN: Final = 4096
_DELTA_MAX: Final = 65536
_INITIAL_CAPACITY: Final = 1024

_WORDS: Final = PDQ_BYTES // 8  # 64-bit words per hash
#: Queries searched together: at 1 M entries each has about 4,150
#: candidates, so a chunk's arrays (a few MiB) stay in the CPU caches
#: through every pass instead of streaming through memory.
_QUERY_CHUNK: Final = 64
#: From this many queries a search looks up the delta's buckets in a dense
#: offset array (as the base's), made once per change of the delta (a few
#: ms); fewer queries binary-search its sorted keys (tens of us a query).
_DENSE_DELTA_QUERIES: Final = 128

_IntArray = npt.NDArray[np.intp]
_T = TypeVar("_T", bound=np.generic)


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two byte strings of equal length."""
    if len(a) != len(b):
        raise ValueError("hashes differ in length")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def _masks(radius: int) -> _IntArray:
    """All 16-bit XOR masks with at most ``radius`` bits set."""
    values = np.arange(_BUCKETS, dtype=np.uint16)
    return np.flatnonzero(np.bitwise_count(values) <= radius).astype(np.intp)


def _as_row(pdq: bytes) -> npt.NDArray[np.uint8]:
    if len(pdq) != PDQ_BYTES:
        raise ValueError(f"a PDQ hash is {PDQ_BYTES} bytes")
    return np.frombuffer(bytes(pdq), dtype=np.uint8)


def _as_rows(pdqs: Sequence[bytes]) -> npt.NDArray[np.uint8]:
    if any(len(pdq) != PDQ_BYTES for pdq in pdqs):
        raise ValueError(f"a PDQ hash is {PDQ_BYTES} bytes")
    return np.frombuffer(b"".join(pdqs), dtype=np.uint8).reshape(len(pdqs), PDQ_BYTES)


def _ranges(
    low: npt.NDArray[np.integer[Any]],
    lengths: npt.NDArray[np.integer[Any]],
    order: npt.NDArray[np.integer[Any]],
    queries: int,
) -> tuple[_IntArray, _IntArray]:
    """Concatenate ``order[low[k] : low[k] + lengths[k]]`` over every probe k
    without a Python loop, and say which query (row of probes) each came from."""
    total = int(lengths.sum())
    if not total:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    # Position i of the output belongs to range k and is
    # low[k] + (i - (first output position of range k)).
    first_out = np.cumsum(lengths) - lengths
    positions = np.arange(total, dtype=np.intp) + np.repeat(low - first_out, lengths)
    per_query = lengths.reshape(queries, -1).sum(axis=1)
    query_of = np.repeat(np.arange(queries, dtype=np.intp), per_query)
    return order[positions].astype(np.intp), query_of


def pairs_within(pdqs: Sequence[bytes], threshold: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) of ``pdqs`` within ``threshold`` bits of each other.

    For near matches inside one batch, before its hashes are in the index.
    """
    if len(pdqs) < 2:
        return []
    words = _as_rows(pdqs).view(np.uint64)
    distances = np.zeros((len(pdqs), len(pdqs)), dtype=np.int32)
    for column in range(PDQ_BYTES // 8):
        distances += np.bitwise_count(words[:, None, column] ^ words[None, :, column])
    first, second = np.nonzero(np.triu(distances <= threshold, k=1))
    return list(zip(first.tolist(), second.tolist(), strict=True))


# Offset of each table in the flat bucket numbering (table j, value v) ->
# j * 65536 + v, shared by the base offsets and the delta dict.
_TABLE_BASE: Final = (np.arange(_TABLES, dtype=np.intp) * _BUCKETS).reshape(_TABLES, 1)


#: Additions remembered for search_since (entries); older snapshots get None.
_LOG_ENTRIES: Final = 200_000


@dataclass(frozen=True, slots=True)
class PdqSnapshot:
    """Where an index stood when a search ran: entries added and removals made
    since it was created (see :meth:`PdqIndex.search_since`)."""

    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class _View:
    """References to the arrays a search reads, taken under the lock."""

    starts: npt.NDArray[np.int64]
    order: npt.NDArray[np.int32]
    n_base: int
    delta_keys: _IntArray
    delta_order: _IntArray
    #: Bucket offsets into delta_order, as ``starts`` for the base; only
    #: for searches of many queries (see _DENSE_DELTA_QUERIES), else None.
    delta_starts: npt.NDArray[np.int32] | None
    words: npt.NDArray[np.uint64]
    alive: npt.NDArray[np.bool_]
    slot_kid: npt.NDArray[np.int32]
    key_of: list[CaseId]
    snapshot: PdqSnapshot


class PdqIndex:
    """Case ids (the keys) by PDQ hash, searchable by distance.

    The same hash may be stored under several keys, and a key may hold several
    hashes; adding the same (key, hash) twice stores it twice, so that
    :meth:`remove_entry` can undo exactly one addition.
    """

    def __init__(self, threshold: int = 31) -> None:
        """Create an empty index answering queries up to ``threshold`` bits."""
        if not 0 <= threshold <= _BITS:
            raise ValueError(f"threshold must be between 0 and {_BITS}")
        self._threshold = threshold
        self._lock = threading.Lock()
        self._mask_cache: dict[int, _IntArray] = {}

        # Per slot: hash, liveness, key id, next slot of the same key. The
        # hash is stored as four 64-bit words, word-major (``_words[w]`` is
        # word w of every slot), so a search can check one word of all its
        # candidates, drop those already too far, and read the next word only
        # for the rest (see _search_chunk).
        self._words = np.zeros((_WORDS, _INITIAL_CAPACITY), dtype=np.uint64)
        self._alive = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)
        self._slot_kid = np.full(_INITIAL_CAPACITY, -1, dtype=np.int32)
        self._next = np.full(_INITIAL_CAPACITY, -1, dtype=np.int32)
        self._size = 0  # slots ever used (high-water mark)
        self._free: list[int] = []
        self._count = 0

        # Keys are interned to small ints so per-slot data stays in numpy;
        # each key's slots form a singly linked list (head per key, next per slot).
        self._kid_of: dict[CaseId, int] = {}
        self._key_of: list[CaseId] = []
        self._head = np.full(_INITIAL_CAPACITY, -1, dtype=np.int32)

        # Base tables: slots table-major and sorted by bucket; the slots of
        # bucket b (= table * 65536 + value) are _order[_starts[b]:_starts[b+1]].
        self._order = np.zeros(0, dtype=np.int32)
        self._starts = np.zeros(_TABLES * _BUCKETS + 1, dtype=np.int64)
        self._n_base = 0
        # Delta: slots added since the last merge, and (for the first
        # _delta_sorted of them) their bucket keys sorted, with the slot of each.
        self._delta_slots = np.zeros(_INITIAL_CAPACITY, dtype=np.intp)
        self._delta_entries = 0
        self._delta_sorted = 0
        self._delta_keys = np.zeros(0, dtype=np.intp)
        self._delta_order = np.zeros(0, dtype=np.intp)
        self._delta_starts: npt.NDArray[np.int32] | None = None

        # Counters of additions and removals ever made, and the recent
        # additions as (entries added before them, their slots).
        self._added = 0
        self._removed = 0
        #: Freed slots taken again: the only in-place change to rows a search
        #: outside the lock could read half-written (see search_many_at).
        self._reused = 0
        self._log: deque[tuple[int, _IntArray]] = deque()
        self._logged = 0

    @property
    def threshold(self) -> int:
        """The largest distance this index answers (set at construction)."""
        return self._threshold

    def __len__(self) -> int:
        """Number of stored (key, hash) entries."""
        return self._count

    # --- writes ---

    def add(self, key: CaseId, pdq: bytes) -> None:
        """Store ``pdq`` under ``key``; ValueError unless it is 32 bytes."""
        row = _as_row(pdq)
        with self._lock:
            if self._free:
                slot = self._free.pop()
                self._reused += 1
            else:
                slot = self._grow(1)
            self._words[:, slot] = row.view(np.uint64)
            self._alive[slot] = True
            kid = self._intern(key)
            self._slot_kid[slot] = kid
            self._next[slot] = self._head[kid]
            self._head[kid] = slot
            self._count += 1
            added = np.array([slot], dtype=np.intp)
            self._note_added(added)
            self._add_to_delta(added)

    def add_many(self, items: Iterable[tuple[CaseId, bytes]]) -> None:
        """Store many (key, hash) pairs at once (start-up loading).

        All hashes are checked before anything is stored, so a ValueError
        leaves the index unchanged.
        """
        keys: list[CaseId] = []
        chunks: list[bytes] = []
        for key, pdq in items:
            if len(pdq) != PDQ_BYTES:
                raise ValueError(f"a PDQ hash is {PDQ_BYTES} bytes")
            keys.append(key)
            chunks.append(bytes(pdq))
        if not keys:
            return
        rows = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(-1, PDQ_BYTES)
        count = len(keys)
        with self._lock:
            first = self._grow(count)
            slots = np.arange(first, first + count, dtype=np.int32)
            self._words[:, first : first + count] = rows.view(np.uint64).T
            self._alive[first : first + count] = True
            kids = np.fromiter((self._intern(key) for key in keys), dtype=np.int32, count=count)
            self._slot_kid[first : first + count] = kids
            self._link(slots, kids)
            self._count += count
            self._note_added(slots.astype(np.intp))
            if count > self._delta_limit():
                # Cheaper to rebuild everything than to grow the delta.
                self._rebuild()
            else:
                self._add_to_delta(slots.astype(np.intp))

    def remove(self, key: CaseId) -> None:
        """Remove every hash stored under ``key`` (no-op for an unknown key)."""
        with self._lock:
            kid = self._kid_of.pop(key, None)
            if kid is None:
                return
            slot = int(self._head[kid])
            while slot >= 0:
                following = int(self._next[slot])
                self._release(slot)
                slot = following
            self._head[kid] = -1
            self._key_of[kid] = CaseId("")  # the id is not reused; drop the string

    def remove_entry(self, key: CaseId, pdq: bytes) -> bool:
        """Undo one :meth:`add` of (``key``, ``pdq``); False if none is stored."""
        row = _as_row(pdq)
        with self._lock:
            kid = self._kid_of.get(key)
            if kid is None:
                return False
            previous = -1
            slot = int(self._head[kid])
            while slot >= 0:
                following = int(self._next[slot])
                if np.array_equal(self._words[:, slot], row.view(np.uint64)):
                    if previous < 0:
                        self._head[kid] = following
                    else:
                        self._next[previous] = following
                    self._release(slot)
                    return True
                previous, slot = slot, following
            return False

    def compact(self) -> None:
        """Merge recent additions into the static tables now.

        Happens automatically; useful after a burst of single additions.
        """
        with self._lock:
            self._rebuild()

    # --- reads ---

    def search(self, pdq: bytes, threshold: int | None = None) -> list[tuple[CaseId, int]]:
        """Every key holding a hash within ``threshold`` bits of ``pdq``.

        Returns (key, distance) pairs, one per key with its smallest distance,
        sorted by distance then key. ``threshold`` defaults to the index's and
        may not exceed it (ValueError), nor may ``pdq`` be other than 32 bytes.
        """
        return self.search_many([pdq], threshold)[0]

    def search_many(
        self, pdqs: Sequence[bytes], threshold: int | None = None
    ) -> list[list[tuple[CaseId, int]]]:
        """:meth:`search` for many hashes at once, one result list per hash.

        One vectorised pass for the whole batch: per query, numpy's fixed cost
        per call would otherwise exceed the work itself.
        """
        return self.search_many_at(pdqs, threshold)[1]

    def search_many_at(
        self, pdqs: Sequence[bytes], threshold: int | None = None
    ) -> tuple[PdqSnapshot, list[list[tuple[CaseId, int]]]]:
        """:meth:`search_many`, and the snapshot of the index it answered from."""
        limit = self._limit(threshold)
        if not pdqs:
            return self.snapshot(), []
        rows = _as_rows(pdqs)
        dense = len(pdqs) >= _DENSE_DELTA_QUERIES
        with self._lock:
            view = self._view(dense)
            reused = self._reused
        found = self._search(view, rows, limit)
        with self._lock:
            if self._removed == view.snapshot.removed and self._reused == reused:
                return view.snapshot, found
            # A removal or a slot's reuse overlapped the search: it may have
            # read a slot's row and key from before and after the change.
            # Answer from a view no writer can change meanwhile.
            view = self._view(dense)
            return view.snapshot, self._search(view, rows, limit)

    def snapshot(self) -> PdqSnapshot:
        """Where the index stands now."""
        with self._lock:
            return PdqSnapshot(self._added, self._removed)

    def search_since(
        self, snapshot: PdqSnapshot, pdqs: Sequence[bytes], threshold: int | None = None
    ) -> list[list[tuple[CaseId, int]]] | None:
        """For each hash, the keys added after ``snapshot`` that hold a hash
        within ``threshold`` bits (as :meth:`search`); ``None`` when the index
        changed otherwise since then (a removal) or the log of additions no
        longer reaches back to it: then only a full search gives the answer."""
        limit = self._limit(threshold)
        rows = _as_rows(pdqs) if pdqs else np.zeros((0, PDQ_BYTES), dtype=np.uint8)
        with self._lock:
            if self._removed != snapshot.removed or snapshot.added < self._logged:
                return None
            # Newest last, and a snapshot is recent: walk back only to it, not
            # over the whole log (up to _LOG_ENTRIES single additions).
            slots: list[_IntArray] = []
            for before, new in reversed(self._log):
                if before < snapshot.added:
                    break
                slots.append(new)
            if not slots or not pdqs:
                return [[] for _ in pdqs]
            candidates = np.concatenate(slots)
            words = self._words[:, candidates]
            kids = self._slot_kid[candidates]
            key_of = self._key_of
        wanted = np.ascontiguousarray(rows.view(np.uint64).T)
        # Every (query, addition) pair on the first word, then only the pairs
        # still within reach (about half) on the following words.
        first = np.bitwise_count(wanted[0][:, None] ^ words[0][None, :]).astype(np.int16)
        queries, ats = np.nonzero(first <= limit)
        queries, ats, distances = _narrow(
            words, wanted, queries, ats, first[queries, ats], 1, limit
        )
        return _nearest(len(pdqs), queries.tolist(), kids[ats].tolist(), distances.tolist(), key_of)

    def _limit(self, threshold: int | None) -> int:
        limit = self._threshold if threshold is None else threshold
        if not 0 <= limit <= self._threshold:
            raise ValueError(f"threshold must be between 0 and {self._threshold}")
        return limit

    def _search(
        self, view: _View, rows: npt.NDArray[np.uint8], limit: int
    ) -> list[list[tuple[CaseId, int]]]:
        """The vectorised search over one view (no lock needed), a chunk of
        queries at a time."""
        masks = self._masks(limit // _TABLES)
        found: list[list[tuple[CaseId, int]]] = []
        for start in range(0, rows.shape[0], _QUERY_CHUNK):
            found.extend(_search_chunk(view, rows[start : start + _QUERY_CHUNK], masks, limit))
        return found

    # --- internals (called with the lock held, except _masks) ---

    def _masks(self, radius: int) -> _IntArray:
        # Called without the lock: a racing duplicate computation is harmless
        # and a dict assignment is atomic.
        masks = self._mask_cache.get(radius)
        if masks is None:
            masks = self._mask_cache[radius] = _masks(radius)
        return masks

    def _view(self, dense: bool = False) -> _View:
        """References for a search (lock held): arrays are replaced, not
        changed, by additions and merges. ``dense``: with the delta's bucket
        offsets, made now if the delta changed since they were last made."""
        if self._delta_entries:
            self._sort_delta()
            if dense and self._delta_starts is None:
                # int32: the delta holds at most 16 * _DELTA_MAX keys, and
                # half the bytes make both this and the look-ups cheaper.
                counts = np.bincount(self._delta_keys, minlength=_TABLES * _BUCKETS)
                starts = np.zeros(_TABLES * _BUCKETS + 1, dtype=np.int32)
                np.cumsum(counts, out=starts[1:], dtype=np.int32)
                self._delta_starts = starts
        return _View(
            starts=self._starts,
            order=self._order,
            n_base=self._n_base,
            delta_keys=self._delta_keys,
            delta_order=self._delta_order,
            delta_starts=self._delta_starts if dense and self._delta_entries else None,
            words=self._words,
            alive=self._alive,
            slot_kid=self._slot_kid,
            key_of=self._key_of,
            snapshot=PdqSnapshot(self._added, self._removed),
        )

    def _note_added(self, slots: _IntArray) -> None:
        """Log an addition for search_since, forgetting the oldest beyond the bound."""
        self._log.append((self._added, slots))
        self._added += int(slots.size)
        while self._log and self._added - self._log[0][0] > _LOG_ENTRIES:
            self._log.popleft()
            self._logged = self._log[0][0] if self._log else self._added

    def _sort_delta(self) -> None:
        """Bring the delta's sorted keys up to date with its latest additions."""
        if self._delta_sorted == self._delta_entries:
            return
        new = self._delta_slots[self._delta_sorted : self._delta_entries]
        keys = (_substrings(self._words, new).astype(np.intp) + _TABLE_BASE[:, 0]).ravel()
        slots = np.repeat(new, _TABLES)
        order = np.argsort(keys, kind="stable")
        keys, slots = keys[order], slots[order]
        # Merge the sorted additions into the sorted delta: one O(n) copy
        # rather than re-sorting everything after every batch.
        at = np.searchsorted(self._delta_keys, keys, side="right")
        self._delta_keys = np.insert(self._delta_keys, at, keys)
        self._delta_order = np.insert(self._delta_order, at, slots)
        self._delta_sorted = self._delta_entries
        self._delta_starts = None

    def _intern(self, key: CaseId) -> int:
        kid = self._kid_of.get(key)
        if kid is None:
            kid = self._kid_of[key] = len(self._key_of)
            self._key_of.append(key)
            if kid >= self._head.size:
                self._head = _grown(self._head, max(2 * self._head.size, kid + 1), -1)
        return kid

    def _link(self, slots: npt.NDArray[np.int32], kids: npt.NDArray[np.int32]) -> None:
        """Prepend new ``slots`` to their keys' lists, vectorised."""
        order = np.argsort(kids, kind="stable")
        sorted_slots, sorted_kids = slots[order], kids[order]
        # Within a run of one key, each slot points to the next; the run's
        # last slot points to the key's old head; the first becomes the head.
        same_as_next = np.zeros(sorted_kids.size, dtype=np.bool_)
        same_as_next[:-1] = sorted_kids[:-1] == sorted_kids[1:]
        following = np.empty_like(sorted_slots)
        following[:-1] = sorted_slots[1:]
        last = ~same_as_next
        following[last] = self._head[sorted_kids[last]]
        self._next[sorted_slots] = following
        first = np.ones(sorted_kids.size, dtype=np.bool_)
        first[1:] = last[:-1]
        self._head[sorted_kids[first]] = sorted_slots[first]

    def _grow(self, count: int) -> int:
        """Reserve ``count`` new slots at the end; returns the first."""
        first = self._size
        needed = first + count
        if needed > self._alive.size:
            capacity = max(needed, 2 * self._alive.size)
            words = np.zeros((_WORDS, capacity), dtype=np.uint64)
            words[:, :first] = self._words[:, :first]
            self._words = words
            self._alive = _grown(self._alive, capacity, False)
            self._slot_kid = _grown(self._slot_kid, capacity, -1)
            self._next = _grown(self._next, capacity, -1)
        self._size = needed
        return first

    def _release(self, slot: int) -> None:
        self._removed += 1
        self._alive[slot] = False
        self._slot_kid[slot] = -1
        self._next[slot] = -1
        self._free.append(slot)
        self._count -= 1

    def _delta_limit(self) -> int:
        return min(max(_DELTA_MIN, self._n_base // 16), _DELTA_MAX)

    def _add_to_delta(self, slots: _IntArray) -> None:
        end = self._delta_entries + int(slots.size)
        if end > self._delta_slots.size:
            self._delta_slots = _grown(self._delta_slots, max(2 * self._delta_slots.size, end), 0)
        self._delta_slots[self._delta_entries : end] = slots
        self._delta_entries = end
        if self._delta_entries > self._delta_limit():
            self._rebuild()

    def _rebuild(self) -> None:
        """Rebuild the base tables from every live slot; empty the delta."""
        slots = np.flatnonzero(self._alive[: self._size]).astype(np.int32)
        n = int(slots.size)
        # One contiguous row per table: substring j of every live slot.
        substrings = np.ascontiguousarray(_substrings(self._words, slots).T)
        order = np.empty(_TABLES * n, dtype=np.int32)
        counts = np.empty(_TABLES * _BUCKETS, dtype=np.int64)
        for j in range(_TABLES):
            column = substrings[j]
            # Stable sort of uint16 is a radix sort in numpy: O(n).
            order[j * n : (j + 1) * n] = slots[np.argsort(column, kind="stable")]
            counts[j * _BUCKETS : (j + 1) * _BUCKETS] = np.bincount(column, minlength=_BUCKETS)
        starts = np.zeros(_TABLES * _BUCKETS + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        self._order, self._starts, self._n_base = order, starts, n
        self._delta_entries = self._delta_sorted = 0
        self._delta_keys = np.zeros(0, dtype=np.intp)
        self._delta_order = np.zeros(0, dtype=np.intp)
        self._delta_starts = None


_EMPTY: Final = np.zeros(0, dtype=np.intp)


def _nearest(
    count: int, queries: list[int], kids: list[int], distances: list[int], key_of: list[CaseId]
) -> list[list[tuple[CaseId, int]]]:
    """Per query (0 .. count-1), each key found with its smallest distance,
    sorted by distance then key, from parallel lists of hits."""
    best: list[dict[int, int]] = [{} for _ in range(count)]
    for query, kid, distance in zip(queries, kids, distances, strict=True):
        if distance < best[query].get(kid, _BITS + 1):
            best[query][kid] = distance
    found = [[(key_of[k], d) for k, d in one.items()] for one in best]
    for one in found:
        one.sort(key=lambda pair: (pair[1], pair[0]))
    return found


def _search_chunk(
    view: _View, rows: npt.NDArray[np.uint8], masks: _IntArray, limit: int
) -> list[list[tuple[CaseId, int]]]:
    """Search a few queries (see _QUERY_CHUNK) over one view."""
    count = rows.shape[0]
    # Probe buckets: in table j, each query's substring XOR each mask.
    substrings = rows.view(np.uint16).astype(np.intp)
    probes = (substrings[:, :, None] ^ masks[None, None, :]) + _TABLE_BASE[None, :, :]
    candidates, queries = _candidates(view, probes.reshape(count, -1))
    wanted = np.ascontiguousarray(rows.view(np.uint64).T)
    distances = np.zeros(candidates.size, dtype=np.int16)
    queries, candidates, distances = _narrow(
        view.words, wanted, queries, candidates, distances, 0, limit
    )
    hit = view.alive[candidates]
    return _nearest(
        count,
        queries[hit].tolist(),
        view.slot_kid[candidates[hit]].tolist(),
        distances[hit].tolist(),
        view.key_of,
    )


def _narrow(
    words: npt.NDArray[np.uint64],
    wanted: npt.NDArray[np.uint64],
    queries: _IntArray,
    slots: _IntArray,
    distances: npt.NDArray[np.int16],
    first_word: int,
    limit: int,
) -> tuple[_IntArray, _IntArray, npt.NDArray[np.int16]]:
    """The (query, slot) pairs still within ``limit`` once the words from
    ``first_word`` on are added to their ``distances``; both hash arrays are
    word-major (``words[w][slot]``, ``wanted[w][query]``).

    A word at a time: a random candidate is already too far after the first
    word about half the time, and after the second almost always, so the
    later (random, cache-missing) reads are for near matches only, and each
    word of the pairs is one contiguous gather.
    """
    for word in range(first_word, _WORDS):
        distances = distances + np.bitwise_count(
            np.take(words[word], slots) ^ np.take(wanted[word], queries)
        )
        near = np.flatnonzero(distances <= limit)
        if near.size < distances.size:
            queries, slots, distances = queries[near], slots[near], distances[near]
    return queries, slots, distances


def _substrings(
    words: npt.NDArray[np.uint64], slots: npt.NDArray[np.integer[Any]]
) -> npt.NDArray[np.uint16]:
    """The sixteen 16-bit substrings of each slot's hash, one row per slot,
    in the order of the hash's bytes (as a query's bytes viewed as uint16)."""
    return np.ascontiguousarray(words[:, slots].T).view(np.uint16)


def _candidates(view: _View, probes: _IntArray) -> tuple[_IntArray, _IntArray]:
    """Slots in the probed buckets of each query (rows of ``probes``),
    and the query each belongs to. Slots may repeat; dead ones are included."""
    count = probes.shape[0]
    flat = probes.ravel()
    found: list[tuple[_IntArray, _IntArray]] = []
    if view.n_base:
        low = view.starts[flat]
        found.append(_ranges(low, view.starts[flat + 1] - low, view.order, count))
    if view.delta_starts is not None:
        first = view.delta_starts[flat]
        found.append(_ranges(first, view.delta_starts[flat + 1] - first, view.delta_order, count))
    elif view.delta_keys.size:
        low = np.searchsorted(view.delta_keys, flat, side="left")
        high = np.searchsorted(view.delta_keys, flat, side="right")
        found.append(_ranges(low, high - low, view.delta_order, count))
    found = [pair for pair in found if pair[0].size]
    if not found:
        return _EMPTY, _EMPTY
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def _grown(array: npt.NDArray[_T], capacity: int, fill: object) -> npt.NDArray[_T]:
    """A copy of ``array`` extended to ``capacity`` with ``fill``."""
    bigger = np.full(capacity, fill, dtype=array.dtype)
    bigger[: array.size] = array
    return bigger
