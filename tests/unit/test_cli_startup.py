"""``hfed`` starts without loading what only some commands need.

Not timed (bench/startup.py prints the times): the test checks which
modules a start-up imports, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from federation.cli.lazy import load
from federation.cli.main import COMMANDS, cli
from federation.cli.report_group import REPORT_COMMANDS

#: Libraries that cost most of a second to import and that --help never needs.
HEAVY = ("grpc", "sqlalchemy", "google.protobuf", "pydantic", "structlog", "alembic", "hfp")

_PROBE = """
import json, sys
from federation.cli.main import cli
try:
    cli(ARGS, prog_name="hfed")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported(*args: str) -> set[str]:
    probe = _PROBE.replace("ARGS", repr(list(args)))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["case", "--help"], ["report", "--help"]]
)
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    modules = _imported(*args)
    loaded = sorted(
        m for m in modules for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")
    )
    assert loaded == [], f"hfed {' '.join(args)} imported {loaded[:5]}"


def test_help_lists_every_command_with_its_own_short_help() -> None:
    context = click.Context(cli)
    for name, entry in COMMANDS.items():
        command = load(entry.target)
        assert command.name == name
        assert entry.short_help == command.get_short_help_str(limit=1000), name
    for name, entry in REPORT_COMMANDS.items():
        assert entry.short_help == load(entry.target).get_short_help_str(limit=1000), name
    listed = cli.get_help(context)
    for name in [*COMMANDS, "serve"]:
        assert f"\n  {name} " in listed


def test_a_lazy_command_runs() -> None:
    result = CliRunner().invoke(cli, ["devnet", "--help"])
    assert result.exit_code == 0 and "init" in result.output
