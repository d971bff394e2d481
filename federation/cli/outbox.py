"""``hfed outbox``: what this node still owes its peers, and what they refused.

Reads the node's database directly, so it runs on the node's host with the
node's configuration file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from federation.cli.connect import config_for, node_options
from federation.cli.output import FORMAT_OPTION, Format, emit, note_truncated
from federation.cli.times import iso, when_callback
from federation.runtime.clock import utc_now
from federation.store import outbox as store
from federation.store.database import Database


def _database(config_path: Path | None, devnet_dir: Path | None, member: str | None) -> Database:
    return Database(config_for(config_path, devnet_dir, member).database_url)


@click.group()
def outbox() -> None:
    """Delivery queues to peer nodes."""


@outbox.command()
@node_options
@FORMAT_OPTION
def status(
    config_path: Path | None, devnet_dir: Path | None, member: str | None, fmt: Format
) -> None:
    """Per peer: items pending, delivered, rejected, and the retry schedule."""
    db = _database(config_path, devnet_dir, member)
    now = utc_now()
    with db.read() as session:
        states = store.queue_states(session)
    rows: list[dict[str, Any]] = [
        {
            "peer": s.destination,
            "pending": s.pending,
            "delivered": s.delivered,
            "rejected": s.rejected,
            "oldest_pending_s": round((now - s.oldest_pending).total_seconds())
            if s.oldest_pending
            else "",
            "failures": s.failures,
            "retry_in_s": max(0, round((s.retry_at - now).total_seconds())) if s.retry_at else "",
            "last_error": s.last_error or "",
        }
        for s in states
    ]
    emit(
        fmt,
        (
            "peer",
            "pending",
            "delivered",
            "rejected",
            "oldest_pending_s",
            "failures",
            "retry_in_s",
            "last_error",
        ),
        rows,
    )
    db.dispose()


@outbox.command()
@node_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@FORMAT_OPTION
def rejected(
    config_path: Path | None, devnet_dir: Path | None, member: str | None, limit: int, fmt: Format
) -> None:
    """Items a peer refused, with the reason from its signed receipt (newest first)."""
    from federation.oversight import refused_items

    db = _database(config_path, devnet_dir, member)
    with db.read() as session:
        items, more = refused_items(session, limit)
    rows = [
        {
            "peer": item.member_id,
            "item_id": item.item_id,
            "reason": item.reason.name if item.reason else "",
            "detail": item.detail,
            "at": iso(item.refused_at) if item.refused_at else "",
        }
        for item in items
    ]
    emit(fmt, ("peer", "item_id", "reason", "detail", "at"), rows)
    db.dispose()
    if more:
        note_truncated(limit, "refused items")


@outbox.command()
@node_options
@click.option("--to", "peer", required=True, help="The peer that restored a backup.")
@click.option(
    "--since",
    required=True,
    metavar="WHEN",
    callback=when_callback,
    help="Resend what was delivered to it from then on: a date, a time (UTC unless an "
    "offset is given) or a duration ago (12h).",
)
def redeliver(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    peer: str,
    since: datetime,
) -> None:
    """Resend to PEER every item delivered to it since SINCE (after it restored a backup).

    Safe to run while this node runs and to repeat: the peer answers an item it
    still holds with the receipt it stored, and files the ones it lost.
    """
    db = _database(config_path, devnet_dir, member)
    with db.write() as session:
        count = store.redeliver(session, peer, since)
    db.dispose()
    click.echo(f"{count} items queued again for {peer}")
