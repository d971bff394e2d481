"""Filing reports into cases at the responsible node (protocol section 5).

One open case per canonical URL (the database enforces it); a later report
of the URL joins the case; a report after a takedown opens a new case that
points back at the old one; content hashes link cases, never merge them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from federation.core.case import CaseEventKind
from federation.core.case_status import REAPPEARANCE_AFTER, CaseStatus
from federation.core.ids import CaseId, MemberId, ReportId, new_uuid7
from federation.core.pdq_index import PdqIndex, PdqSnapshot, pairs_within
from federation.core.reasons import Outcome
from federation.core.report import HashAlgorithm, Report
from federation.status import Fanout, Join, OpenedCase, StatusBook
from federation.store import cases as store
from federation.store.cases import CaseRecord, ReportRecord
from federation.store.database import Database

#: Case events read per query when following other processes' filings.
FOLLOW_PAGE = 5000

#: Algorithms whose values link cases on exact equality.
EXACT_LINK_ALGORITHMS = frozenset(
    {HashAlgorithm.SHA256, HashAlgorithm.SHA1, HashAlgorithm.MD5, HashAlgorithm.PHOTODNA}
)


@dataclass(frozen=True, slots=True)
class Filed:
    """Where a report ended up."""

    outcome: Outcome
    case_id: CaseId


@dataclass(slots=True)
class FilingBatch:
    """PDQ hashes added to the in-memory index during one transaction.

    The index is updated as reports are filed, so that near matches inside
    one batch link too; if the transaction rolls back, ``undo`` takes them out.
    """

    added: list[tuple[CaseId, bytes]] = field(default_factory=list)
    #: Peers that got outbox items (status fan-out) in this transaction.
    fanout: Fanout = field(default_factory=Fanout)
    #: Reports that joined an existing case and whose authors must be told
    #: (a first report in the case, or one moved here), once their receipts
    #: are signed (StatusBook.catch_up).
    joins: list[Join] = field(default_factory=list)


def url_key(canonical_url: str) -> bytes:
    """The indexed key of a canonical URL."""
    return hashlib.sha256(canonical_url.encode()).digest()


class CaseBook:
    """Creates and joins cases; owns the PDQ near-match index."""

    def __init__(
        self,
        member_id: MemberId,
        statuses: StatusBook,
        pdq_threshold: int = 31,
        new_id: Callable[[], str] = new_uuid7,
    ) -> None:
        self.member_id = member_id
        self._statuses = statuses
        self.pdq = PdqIndex(pdq_threshold)
        self._new_id = new_id
        self._lock = threading.Lock()
        #: Position in the case event log up to which cases filed by other
        #: node processes are in the index (see follow).
        self._followed = 0

    def load(self, db: Database) -> None:
        """Fill the PDQ index from storage (at start-up)."""
        with db.read() as session:
            # The position first: whatever commits between the two reads is
            # loaded now and found again by follow, which skips it then.
            self._followed = store.last_event_sequence(session)
            self.pdq.add_many(store.all_hashes(session, HashAlgorithm.PDQ))

    def follow(self, db: Database, page: int = FOLLOW_PAGE) -> int:
        """Index the PDQ hashes of cases filed since the last call, by any
        node process sharing the database; returns the events read (fewer
        than ``page``: caught up).

        The log names the cases reports opened or joined; their PDQ hashes
        not already in the index (this process filed them, or an earlier
        call added them) are added. A hash filed by another process is thus
        searched here from the first call after its commit on.
        """
        with db.read() as session:
            filed = store.filed_since(session, self._followed, page)
            held = store.hashes_of_algorithm(session, filed.case_ids, int(HashAlgorithm.PDQ))
        self._followed = filed.upto
        missing = self._not_indexed(held)
        if missing:
            with self._lock:
                self.pdq.add_many(missing)
        return filed.events

    def _not_indexed(self, entries: Sequence[tuple[CaseId, bytes]]) -> list[tuple[CaseId, bytes]]:
        """The (case, hash) entries the index does not hold yet."""
        if not entries:
            return []
        found = self.pdq.search_many([value for _, value in entries], threshold=0)
        return [
            (case_id, value)
            for (case_id, value), same in zip(entries, found, strict=True)
            if all(held != case_id for held, _ in same)
        ]

    def file(
        self,
        session: Session,
        report: Report,
        canonical: str,
        envelope: bytes,
        now: datetime,
        batch: FilingBatch,
        *,
        hosting_country: str = "",
    ) -> Filed:
        """File one report (see file_many)."""
        [filed] = self.file_many(
            session, [Filing(report, canonical, envelope, hosting_country)], now, batch
        )
        return filed

    def file_many(
        self, session: Session, filings: Sequence[Filing], now: datetime, batch: FilingBatch
    ) -> list[Filed]:
        """Create or join the case of each report, in the caller's transaction.

        Everything the batch needs from storage is read up front in a handful
        of indexed queries and everything it writes goes out in one insert per
        table: a per-report round trip would cap ingest far below what the
        signatures allow. A new case gets its first update (RECEIVED) for all
        its reporters in this batch; a member whose report joins an existing
        case for the first time is sent the case's history.
        """
        plan = _Plan(self, now, batch)
        plan.prefetch(session, filings)
        filed = [plan.file(f) for f in filings]
        opened = plan.write(session)
        self._statuses.open_cases(session, opened, now, batch.fanout)
        return filed

    @property
    def pdq_threshold(self) -> int:
        """The largest Hamming distance at which PDQ hashes link cases."""
        return self.pdq.threshold

    def new_case_id(self) -> CaseId:
        """A fresh case id."""
        return CaseId(self._new_id())

    def pdq_matches(
        self, values: Sequence[bytes], known: Sequence[PdqSearch | None] | None = None
    ) -> list[list[CaseId]]:
        """For each PDQ hash, the cases holding one within the threshold.

        ``known``: for each value, a search made before the transaction (see
        :meth:`search_pdq`); then only what was indexed since is searched
        here. At a million stored hashes the full search is most of a batch's
        transaction, so running it beforehand, beside other batches'
        transactions, keeps it out of the one section that runs alone.
        """
        searched = [
            k
            for k, v in zip(known or [None] * len(values), values, strict=True)
            if k is not None and v in k.found
        ]
        if len(searched) < len(values):
            return [[case_id for case_id, _ in found] for found in self.pdq.search_many(values)]
        matches = [list(k.found[v]) for k, v in zip(searched, values, strict=True)]
        by_snapshot: dict[PdqSnapshot, list[int]] = {}
        for index, k in enumerate(searched):
            by_snapshot.setdefault(k.snapshot, []).append(index)
        for snapshot, indexes in by_snapshot.items():
            later = self.pdq.search_since(snapshot, [values[i] for i in indexes])
            if later is None:  # the index changed in a way a log cannot tell
                return self.pdq_matches(values)
            for index, found in zip(indexes, later, strict=True):
                matches[index].extend(c for c, _ in found if c not in matches[index])
        return matches

    def search_pdq(self, values: Sequence[bytes]) -> PdqSearch:
        """Search PDQ hashes ahead of the transaction that will file them
        (see :meth:`pdq_matches`); safe to call from any thread."""
        snapshot, found = self.pdq.search_many_at(values)
        return PdqSearch(
            snapshot, {v: [c for c, _ in f] for v, f in zip(values, found, strict=True)}
        )

    def index_pdq(self, entries: Sequence[tuple[CaseId, bytes]], batch: FilingBatch) -> None:
        """Add (case_id, PDQ hash) entries to the index (undone if the batch rolls back)."""
        with self._lock:
            self.pdq.add_many(entries)
        batch.added.extend(entries)

    def undo(self, batch: FilingBatch) -> None:
        """Take a rolled-back transaction's hashes out of the index."""
        with self._lock:
            for case_id, value in batch.added:
                self.pdq.remove_entry(case_id, value)
        batch.added.clear()


