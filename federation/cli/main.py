"""``hfed``: run a node, manage its database, and run a local test network."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from federation import __version__
from federation.node.config import ConfigError, load_config
from federation.runtime.logs import configure_logging

CONFIG_HELP = "Node configuration file (TOML)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hfed")
def cli() -> None:
    """hotline-federation: exchange signed abuse-material URL reports between hotlines.

    Start with `hfed devnet init DIR` and `hfed devnet up DIR` for a local test
    network, or `hfed serve --config FILE` to run one node.
    """


def _config(path: Path):  # type: ignore[no-untyped-def]
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(path_type=Path), help=CONFIG_HELP
)
def serve(config_path: Path) -> None:
    """Run a node until SIGTERM or Ctrl-C (then shut down gracefully)."""
    from federation.node.server import serve as run
    from federation.store.migrate import SchemaError

    config = _config(config_path)
    configure_logging(config.log.format, config.log.level)
    try:
        run(config)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option(
    "--config", "config_path", required=True, type=click.Path(path_type=Path), help=CONFIG_HELP
)
def db_upgrade(config_path: Path) -> None:
    """Apply every pending migration to the node's database."""
    from federation.store.database import Database
    from federation.store.migrate import current_revision, upgrade

    database = Database(_config(config_path).database_url)
    before = current_revision(database)
    upgrade(database)
    after = current_revision(database)
    database.dispose()
    click.echo(f"database at revision {after}" + ("" if before == after else f" (was {before})"))


from federation.cli.audit import audit  # noqa: E402
from federation.cli.cases import case  # noqa: E402
from federation.cli.devnet import devnet  # noqa: E402
from federation.cli.liaison import liaison  # noqa: E402
from federation.cli.network import COMMANDS as NETWORK_COMMANDS  # noqa: E402
from federation.cli.outbox import outbox  # noqa: E402
from federation.cli.reports import report  # noqa: E402
from federation.cli.roster import roster  # noqa: E402
from federation.cli.stats import stats  # noqa: E402

for group in (devnet, report, case, outbox, stats, audit, liaison, roster, *NETWORK_COMMANDS):
    cli.add_command(group)

from conformance.cli import conformance  # noqa: E402 (loads only click; the harness loads on use)

cli.add_command(conformance)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hfed")


if __name__ == "__main__":
    main()
    sys.exit(0)
