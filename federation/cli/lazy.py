"""A click group that imports a command's module only when that command runs.

``hfed --help`` and every simple command would otherwise pay for importing
gRPC, the generated protocol code, SQLAlchemy and pydantic (about a second)
before doing anything. The pattern is the one in click's documentation
("Lazily Loading Subcommands"), with the short help kept in the map so that
the command list is shown without importing any command.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives ("package.module:attribute") and its short help."""

    target: str
    short_help: str


class LazyGroup(click.Group):
    """A group whose commands are named in ``lazy`` and imported on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, eager and lazy, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module if it is a lazy one."""
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(load(self.lazy[cmd_name].target), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, from the map's short help (nothing imported)."""
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, _shorten(self.lazy[name].short_help, limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def load(target: str) -> click.Command:
    """The click command that ``"package.module:attribute"`` names."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def _shorten(text: str, limit: int) -> str:
    """Shorten like click's short help: whole words, then "..."."""
    return click.Command(name=None, help=text).get_short_help_str(limit)


def lazy_map(entries: Sequence[tuple[str, str, str]]) -> dict[str, LazyCommand]:
    """``{name: LazyCommand}`` from ``(name, target, short help)`` rows."""
    return {name: LazyCommand(target, short_help) for name, target, short_help in entries}
