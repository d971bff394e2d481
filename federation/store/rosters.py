"""Repository of installed rosters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.store.models import RosterRow


def latest_roster(session: Session) -> bytes | None:
    """The serialized SignedRoster with the highest installed version."""
    return session.scalar(
        select(RosterRow.signed_roster).order_by(RosterRow.version.desc()).limit(1)
    )


def save_roster(session: Session, version: int, signed_roster: bytes, now: datetime) -> None:
    """Record a newly installed roster."""
    # merge, not add: a deliberately faulty node (accept-stale-roster) may
    # install a version it already holds.
    session.merge(RosterRow(version=version, signed_roster=signed_roster, installed_at=now))
