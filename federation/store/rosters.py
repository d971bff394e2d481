"""Repository of installed rosters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.store._driver import insert_many
from federation.store.models import RosterRow, table_of


def latest_roster(session: Session) -> bytes | None:
    """The serialized SignedRoster with the highest installed version."""
    return session.scalar(
        select(RosterRow.signed_roster).order_by(RosterRow.version.desc()).limit(1)
    )


def all_rosters(session: Session) -> list[bytes]:
    """Every installed SignedRoster, oldest first."""
    return list(session.scalars(select(RosterRow.signed_roster).order_by(RosterRow.version)))


def save_roster(session: Session, version: int, signed_roster: bytes, now: datetime) -> None:
    """Record a newly installed roster; a version already stored is kept.

    Several processes sharing a PostgreSQL database install the same
    bootstrap roster when they start together, and a deliberately faulty
    node (accept-stale-roster) may install a version it already holds: the
    first row written for a version stands, and the others are not errors.
    """
    insert_many(
        session,
        table_of(RosterRow),
        [{"version": version, "signed_roster": signed_roster, "installed_at": now}],
        ignore_duplicates=True,
    )
