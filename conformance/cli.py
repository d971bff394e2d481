"""``hfed conformance``: the click command (also ``python -m conformance``).

This module imports only click at load time, so registering it in the
``hfed`` CLI costs nothing until the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

NETWORK_HELP = "Test network directory (holds manifest.json; see HFP v1 section 9)."


@click.group(
    "conformance",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--network",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help=NETWORK_HELP,
)
@click.option(
    "--target",
    metavar="FILE|MEMBER",
    help="Target file (TOML/JSON, docs/conformance.md) describing the node under test; "
    "with --network, a member id instead (default: the first hotline node).",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here."
)
@click.option(
    "--json",
    "json_report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report here.",
)
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Markdown report here.",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="PATTERN",
    help="Run only case ids matching this glob or regex (repeatable, comma-separated).",
)
@click.option(
    "--xfail",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File of case ids expected to fail (one per line, # comments).",
)
@click.option("--list", "list_only", is_flag=True, help="List the cases and exit.")
@click.pass_context
def conformance(
    ctx: click.Context,
    network: Path | None,
    target: str | None,
    junit: Path | None,
    json_report: Path | None,
    markdown: Path | None,
    only: tuple[str, ...],
    xfail: Path | None,
    list_only: bool,
) -> None:
    """Check that an HFP v1 node speaks the protocol, black-box, over the wire.

    Plays the network's `conformance` member: as a client of the target node
    and as a peer node on the endpoint the target file (or the devnet
    manifest) reserves for it. The
    last line is `N passed, M failed`; the exit status is 0 only when every
    case not listed in --xfail passed.
    """
    if ctx.invoked_subcommand is not None:
        return
    from conformance import runner  # noqa: PLC0415 - keeps `hfed --help` fast

    if list_only:
        _list_cases(only)
        return
    from conformance.reports import ReportPaths  # noqa: PLC0415
    from conformance.vectors_manifest import VectorsError  # noqa: PLC0415

    if network is None and target is None:
        raise click.UsageError(
            "give --target FILE or --network DIR (create one: hfed devnet init DIR)"
        )
    try:
        status = runner.run(
            network,
            target=target,
            only=only,
            xfail=xfail,
            junit=junit,
            reports=ReportPaths(json_report, markdown),
        )
    except (runner.UsageError, VectorsError) as exc:
        raise click.UsageError(str(exc)) from exc
    ctx.exit(status)


def _list_cases(only: tuple[str, ...]) -> None:
    from conformance import runner  # noqa: PLC0415
    from conformance.cases import all_cases  # noqa: PLC0415

    try:
        cases = runner.select(all_cases(), only)
    except runner.UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    for case in cases:
        kind = "must-reject" if case.must_reject else "must-accept"
        click.echo(f"{case.id:<8} §{case.section:<3} {kind:<12} {case.description}")
    rejects = sum(c.must_reject for c in cases)
    click.echo(f"{len(cases)} cases, {rejects} must-reject")


@conformance.command("vectors")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the vectors to.",
)
@click.option(
    "--network",
    "vector_network",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Write vectors for this test network (default: the fixed, network-free set).",
)
@click.option("--target", "vector_target", metavar="MEMBER", help="Receiving member.")
def vectors(out: Path, vector_network: Path | None, vector_target: str | None) -> None:
    """Write signed test vectors (valid and _fail variants) for other implementations."""
    from conformance import vectors as make  # noqa: PLC0415
    from conformance.network import ManifestError  # noqa: PLC0415

    try:
        if vector_network is None:
            written = make.write_fixed(out)
        else:
            written = make.write_for_network(out, vector_network, vector_target)
    except (ManifestError, make.VectorError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{written} vectors written to {out}")


def main() -> None:
    """Entry point of ``python -m conformance``."""
    conformance(prog_name="python -m conformance")
