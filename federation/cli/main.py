"""``hfed``: run a node, manage its database, and run a local test network.

Every command group is registered lazily (federation.cli.lazy): its module,
and the gRPC, protocol and storage code it needs, is imported only when the
command runs, so that ``hfed --help`` and simple commands start quickly.
The short help shown by ``hfed --help`` is kept here;
tests/cli/test_startup.py checks it against each command's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from federation import __version__
from federation.cli.lazy import LazyGroup, lazy_map

COMMANDS = lazy_map(
    [
        (
            "audit",
            "federation.cli.audit:audit",
            "Show (or export with --format csv) who called or did what, on which cases, when.",
        ),
        ("ca", "federation.cli.network:ca", "The network CA (kept by the secretariat, offline)."),
        ("case", "federation.cli.cases:case", "Look at cases held by this hotline's node."),
        (
            "console",
            "federation.cli.console:console",
            "Serve the analysts' web console for this hotline's node.",
        ),
        (
            "conformance",
            "conformance.cli:conformance",
            "Check that an HFP v1 node speaks the protocol, black-box, over the wire.",
        ),
        ("db", "federation.cli.db:db", "Database schema management, backup and restore."),
        (
            "devnet",
            "federation.cli.devnet:devnet",
            "A complete HFP test network on loopback (keys, CA, roster, nodes).",
        ),
        ("keys", "federation.cli.network:keys", "A node's signing keys."),
        (
            "liaison",
            "federation.cli.liaison.commands:liaison",
            "Police liaison: see and act on referrals at your hotline's node.",
        ),
        (
            "member",
            "federation.cli.network:member",
            "A member's own keys and its membership request.",
        ),
        ("node", "federation.cli.network:node", "A member's node."),
        ("outbox", "federation.cli.outbox:outbox", "Delivery queues to peer nodes."),
        (
            "report",
            "federation.cli.report_group:report",
            "Submit reports to this hotline's node, and see what became of them.",
        ),
        (
            "root",
            "federation.cli.network:root",
            "Root keys: each holder makes and keeps one, offline.",
        ),
        (
            "roster",
            "federation.cli.roster:roster",
            "Make, sign, check and publish the network's roster.",
        ),
        (
            "stats",
            "federation.cli.stats:stats",
            "Cases by status and country, time to removal (median, p90, share within 72 h), "
            "and cases still open 72 h after their first report.",
        ),
    ]
)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hfed")
def cli() -> None:
    """hotline-federation: exchange signed abuse-material URL reports between hotlines.

    Start with `hfed devnet init DIR` and `hfed devnet up DIR` for a local test
    network, or `hfed serve --config FILE` to run one node.

    Exit status: 0 success, 1 failure (the command ran and could not do what
    was asked), 2 usage error (bad option, argument or combination).
    """


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    envvar="HFED_CONFIG",
    help="Node configuration file (TOML; or set HFED_CONFIG).",
)
def serve(config_path: Path) -> None:
    """Run a node until SIGTERM or Ctrl-C (then shut down gracefully)."""
    from federation.cli.db import node_config
    from federation.node.server import serve as run
    from federation.runtime.logs import configure_logging
    from federation.store.migrate import SchemaError

    config = node_config(config_path)
    configure_logging(config.log.format, config.log.level)
    try:
        run(config, config_path)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hfed")


if __name__ == "__main__":
    main()
    sys.exit(0)