@dataclass(frozen=True, slots=True)
class PdqSearch:
    """PDQ near matches found before a transaction, and the index's state then."""

    snapshot: PdqSnapshot
    #: PDQ hash -> cases within the threshold at ``snapshot``.
    found: dict[bytes, list[CaseId]]


@dataclass(frozen=True, slots=True)
class Filing:
    """One report to file.

    ``hosting_country`` overrides the report's own when a case elsewhere was
    MOVED here, and ``chain`` is then the MOVED chain it came with (see
    ReportRecord.moved_chain); ``pdq`` is the report's PDQ hashes searched
    in advance, if they were; ``traceparent`` the trace of the call that
    brought the report, kept with its case event (tracing on).
    """

    report: Report
    canonical: str
    envelope: bytes
    hosting_country: str = ""
    pdq: PdqSearch | None = None
    chain: bytes | None = None
    traceparent: str | None = None


@dataclass(slots=True)
class _NewCase:
    """A case opened in this batch: its record and who reported it so far."""

    record: CaseRecord
    #: (report_id, origin) of its reports, in the order they were filed.
    reports: list[tuple[ReportId, MemberId]]
    reporters: set[MemberId]
    #: Origin -> report id -> the MOVED chain it came with (None: not moved).
    chains: dict[MemberId, dict[ReportId, bytes | None]] = field(default_factory=dict)


