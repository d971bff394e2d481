"""``hfed``: run a node, manage its database, and run a local test network."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from federation import __version__
from federation.cli.db import config_option, node_config
from federation.runtime.logs import configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hfed")
def cli() -> None:
    """hotline-federation: exchange signed abuse-material URL reports between hotlines.

    Start with `hfed devnet init DIR` and `hfed devnet up DIR` for a local test
    network, or `hfed serve --config FILE` to run one node.
    """


@cli.command()
@config_option
def serve(config_path: Path) -> None:
    """Run a node until SIGTERM or Ctrl-C (then shut down gracefully)."""
    from federation.node.server import serve as run
    from federation.store.migrate import SchemaError

    config = node_config(config_path)
    configure_logging(config.log.format, config.log.level)
    try:
        run(config, config_path)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc


from federation.cli.audit import audit  # noqa: E402
from federation.cli.cases import case  # noqa: E402
from federation.cli.console import console  # noqa: E402
from federation.cli.db import db  # noqa: E402
from federation.cli.devnet import devnet  # noqa: E402
from federation.cli.liaison import liaison  # noqa: E402
from federation.cli.network import COMMANDS as NETWORK_COMMANDS  # noqa: E402
from federation.cli.outbox import outbox  # noqa: E402
from federation.cli.reports import report  # noqa: E402
from federation.cli.roster import roster  # noqa: E402
from federation.cli.stats import stats  # noqa: E402

for group in (
    db,
    devnet,
    report,
    case,
    console,
    outbox,
    stats,
    audit,
    liaison,
    roster,
    *NETWORK_COMMANDS,
):
    cli.add_command(group)

from conformance.cli import conformance  # noqa: E402 (loads only click; the harness loads on use)

cli.add_command(conformance)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hfed")


if __name__ == "__main__":
    main()
    sys.exit(0)
