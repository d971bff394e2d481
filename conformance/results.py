"""What one case did: its status (PASS, FAIL, XFAIL, XPASS, SKIP) and message."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.registry import Case

PASS = "PASS"  # noqa: S105 - a status, not a password
FAIL = "FAIL"
XFAIL = "XFAIL"
XPASS = "XPASS"
SKIP = "SKIP"


@dataclass(frozen=True)
class Result:
    """What one case did."""

    case: Case
    status: str
    message: str
    seconds: float

    @property
    def passed(self) -> bool:
        """PASS or XPASS."""
        return self.status in (PASS, XPASS)

    @property
    def failed(self) -> bool:
        """FAIL or XFAIL."""
        return self.status in (FAIL, XFAIL)

    def line(self) -> str:
        """The progress line."""
        text = f"{self.status} {self.case.title()}"
        return f"{text} — {self.message}" if self.message else text

    @property
    def answer(self) -> str:
        """What the node actually answered, when the message says (``got ...``)."""
        _, sep, rest = self.message.partition(", got ")
        if not sep:
            _, sep, rest = self.message.partition("got ")
        return rest if sep else ""
