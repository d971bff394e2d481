"""``hfed report``: the group alone, its commands loaded when they run.

``hfed report --help`` then lists them without importing gRPC and the
generated protocol code (federation.cli.lazy says why that matters).
"""

from __future__ import annotations

import click

from federation.cli.lazy import LazyGroup, lazy_map

REPORT_COMMANDS = lazy_map(
    [
        (
            "import",
            "federation.cli.reports:import_csv",
            "Submit every row of CSV_FILE; a bad row is reported, not fatal.",
        ),
        (
            "list",
            "federation.cli.our_reports:list_reports",
            "Every report this hotline sent, where it went and its latest status.",
        ),
        (
            "submit",
            "federation.cli.reports:submit",
            "Submit one report; prints where it went (new case, duplicate, forwarded).",
        ),
    ]
)


@click.group(cls=LazyGroup, lazy=REPORT_COMMANDS)
def report() -> None:
    """Submit reports to this hotline's node, and see what became of them."""
