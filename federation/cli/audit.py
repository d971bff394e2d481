"""``hfed audit``: the append-only record of every police liaison call.

Reads the node's database directly, so it runs on the node's host with the
node's configuration file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from federation.cli.connect import config_for, node_options
from federation.cli.output import FORMAT_OPTION, Format, emit, note_truncated
from federation.cli.times import iso, when_callback
from federation.store import audit as store
from federation.store.database import Database


@click.command()
@node_options
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    callback=when_callback,
    help="Only entries from this time on (a date, UTC time, or 7d / 12h / 30m ago).",
)
@click.option("--liaison", default="", help="Only calls by this liaison member id.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@FORMAT_OPTION
def audit(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    since: datetime | None,
    liaison: str,
    limit: int,
    fmt: Format,
) -> None:
    """Show (or export with --format csv) who called what, on which cases, when."""
    db = Database(config_for(config_path, devnet_dir, member).database_url)
    try:
        with db.read() as session:
            rows = store.entries(session, since, liaison, limit + 1)
            records = [
                {
                    "at": iso(r.at),
                    "liaison": r.member_id,
                    "call": r.rpc,
                    "outcome": r.outcome,
                    "cases": " ".join(r.case_ids),
                    "detail": r.detail,
                    "calls": r.calls,
                }
                for r in rows[:limit]
            ]
    finally:
        db.dispose()
    emit(fmt, ("at", "liaison", "call", "outcome", "calls", "cases", "detail"), records)
    if len(rows) > limit:
        note_truncated(limit, "entries", "--since, --liaison")
