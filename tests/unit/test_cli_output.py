"""Terminal output never passes a peer's control characters through."""

from __future__ import annotations

import pytest

from federation.cli.output import print_table, printable


def test_control_characters_are_shown_not_obeyed() -> None:
    assert printable("notice\x1b]0;owned\x07 sent\x9b2J") == "notice\\x1b]0;owned\\x07 sent\\x9b2J"
    assert printable("plain text, é and ü") == "plain text, é and ü"


def test_table_cells_are_made_printable(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(("SEQ", "NOTE"), [(1, "removed\x1b[2J\r\nfake line")])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "removed\\x1b[2J\\x0d\\x0afake line" in out
