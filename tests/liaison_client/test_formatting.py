"""Times, durations and how referrals and events are shown (no server needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from federation.cli.liaison.formatting import (
    event_line,
    event_record,
    export_row,
    kind_name,
    referral_row,
    status_name,
)
from federation.cli.times import parse_duration, parse_when
from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import liaison_service_pb2 as pb

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
CASE_ID = "0190c6c2-7a3b-7c4d-8e5f-123456789abc"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14d", timedelta(days=14)),
        ("48h", timedelta(hours=48)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 3D ", timedelta(days=3)),
        ("1d 6h", timedelta(days=1, hours=6)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "14", "d", "h14", "14x", "1.5d", "2026-03-01", "-3d"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14d", NOW + timedelta(days=14)),
        ("48h", NOW + timedelta(hours=48)),
        ("2026-04-01", datetime(2026, 4, 1, tzinfo=UTC)),
        ("2026-04-01T08:30", datetime(2026, 4, 1, 8, 30, tzinfo=UTC)),
        ("2026-04-01 08:30:15", datetime(2026, 4, 1, 8, 30, 15, tzinfo=UTC)),
        ("2026-04-01T08:30Z", datetime(2026, 4, 1, 8, 30, tzinfo=UTC)),
        ("2026-04-01T10:30+02:00", datetime(2026, 4, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_when_forward(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


def test_when_ago() -> None:
    assert parse_when("7d", NOW, ago=True) == NOW - timedelta(days=7)
    assert parse_when("2026-01-01", NOW, ago=True) == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["tomorrow", "14", "01/04/2026", "2026-13-01"])
def test_when_errors_show_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"a date \(2025-06-01\).*a duration \(14d, 48h\)"):
        parse_when(text, NOW)


def test_enum_names_tolerate_values_newer_than_this_client() -> None:
    assert status_name(status_pb2.CASE_STATUS_LEA_HOLD) == "LEA_HOLD"
    assert status_name(99) == "STATUS_99"
    assert kind_name(case_pb2.CASE_EVENT_KIND_CASE_OPENED) == "CASE_OPENED"
    assert kind_name(99) == "KIND_99"


def a_case(**changes: object) -> case_pb2.Case:
    case = case_pb2.Case(
        case_id=CASE_ID,
        canonical_url="https://files.example.com/a",
        hosting_country="DK",
        responsible_member_id="hotline-dk",
        status=status_pb2.CASE_STATUS_LEA_NOTIFIED,
        created_at=stamp(NOW - timedelta(hours=5)),
        reports=[
            case_pb2.CaseReport(
                report_id="r2",
                origin_member_id="hotline-nl",
                received_at=stamp(NOW - timedelta(hours=2)),
                report=report_pb2.Report(created_at=stamp(NOW - timedelta(hours=3))),
            ),
            case_pb2.CaseReport(
                report_id="r1",
                origin_member_id="hotline-dk",
                received_at=stamp(NOW - timedelta(hours=5)),
            ),
            case_pb2.CaseReport(
                report_id="r3",
                origin_member_id="hotline-nl",
                received_at=stamp(NOW - timedelta(hours=1)),
            ),
        ],
        history=[
            status_pb2.StatusUpdate(
                status=status_pb2.CASE_STATUS_RECEIVED, observed_at=stamp(NOW - timedelta(hours=5))
            ),
            status_pb2.StatusUpdate(
                status=status_pb2.CASE_STATUS_ASSESSED_ILLEGAL,
                observed_at=stamp(NOW - timedelta(hours=4)),
            ),
            status_pb2.StatusUpdate(
                status=status_pb2.CASE_STATUS_LEA_NOTIFIED,
                observed_at=stamp(NOW - timedelta(minutes=30)),
            ),
        ],
    )
    for name, value in changes.items():
        if isinstance(value, Timestamp):
            getattr(case, name).CopyFrom(value)
        else:
            setattr(case, name, value)
    return case


def test_list_row_of_a_fresh_referral() -> None:
    assert referral_row(a_case(), NOW) == {
        "case_id": CASE_ID,
        "status": "LEA_NOTIFIED",
        "country": "DK",
        "reports": 3,
        "first_reported": "2026-03-10T07:00:00Z",
        "acknowledged": "",
        "hold_until": "",
        "url": "https://files.example.com/a",
    }


def test_list_row_shows_acknowledgement_and_active_hold_only() -> None:
    held = a_case(
        police_acknowledged_at=stamp(NOW - timedelta(hours=1)),
        police_reference="DK-2026-17",
        hold_until=stamp(NOW + timedelta(days=14)),
    )
    row = referral_row(held, NOW)
    assert row["acknowledged"] == "DK-2026-17"
    assert row["hold_until"] == "2026-03-24T12:00:00Z"
    lapsed = a_case(
        police_acknowledged_at=stamp(NOW - timedelta(hours=1)),
        hold_until=stamp(NOW - timedelta(seconds=1)),
    )
    row = referral_row(lapsed, NOW)
    assert row["acknowledged"] == "yes"
    assert row["hold_until"] == ""


def test_first_reported_falls_back_to_the_case_opening() -> None:
    case = a_case()
    del case.reports[:]
    assert referral_row(case, NOW)["first_reported"] == "2026-03-10T07:00:00Z"


def test_export_row() -> None:
    case = a_case(
        police_acknowledged_at=stamp(NOW - timedelta(hours=1)),
        police_reference="DK-2026-17",
        hold_until=stamp(NOW + timedelta(days=2)),
        hold_reason="controlled delivery",
    )
    assert export_row(case) == {
        "case_id": CASE_ID,
        "status": "LEA_NOTIFIED",
        "hosting_country": "DK",
        "canonical_url": "https://files.example.com/a",
        "first_reported_at": "2026-03-10T07:00:00Z",
        "reports": 3,
        "reporters": "hotline-dk;hotline-nl",
        "police_acknowledged_at": "2026-03-10T11:00:00Z",
        "police_reference": "DK-2026-17",
        "hold_until": "2026-03-12T12:00:00Z",
        "hold_reason": "controlled delivery",
        "history": "RECEIVED@2026-03-10T07:00:00Z;ASSESSED_ILLEGAL@2026-03-10T08:00:00Z;"
        "LEA_NOTIFIED@2026-03-10T11:30:00Z",
        "hashes": "",
        "linked_cases": "",
        "reappearance_of": "",
    }


def an_event() -> pb.WatchReferralsResponse:
    return pb.WatchReferralsResponse(
        event=case_pb2.CaseEvent(
            sequence=42,
            kind=case_pb2.CASE_EVENT_KIND_STATUS_CHANGED,
            case_id=CASE_ID,
            status=status_pb2.CASE_STATUS_LEA_NOTIFIED,
            occurred_at=stamp(NOW),
            case=a_case(),
        ),
        cursor="djE6NDI=",
    )


def test_event_line_has_time_kind_case_status_url() -> None:
    line = event_line(an_event())
    assert "\n" not in line
    assert line.split() == [
        "2026-03-10T12:00:00Z",
        "STATUS_CHANGED",
        CASE_ID,
        "LEA_NOTIFIED",
        "https://files.example.com/a",
    ]


def test_event_record_is_one_json_object() -> None:
    record = event_record(an_event())
    assert json.loads(json.dumps(record)) == {
        "occurred_at": "2026-03-10T12:00:00Z",
        "sequence": 42,
        "kind": "STATUS_CHANGED",
        "case_id": CASE_ID,
        "status": "LEA_NOTIFIED",
        "hosting_country": "DK",
        "url": "https://files.example.com/a",
        "cursor": "djE6NDI=",
    }
