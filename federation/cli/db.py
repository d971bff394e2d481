"""``hfed db``: the node's database: schema upgrades, backups and restores.

These commands work on the database named in the node's configuration file,
directly (not through the node), so they run on the node's host.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import click

from federation.cli.times import iso
from federation.node.config import ConfigError, NodeConfig, load_config
from federation.runtime.clock import utc_now
from federation.store import backup as files
from federation.store.backup import BackupError

_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (compared, not bound)
CONFIG_HELP = "Node configuration file (TOML; or set HFED_CONFIG)."
#: How far before the newest item of a backup peers are asked to resend from,
#: to cover clock differences between nodes (resending more is harmless:
#: Deliver answers an item it holds with the receipt it stored).
REDELIVER_MARGIN = timedelta(minutes=10)

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    envvar="HFED_CONFIG",
    help=CONFIG_HELP,
)


def node_config(path: Path) -> NodeConfig:
    """The configuration file loaded, or a ClickException saying what is wrong."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def db() -> None:
    """Database schema management, backup and restore."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: Path) -> None:
    """Apply every pending migration to the node's database."""
    from federation.store.database import Database
    from federation.store.migrate import current_revision, upgrade

    database = Database(node_config(config_path).database_url)
    before = current_revision(database)
    upgrade(database)
    after = current_revision(database)
    database.dispose()
    click.echo(f"database at revision {after}" + ("" if before == after else f" (was {before})"))


def _sqlite_file(config: NodeConfig, out: Path) -> Path:
    if config.database_url.startswith("postgresql"):
        raise click.ClickException(
            "the node's database is PostgreSQL: back it up with pg_dump (custom format, "
            "consistent while the node runs), giving the password through PGPASSWORD or "
            f"~/.pgpass:\n  {files.pg_dump_command(config.database_url, out)}\n"
            "and restore it into an empty database with pg_restore --no-owner -d URL FILE"
        )
    try:
        return files.sqlite_path(config.database_url)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc


@db.command("backup")
@config_option
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(config_path: Path, out: Path) -> None:
    """Copy the node's SQLite database to the new file OUT (safe while the node runs)."""
    database = _sqlite_file(node_config(config_path), out)
    try:
        made = files.backup(database, out)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    newest = iso(made.newest_item) if made.newest_item else "none"
    click.echo(f"backed up {database} to {out} (schema {made.revision}, newest item {newest})")


def node_answers(listen: str, timeout: float = 1.0) -> bool:
    """True when something accepts connections on the node's listen address."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in _ANY_ADDRESS:  # a node listening on every address answers on loopback
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _require_stopped(config: NodeConfig, database: Path | None) -> None:
    """Refuse while the node runs: an SQLite file some process has open, or
    (for a PostgreSQL node, whose processes may run anywhere) a node answering
    on the configured listen address."""
    if database is not None and files.in_use(database):
        raise click.ClickException(
            f"{database} is in use (is the node running?): stop the node first"
        )
    if database is None and node_answers(config.listen):
        raise click.ClickException(
            f"something answers on {config.listen} (is the node running?): stop the node first"
        )


def _checked_backup(config: NodeConfig, path: Path) -> files.BackupFile:
    from federation.store.migrate import can_upgrade_from

    try:
        checked = files.check(path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if not can_upgrade_from(config.database_url, checked.revision):
        raise click.ClickException(
            f"{path} is at schema revision {checked.revision}, which this version of hfed "
            "does not know (a newer version made it): restore it with that version"
        )
    return checked


def _redeliver_hint(config: NodeConfig, checked: files.BackupFile) -> str:
    if checked.newest_item is None:
        return "the backup holds no items: ask every peer to redeliver everything"
    since = iso(checked.newest_item - REDELIVER_MARGIN)
    return (
        "before or after starting the node, ask each peer's operator to resend what this node "
        f"may have lost:\n  hfed outbox redeliver --config PEER.toml --to {config.member_id} "
        f"--since {since}"
    )


@db.command("restore")
@config_option
@click.argument("backup", type=click.Path(dir_okay=False, path_type=Path))
def db_restore(config_path: Path, backup: Path) -> None:
    """Replace the node's SQLite database by the backup file BACKUP (the node must be
    stopped); the replaced file is kept beside it, and the schema upgraded."""
    from federation.store.migrate import upgrade_url

    config = node_config(config_path)
    database = _sqlite_file(config, backup)
    _require_stopped(config, database)
    checked = _checked_backup(config, backup)
    aside = files.restore(backup, database, utc_now())
    revision = upgrade_url(config.database_url)
    click.echo(f"restored {backup} to {database} (schema {revision})")
    click.echo(f"the replaced database is kept as {aside}" if aside else "there was no database")
    click.echo(_redeliver_hint(config, checked))


@db.command("copy")
@config_option
@click.argument("target_url")
def db_copy(config_path: Path, target_url: str) -> None:
    """Copy every row of the node's database into the empty database TARGET_URL
    (e.g. from SQLite to PostgreSQL), with the node stopped. Give a PostgreSQL
    password through PGPASSWORD or ~/.pgpass rather than in the URL."""
    from federation.store.copy import CopyError, copy_rows
    from federation.store.database import Database

    config = node_config(config_path)
    sqlite = config.database_url.startswith("sqlite")
    _require_stopped(config, files.sqlite_path(config.database_url) if sqlite else None)
    source, target = Database(config.database_url), Database(target_url)
    try:
        counts = copy_rows(source, target)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source.dispose()
        target.dispose()
    click.echo(f"copied {sum(counts.values())} rows in {len(counts)} tables")
    click.echo("now set database_url in the node's configuration to the new database")
