"""``hfed audit``: the append-only records of police liaison calls and of analysts' actions.

Reads the node's database directly, so it runs on the node's host with the
node's configuration file. Both logs are shown together, oldest first: the
liaison audit (every LiaisonService call) and the operator audit (every
HotlineService call the console made for a named analyst).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from federation.cli.connect import config_for, node_options
from federation.cli.output import FORMAT_OPTION, Format, emit, note_truncated
from federation.cli.times import iso, when_callback
from federation.oversight import AuditEntry, AuditLog, audit_entries
from federation.store.database import Database

COLUMNS = ("at", "log", "who", "call", "outcome", "calls", "cases", "detail")


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "log": entry.log.value,
        "who": entry.who,
        "call": entry.rpc,
        "outcome": entry.outcome,
        "calls": entry.calls,
        "cases": " ".join(entry.case_ids),
        "detail": entry.detail,
    }


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
@click.option("--analyst", default="", help="Only actions of this console analyst.")
@click.option(
    "--log",
    "which",
    type=click.Choice(["both", "liaison", "operator"]),
    default="both",
    show_default=True,
    help="Which audit to show.",
)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@FORMAT_OPTION
def audit(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    since: datetime | None,
    liaison: str,
    analyst: str,
    which: str,
    limit: int,
    fmt: Format,
) -> None:
    """Show (or export with --format csv) who called or did what, on which cases, when."""
    if liaison and analyst:
        raise click.UsageError("give --liaison or --analyst, not both")
    log = AuditLog(which)
    if liaison or analyst:  # a liaison is only in the one audit, an analyst in the other
        log = AuditLog.LIAISON if liaison else AuditLog.OPERATOR
        if which not in ("both", log.value):
            emit(fmt, COLUMNS, [])
            return
    db = Database(config_for(config_path, devnet_dir, member).database_url)
    try:
        with db.read() as session:
            entries, more = audit_entries(session, log, since, liaison or analyst, limit)
    finally:
        db.dispose()
    emit(fmt, COLUMNS, [_row(e) for e in entries])
    if more:
        note_truncated(limit, "entries", "--since, --liaison, --analyst, --log")
