"""What every service that changes our cases is built with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from federation.core.ids import MemberId
from federation.core.roster import Roster
from federation.runtime.clock import Clock, utc_now
from federation.status import StatusBook
from federation.store.database import Database


@dataclass(frozen=True, slots=True)
class CaseChanges:
    """The database, the status book (every change of a case is a signed
    update), the current roster, the outbox's wake-up for the peers an
    update is queued for (called after the commit), and the clock."""

    db: Database
    statuses: StatusBook
    roster: Callable[[], Roster]
    notify_outbox: Callable[[MemberId], None]
    clock: Clock = utc_now
