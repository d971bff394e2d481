"""Filing reports into cases at the responsible node (protocol section 5).

One open case per canonical URL (the database enforces it); a later report
of the URL joins the case; a report after a takedown opens a new case that
points back at the old one; content hashes link cases, never merge them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from federation.core.case import CaseEventKind
from federation.core.case_status import REAPPEARANCE_AFTER, CaseStatus
from federation.core.ids import new_uuid7
from federation.core.pdq_index import PdqIndex
from federation.core.reasons import Outcome
from federation.core.report import HashAlgorithm, Report
from federation.status import Fanout, StatusBook
from federation.store import cases as store
from federation.store.database import Database
from federation.store.models import CaseRow

#: Algorithms whose values link cases on exact equality.
EXACT_LINK_ALGORITHMS = frozenset(
    {HashAlgorithm.SHA256, HashAlgorithm.SHA1, HashAlgorithm.MD5, HashAlgorithm.PHOTODNA}
)


@dataclass(frozen=True, slots=True)
class Filed:
    """Where a report ended up."""

    outcome: Outcome
    case_id: str


@dataclass(slots=True)
class FilingBatch:
    """PDQ hashes added to the in-memory index during one transaction.

    The index is updated as reports are filed, so that near matches inside
    one batch link too; if the transaction rolls back, ``undo`` takes them out.
    """

    added: list[tuple[str, bytes]] = field(default_factory=list)
    #: Peers that got outbox items (status fan-out) in this transaction.
    fanout: Fanout = field(default_factory=Fanout)


def url_key(canonical_url: str) -> bytes:
    """The indexed key of a canonical URL."""
    return hashlib.sha256(canonical_url.encode()).digest()


class CaseBook:
    """Creates and joins cases; owns the PDQ near-match index."""

    def __init__(
        self,
        member_id: str,
        statuses: StatusBook,
        pdq_threshold: int = 31,
        new_id: Callable[[], str] = new_uuid7,
    ) -> None:
        self.member_id = member_id
        self.statuses = statuses
        self.pdq = PdqIndex(pdq_threshold)
        self._new_id = new_id
        self._lock = threading.Lock()

    def load(self, db: Database) -> None:
        """Fill the PDQ index from storage (at start-up)."""
        with db.read() as session:
            self.pdq.add_many(store.all_hashes(session, HashAlgorithm.PDQ))

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
        """Create or join the case for ``report`` in the caller's transaction.

        ``hosting_country`` overrides the report's own when a case elsewhere
        was MOVED here. A new case gets its first update (RECEIVED); a member
        whose report joins a case for the first time is sent its history.
        """
        key = url_key(canonical)
        case = store.find_open_case(session, key)
        if case is not None:
            outcome = Outcome.DUPLICATE
            new_reporter = report.origin_member_id not in store.reporters(session, case.case_id)
            case.updated_at = now
            case.first_reported_at = min(case.first_reported_at or now, report.created_at)
            store.append_event(session, case, CaseEventKind.REPORT_JOINED, now)
        else:
            outcome, new_reporter = Outcome.ACCEPTED, False
            country = hosting_country or report.hosting_country
            case = self._open(session, report, canonical, key, now, country)
            store.append_event(session, case, CaseEventKind.CASE_OPENED, now)
        store.add_report(
            session, case.case_id, report.report_id, report.origin_member_id, envelope, now
        )
        pairs = [(int(h.algorithm), h.value) for h in report.hashes]
        store.link_cases(session, case.case_id, self._matches(session, pairs))
        store.add_hashes(session, case.case_id, pairs)
        self._index(case.case_id, report, batch)
        if outcome is Outcome.ACCEPTED:
            self.statuses.issue(session, case, CaseStatus.RECEIVED, now, batch.fanout)
        elif new_reporter:
            self.statuses.catch_up(
                session, case.case_id, report.origin_member_id, now, batch.fanout
            )
        return Filed(outcome, case.case_id)

    def undo(self, batch: FilingBatch) -> None:
        """Take a rolled-back transaction's hashes out of the index."""
        with self._lock:
            for case_id, value in batch.added:
                self.pdq.remove_entry(case_id, value)
        batch.added.clear()

    def _open(
        self,
        session: Session,
        report: Report,
        canonical: str,
        key: bytes,
        now: datetime,
        hosting_country: str,
    ) -> CaseRow:
        previous = store.latest_closed_case(session, key)
        reappearance = (
            previous.case_id
            if previous is not None and CaseStatus(previous.status) in REAPPEARANCE_AFTER
            else None
        )
        case = CaseRow(
            case_id=self._new_id(),
            canonical_url=canonical,
            url_sha256=key,
            hosting_country=hosting_country,
            responsible_member_id=self.member_id,
            status=int(CaseStatus.RECEIVED),
            is_open=True,
            reappearance_of_case_id=reappearance,
            last_sequence=0,
            created_at=now,
            updated_at=now,
            first_reported_at=report.created_at,
        )
        session.add(case)
        session.flush()  # later reports in this batch must find it
        return case

    def _matches(self, session: Session, pairs: Iterable[tuple[int, bytes]]) -> set[str]:
        pairs = list(pairs)
        exact = [(a, v) for a, v in pairs if a in EXACT_LINK_ALGORITHMS]
        found = store.cases_with_hashes(session, exact)
        for algorithm, value in pairs:
            if algorithm == HashAlgorithm.PDQ:
                with self._lock:
                    found.update(key for key, _ in self.pdq.search(value))
        return found

    def _index(self, case_id: str, report: Report, batch: FilingBatch) -> None:
        with self._lock:
            for h in report.hashes:
                if h.algorithm is HashAlgorithm.PDQ:
                    self.pdq.add(case_id, h.value)
                    batch.added.append((case_id, h.value))
