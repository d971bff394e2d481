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
from sqlalchemy.orm import Session

from federation.cli.connect import config_for, node_options
from federation.cli.output import FORMAT_OPTION, Format, emit, note_truncated
from federation.cli.times import iso, when_callback
from federation.store import audit as store
from federation.store import operator_audit
from federation.store.database import Database

COLUMNS = ("at", "log", "who", "call", "outcome", "calls", "cases", "detail")


def _row(log: str, at: datetime, who: str, rpc: str, outcome: str, **rest: Any) -> dict[str, Any]:
    return {
        "at": iso(at),
        "log": log,
        "who": who,
        "call": rpc,
        "outcome": outcome,
        **rest,
    }


def _liaison(
    session: Session, since: datetime | None, who: str, limit: int
) -> list[dict[str, Any]]:
    return [
        _row(
            "liaison",
            r.at,
            r.member_id,
            r.rpc,
            r.outcome,
            cases=" ".join(r.case_ids),
            detail=r.detail,
            calls=r.calls,
        )
        for r in store.entries(session, since, who, limit)
    ]


def _operator(
    session: Session, since: datetime | None, who: str, limit: int
) -> list[dict[str, Any]]:
    return [
        _row(
            "operator", r.at, r.analyst, r.rpc, r.outcome, cases=r.case_id, detail=r.detail, calls=1
        )
        for r in operator_audit.entries(session, since, who, limit)
    ]


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
    db = Database(config_for(config_path, devnet_dir, member).database_url)
    try:
        with db.read() as session:
            records = []
            if which in ("both", "liaison") and not analyst:
                records += _liaison(session, since, liaison, limit + 1)
            if which in ("both", "operator") and not liaison:
                records += _operator(session, since, analyst, limit + 1)
    finally:
        db.dispose()
    records.sort(key=lambda r: r["at"])
    emit(fmt, COLUMNS, records[:limit])
    if len(records) > limit:
        note_truncated(limit, "entries", "--since, --liaison, --analyst, --log")
