"""The one time format and the one duration syntax of every ``hfed`` command.

Times are printed as ISO 8601 in UTC with a ``Z`` (``2025-06-01T14:30:00Z``).
``--since`` / ``--until`` (and any option naming a moment) accept a date
(00:00 UTC that day), an ISO date and time (UTC unless it names an offset)
or a duration counted from now (``7d``, ``12h``, ``30m``, ``2w``, ``1d12h``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from federation.runtime.clock import utc_now

WHEN_FORMS = (
    "a date (2025-06-01), a date and time in UTC (2025-06-01T14:30) or a duration (14d, 48h)"
)

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}

F = TypeVar("F", bound=Callable[..., Any])


def parse_duration(text: str) -> timedelta | None:
    """'14d', '48h', '1d12h', '90m', '2w' → timedelta; None if not duration-shaped."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or not compact[0].isdigit():
        return None
    total, number = timedelta(), ""
    for char in compact:
        if char.isdigit():
            number += char
        elif char in _UNITS and number:
            total += int(number) * _UNITS[char]
            number = ""
        else:
            return None
    # A bare number ("14") is refused: days or hours is a guess we must not make.
    return None if number else total


def parse_when(text: str, now: datetime, *, ago: bool = False) -> datetime:
    """A moment from an ISO date/time (UTC unless it says otherwise) or a duration.

    A duration counts forward from ``now`` (``--until 14d``), or backward when
    ``ago`` (``--since 7d``). A date alone means 00:00 UTC that day.
    """
    duration = parse_duration(text)
    if duration is not None:
        return now - duration if ago else now + duration
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not {WHEN_FORMS}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """UTC time as '2025-06-01T14:30:00Z' (one format for screens and files).

    A naive datetime is taken to be UTC already (protobuf's ToDatetime())."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Click callback: the moment an option names (a duration counts back from
    now), or a usage error naming the option."""
    if value is None:
        return None
    try:
        return parse_when(value, utc_now(), ago=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def check_window(since: datetime | None, until: datetime | None) -> None:
    """A usage error when --since is not before --until."""
    if since is not None and until is not None and until <= since:
        raise click.BadParameter(
            f"{iso(until)} is not later than --since {iso(since)}", param_hint="--until"
        )


def window_options(what: str) -> Callable[[F], F]:
    """``--since`` and ``--until`` (both count back from now when durations)."""

    def add(command: F) -> F:
        command = click.option(
            "--until",
            default=None,
            callback=when_callback,
            metavar="WHEN",
            help=f"Only {what} before this (a date, UTC time, or 7d / 12h ago).",
        )(command)
        return click.option(
            "--since",
            default=None,
            callback=when_callback,
            metavar="WHEN",
            help=f"Only {what} from this on (a date, UTC time, or 7d / 12h / 30m ago).",
        )(command)

    return add
