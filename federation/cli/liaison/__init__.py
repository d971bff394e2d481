"""``hfed liaison``: the police liaison's command-line client.

A client of the node's LiaisonService over mutual TLS; it never touches a
node's database. May use ``wire``, ``peers.channel`` and generated code.
"""

from federation.cli.liaison.commands import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    liaison,
)

__all__ = ["EXIT_NOT_FOUND", "EXIT_REFUSED", "EXIT_UNREACHABLE", "liaison"]
