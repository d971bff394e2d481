"""Every command that takes a node's configuration also reads HFED_CONFIG.

An operator who exported HFED_CONFIG once expects every command about that
node to find it; before this test, `roster status`, `roster publish`,
`keys rotate`, `db ...` and `serve` insisted on --config.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

from federation.cli.main import cli


def _commands(group: click.Group, path: str = "hfed") -> Iterator[tuple[str, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_every_config_option_reads_hfed_config() -> None:
    checked, wrong = 0, []
    for where, command in _commands(cli):
        for param in command.params:
            if isinstance(param, click.Option) and "--config" in param.opts:
                checked += 1
                if param.envvar != "HFED_CONFIG":
                    wrong.append(where)
    assert checked >= 10, f"only {checked} commands take --config: did the walk find them all?"
    assert wrong == []