class _Plan:
    """What one batch reads and writes while filing.

    Lookups come from the prefetched maps plus what earlier reports of the
    same batch created, so a batch behaves exactly as if its reports had
    been filed one at a time.
    """

    def __init__(self, book: CaseBook, now: datetime, batch: FilingBatch) -> None:
        self.book, self.now, self.batch = book, now, batch
        self.open: dict[bytes, CaseRecord] = {}
        #: Existing cases that reports joined -> their earliest report's time.
        self.joined: dict[CaseId, datetime | None] = {}
        self.closed: dict[bytes, store.ClosedCase] = {}
        self.by_hash: dict[store.HashPair, set[CaseId]] = {}
        self.reporters: dict[CaseId, set[MemberId]] = {}
        self.known_hashes: dict[CaseId, set[store.HashPair]] = {}
        self.new_cases: dict[bytes, _NewCase] = {}
        self.reports: list[ReportRecord] = []
        self.hashes: list[tuple[CaseId, int, bytes]] = []
        self.links: set[tuple[CaseId, CaseId]] = set()
        self.events: list[dict[str, object]] = []
        # PDQ hashes of the batch in order of appearance: the indexed cases
        # near each, pairs of them near each other, and the case each went to.
        self.pdq_near: list[list[CaseId]] = []
        self.pdq_pairs: list[tuple[int, int]] = []
        self.pdq_case: list[CaseId] = []
        self.pdq_new: list[tuple[CaseId, bytes]] = []

    def prefetch(self, session: Session, filings: Sequence[Filing]) -> None:
        """Read the open and closed cases, exact hashes and reporters the batch touches."""
        held = store.cases_by_url(session, {url_key(f.canonical) for f in filings})
        self.closed = {k: c.latest_closed for k, c in held.items() if c.latest_closed}
        by_id = store.case_records(
            session, (c.open_case_id for c in held.values() if c.open_case_id)
        )
        self.open = {k: by_id[c.open_case_id] for k, c in held.items() if c.open_case_id}
        self.by_hash = store.cases_by_hash(
            session,
            (
                (int(h.algorithm), h.value)
                for f in filings
                for h in f.report.hashes
                if h.algorithm in EXACT_LINK_ALGORITHMS
            ),
        )
        pdq_of = [
            (h.value, f.pdq)
            for f in filings
            for h in f.report.hashes
            if h.algorithm is HashAlgorithm.PDQ
        ]
        pdqs = [value for value, _ in pdq_of]
        self.pdq_near = self.book.pdq_matches(pdqs, [known for _, known in pdq_of])
        self.pdq_pairs = pairs_within(pdqs, self.book.pdq_threshold)
        joined = [case.case_id for case in self.open.values()]
        self.reporters = store.reporters_of(session, joined)
        self.known_hashes = store.hashes_of(session, joined)

    def file(self, filing: Filing) -> Filed:
        """File one report against the prefetched state."""
        report, key = filing.report, url_key(filing.canonical)
        existing, new = self.open.get(key), self.new_cases.get(key)
        if existing is not None:
            case_id, outcome = existing.case_id, Outcome.DUPLICATE
            self._join_existing(existing, filing)
        elif new is not None:
            case_id, outcome = new.record.case_id, Outcome.DUPLICATE
            if report.created_at < (new.record.first_reported_at or report.created_at):
                new.record = new.record._replace(first_reported_at=report.created_at)
            new.reports.append((report.report_id, report.origin_member_id))
            new.reporters.add(report.origin_member_id)
            new.chains.setdefault(report.origin_member_id, {})[report.report_id] = filing.chain
            self._event(new.record, CaseEventKind.REPORT_JOINED, filing)
        else:
            country = filing.hosting_country or report.hosting_country
            case_id, outcome = self._open(filing, key, country), Outcome.ACCEPTED
        self.reports.append(
            ReportRecord(
                case_id,
                report.report_id,
                report.origin_member_id,
                self.now,
                filing.envelope,
                filing.chain,
            )
        )
        self._hashes(case_id, report)
        return Filed(outcome, case_id)

    def write(self, session: Session) -> list[OpenedCase]:
        """Write everything the batch decided: one insert per table, in FK order;
        the cases it opened, for their first update."""
        opened = list(self.new_cases.values())
        store.insert_cases(session, [c.record for c in opened])
        store.record_joins(session, self.joined, self.now)
        store.insert_reports(session, self.reports)
        store.insert_hashes(session, self.hashes)
        self.links.update((self.pdq_case[i], self.pdq_case[j]) for i, j in self.pdq_pairs)
        store.insert_links(session, self.links)
        self.book.index_pdq(self.pdq_new, self.batch)
        store.append_events(session, self.events)
        return [
            OpenedCase(c.record.case_id, tuple(c.reports), frozenset(c.reporters), c.chains)
            for c in opened
        ]

    def _join_existing(self, case: CaseRecord, filing: Filing) -> None:
        report = filing.report
        reporters = self.reporters.setdefault(case.case_id, set())
        new = report.origin_member_id not in reporters
        if new or filing.chain is not None:
            # A moved report's author learns of its new case from us: no
            # receipt of ours reaches it (the mover got that).
            reporters.add(report.origin_member_id)
            self.batch.joins.append(
                Join(
                    case.case_id,
                    report.origin_member_id,
                    report.report_id,
                    filing.chain,
                    new,
                )
            )
        first = self.joined.get(case.case_id, case.first_reported_at)
        self.joined[case.case_id] = min(first or self.now, report.created_at)
        self._event(case, CaseEventKind.REPORT_JOINED, filing)

    def _open(self, filing: Filing, key: bytes, country: str) -> CaseId:
        previous = self.closed.get(key)
        reappearance = (
            previous.case_id
            if previous is not None and CaseStatus(previous.status) in REAPPEARANCE_AFTER
            else None
        )
        case_id = self.book.new_case_id()
        record = CaseRecord(
            case_id=case_id,
            canonical_url=filing.canonical,
            url_sha256=key,
            hosting_country=country,
            responsible_member_id=self.book.member_id,
            # Born RECEIVED at sequence 1: StatusBook.open_cases issues that update.
            status=int(CaseStatus.RECEIVED),
            is_open=True,
            reappearance_of_case_id=reappearance,
            last_sequence=1,
            created_at=self.now,
            updated_at=self.now,
            first_reported_at=filing.report.created_at,
        )
        origin, report_id = filing.report.origin_member_id, filing.report.report_id
        self.new_cases[key] = _NewCase(
            record,
            [(report_id, origin)],
            {origin},
            {origin: {report_id: filing.chain}},
        )
        self._event(record, CaseEventKind.CASE_OPENED, filing)
        return case_id

    def _event(self, case: CaseRecord, kind: CaseEventKind, filing: Filing) -> None:
        self.events.append(
            store.event_row(
                case.case_id,
                int(kind),
                case.status,
                case.hosting_country,
                self.now,
                filing.report.report_id,
                filing.traceparent,
            )
        )

    def _hashes(self, case_id: CaseId, report: Report) -> None:
        """Link the case to others with the same content, remember its hashes."""
        known = self.known_hashes.setdefault(case_id, set())
        for h in report.hashes:
            pair = (int(h.algorithm), h.value)
            if h.algorithm in EXACT_LINK_ALGORITHMS:
                holders = self.by_hash.setdefault(pair, set())
                self.links.update((case_id, other) for other in holders if other != case_id)
                holders.add(case_id)
            elif h.algorithm is HashAlgorithm.PDQ:
                self.links.update((case_id, other) for other in self.pdq_near[len(self.pdq_case)])
                self.pdq_case.append(case_id)
                if pair not in known:
                    self.pdq_new.append((case_id, h.value))
            if pair not in known:
                known.add(pair)
                self.hashes.append((case_id, *pair))
