"""``hfed liaison``: the police liaison's command-line client.

A client of the node's LiaisonService over mutual TLS; it never touches a
node's database. May use ``wire``, ``peers.channel`` and generated code.

``commands`` holds the click commands; ``session`` reaches the node and
explains failures; ``follower`` follows the event stream for ``watch``;
``formatting`` turns messages into rows, lines and CSV; ``profile`` reads
the liaison's profile and keeps the watch's place.
"""

from federation.cli.liaison.commands import liaison
from federation.cli.liaison.session import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNREACHABLE

__all__ = ["EXIT_NOT_FOUND", "EXIT_REFUSED", "EXIT_UNREACHABLE", "liaison"]
