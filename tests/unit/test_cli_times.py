"""One time format and one --since/--until syntax for every command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner

from federation.cli.protos import message_json
from federation.cli.times import check_window, iso, when_callback, window_options
from hfp.v1 import case_pb2, status_pb2


def test_iso_is_utc_with_z_for_aware_and_naive_times() -> None:
    aware = datetime(2026, 3, 1, 13, 30, tzinfo=UTC) + timedelta(microseconds=5)
    assert iso(aware) == "2026-03-01T13:30:00Z"
    assert iso(datetime(2026, 3, 1, 13, 30)) == "2026-03-01T13:30:00Z"
    plus_two = datetime.fromisoformat("2026-03-01T15:30:00+02:00")
    assert iso(plus_two) == "2026-03-01T13:30:00Z"


@click.command()
@window_options("things")
def _window(since: datetime | None, until: datetime | None) -> None:
    check_window(since, until)
    click.echo(f"{since and iso(since)} {until and iso(until)}")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--since", "7d"], 0),
        (["--since", "12h", "--until", "30m"], 0),
        (["--since", "2026-01-01", "--until", "2026-01-02T12:00"], 0),
        (["--since", "2026-01-01T00:00:00+01:00"], 0),
        (["--since", "yesterday"], 2),
        (["--since", "14"], 2),  # days or hours: not guessed
        (["--since", "1d", "--until", "2d"], 2),  # since after until
        (["--since", "2026-01-02", "--until", "2026-01-02"], 2),
    ],
)
def test_window_options_accept_one_syntax(args: list[str], code: int) -> None:
    result = CliRunner().invoke(_window, args)
    assert result.exit_code == code, result.output
    if code == 2:
        assert "Invalid value for '--since'" in result.output or "--until" in result.output


def test_a_duration_counts_back_from_now() -> None:
    moment = when_callback(click.Context(_window), _window.params[0], "2h")
    assert moment is not None
    assert abs(datetime.now(UTC) - timedelta(hours=2) - moment) < timedelta(seconds=5)
    assert when_callback(click.Context(_window), _window.params[0], None) is None


def test_case_json_writes_64_bit_counts_as_numbers() -> None:
    case = case_pb2.Case(case_id="c", report_count=3, history_count=2, status=2)
    case.history.add(sequence=7, status=status_pb2.CASE_STATUS_RECEIVED)
    case.created_at.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    written = message_json(case)
    assert '"report_count": 3' in written and '"sequence": 7' in written
    assert '"created_at": "2026-01-01T00:00:00Z"' in written
