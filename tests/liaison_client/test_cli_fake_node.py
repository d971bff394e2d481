"""The commands against an in-process stand-in node (mutual TLS on 127.0.0.1).

The stand-in implements LiaisonService from the proto alone, so these tests
pin the client's side of the contract (pagination, requests it sends, how it
explains each error code, watch resume) independently of the real server;
tests/liaison_client/test_e2e.py runs the same commands against real nodes.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner, Result
from google.protobuf.timestamp_pb2 import Timestamp

from crypto.x509ca import IssuedCert, create_ca, issue_member_cert
from federation.cli.liaison import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNREACHABLE, liaison
from federation.devnet.create import free_ports
from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import liaison_service_pb2 as pb
from hfp.v1 import liaison_service_pb2_grpc as pb_grpc
from tests.liaison_client.helpers import write_identity, write_profile

CASES = [f"0190c6c2-7a3b-7c4d-8e5f-{n:012d}" for n in range(1, 8)]
UNKNOWN = "0190c6c2-7a3b-7c4d-8e5f-999999999999"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def make_case(case_id: str, **fields: object) -> case_pb2.Case:
    case = case_pb2.Case(
        case_id=case_id,
        canonical_url=f"https://{case_id[-4:]}.example.com/",
        hosting_country="DK",
        status=status_pb2.CASE_STATUS_RECEIVED,
        created_at=stamp(datetime(2026, 3, 1, tzinfo=UTC)),
    )
    for name, value in fields.items():
        if isinstance(value, Timestamp):
            getattr(case, name).CopyFrom(value)
        else:
            setattr(case, name, value)
    return case


@dataclass
class FakeLiaison(pb_grpc.LiaisonServiceServicer):
    """A LiaisonService that follows the proto comments, with knobs for failures."""

    cases: dict[str, case_pb2.Case] = field(
        default_factory=lambda: {c: make_case(c) for c in CASES}
    )
    events: int = 6
    list_requests: list[pb.ListReferralsRequest] = field(default_factory=list)
    watch_cursors: list[str] = field(default_factory=list)
    #: End the first stream with UNAVAILABLE after this many events.
    drop_after: int | None = None
    #: Fail every call with this code (and message).
    fail: tuple[grpc.StatusCode, str] | None = None
    requests: list[object] = field(default_factory=list)

    def _check(self, context: grpc.ServicerContext) -> None:
        if self.fail is not None:
            context.abort(*self.fail)

    def _known(self, case_id: str, context: grpc.ServicerContext) -> case_pb2.Case:
        self._check(context)
        if case_id not in self.cases:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such referral in your jurisdiction")
        return self.cases[case_id]

    def ListReferrals(
        self, request: pb.ListReferralsRequest, context: grpc.ServicerContext
    ) -> pb.ListReferralsResponse:
        self._check(context)
        self.list_requests.append(request)
        # Small pages on purpose, so that the client must follow tokens.
        size = min(request.page_size or 50, 3)
        start = int(request.page_token or 0)
        page = list(self.cases.values())[start : start + size]
        more = start + size < len(self.cases)
        return pb.ListReferralsResponse(
            cases=page, next_page_token=str(start + size) if more else ""
        )

    def AcknowledgeReferral(
        self, request: pb.AcknowledgeReferralRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeReferralResponse:
        case = self._known(request.case_id, context)
        self.requests.append(request)
        case.police_reference = request.reference
        case.police_acknowledged_at.CopyFrom(stamp(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)))
        return pb.AcknowledgeReferralResponse(case=case)

    def RequestHold(
        self, request: pb.RequestHoldRequest, context: grpc.ServicerContext
    ) -> pb.RequestHoldResponse:
        case = self._known(request.case_id, context)
        self.requests.append(request)
        case.status = status_pb2.CASE_STATUS_LEA_HOLD
        case.hold_until.CopyFrom(request.until)
        case.hold_reason = request.reason
        return pb.RequestHoldResponse(case=case)

    def ReleaseHold(
        self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseHoldResponse:
        case = self._known(request.case_id, context)
        if not case.HasField("hold_until"):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "there is no active hold")
        case.ClearField("hold_until")
        return pb.ReleaseHoldResponse(case=case)

    def WatchReferrals(
        self, request: pb.WatchReferralsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchReferralsResponse]:
        self._check(context)
        self.watch_cursors.append(request.cursor)
        start = int(request.cursor.removeprefix("c") or 0)
        for sent, sequence in enumerate(range(start + 1, self.events + 1)):
            if self.drop_after is not None and sent == self.drop_after:
                self.drop_after = None
                context.abort(grpc.StatusCode.UNAVAILABLE, "the node is shutting down")
            case = self.cases[CASES[(sequence - 1) % len(CASES)]]
            yield pb.WatchReferralsResponse(
                event=case_pb2.CaseEvent(
                    sequence=sequence,
                    kind=case_pb2.CASE_EVENT_KIND_CASE_OPENED,
                    case_id=case.case_id,
                    status=case.status,
                    occurred_at=stamp(datetime(2026, 3, 1, 0, sequence, tzinfo=UTC)),
                    case=case,
                ),
                cursor=f"c{sequence}",
            )
        while context.is_active():  # a quiet stream stays open
            threading.Event().wait(0.05)


@dataclass
class Node:
    fake: FakeLiaison
    profile: Path
    endpoint: str
    ca: IssuedCert


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    ca = create_ca("stand-in CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    server_cert = issue_member_cert(ca, "hotline-dk", ("127.0.0.1", "localhost"))
    cert, key = write_identity(tmp_path, ca, "police-dk")
    endpoint = f"127.0.0.1:{free_ports(1)[0]}"
    fake = FakeLiaison()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_LiaisonServiceServicer_to_server(fake, server)
    credentials = grpc.ssl_server_credentials(
        [(server_cert.key_pem, server_cert.cert_pem)],
        root_certificates=ca.cert_pem,
        require_client_auth=True,
    )
    assert server.add_secure_port(endpoint, credentials)
    server.start()
    profile = write_profile(tmp_path, node=endpoint, ca_cert="ca.pem", cert=cert.name, key=key.name)
    try:
        yield Node(fake, profile, endpoint, ca)
    finally:
        server.stop(grace=None).wait(timeout=5)


def run(node: Node, *args: str) -> Result:
    return CliRunner().invoke(liaison, ["--profile", str(node.profile), *args])


def test_list_follows_page_tokens_up_to_the_limit(node: Node) -> None:
    result = run(node, "list", "--format", "json", "--limit", "5")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["case_id"] for r in rows] == CASES[:5]
    assert [r.page_token for r in node.fake.list_requests] == ["", "3"]
    assert [r.page_size for r in node.fake.list_requests] == [5, 2]


def test_list_sends_status_filters_and_prints_a_table(node: Node) -> None:
    result = run(node, "list", "--status", "received", "--status", "LEA_HOLD")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "CASE_ID",
        "STATUS",
        "COUNTRY",
        "REPORTS",
        "FIRST_REPORTED",
        "ACKNOWLEDGED",
        "HOLD_UNTIL",
        "URL",
    ]
    assert len(lines) == len(CASES)
    assert list(node.fake.list_requests[0].filters.statuses) == [
        status_pb2.CASE_STATUS_RECEIVED,
        status_pb2.CASE_STATUS_LEA_HOLD,
    ]


def test_list_csv(node: Node) -> None:
    result = run(node, "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["case_id"] for r in rows] == CASES
    assert rows[0]["status"] == "RECEIVED" and rows[0]["country"] == "DK"


def test_ack_hold_release(node: Node) -> None:
    case = CASES[0]
    acked = run(node, "ack", case.upper(), "--reference", " DK-POL-17 ")
    assert acked.exit_code == 0, acked.output
    assert acked.stdout.startswith(f"case {case}: acknowledged, your reference DK-POL-17")
    before = datetime.now(UTC)
    held = run(node, "hold", case, "--reason", "surveillance", "--until", "48h")
    assert held.exit_code == 0, held.output
    assert f"case {case}: on hold until " in held.stdout and "LEA_HOLD" in held.stdout
    assert "reason: surveillance" in held.stdout
    hold_request = node.fake.requests[-1]
    assert isinstance(hold_request, pb.RequestHoldRequest)
    until = hold_request.until.ToDatetime(tzinfo=UTC)
    assert timedelta(hours=47, minutes=59) < until - before < timedelta(hours=48, minutes=1)
    released = run(node, "release", case)
    assert released.exit_code == 0, released.output
    assert "hold released" in released.stdout
    again = run(node, "release", case)
    assert again.exit_code == 1 and "not possible now: there is no active hold" in again.stderr


def test_case_outside_the_jurisdiction(node: Node) -> None:
    result = run(node, "ack", UNKNOWN, "--reference", "X")
    assert result.exit_code == EXIT_NOT_FOUND
    assert f"no such referral in your jurisdiction: {UNKNOWN}" in result.stderr


@pytest.mark.parametrize(
    ("code", "message", "exit_code", "expected"),
    [
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "this node (hotline-nl) is not responsible for your jurisdictions (DK)",
            EXIT_REFUSED,
            "refused: this node (hotline-nl) is not responsible for your jurisdictions (DK)",
        ),
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "client certificate maps to no roster member",
            EXIT_REFUSED,
            "did not accept your certificate",
        ),
        (grpc.StatusCode.UNIMPLEMENTED, "", EXIT_REFUSED, "does not offer the police liaison"),
    ],
)
def test_refusals_are_explained(
    node: Node, code: grpc.StatusCode, message: str, exit_code: int, expected: str
) -> None:
    node.fake.fail = (code, message)
    result = run(node, "list")
    assert result.exit_code == exit_code
    assert expected in result.stderr
    assert f"hotline-dk ({node.endpoint})" in result.stderr


def test_export_csv_all_pages(node: Node, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    result = run(node, "export", "--since", "2026-01-01", "--until", "30d", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["case_id"] for r in rows] == CASES
    assert list(rows[0]) == [
        "case_id",
        "status",
        "hosting_country",
        "canonical_url",
        "first_reported_at",
        "reports",
        "reporters",
        "police_acknowledged_at",
        "police_reference",
        "hold_until",
        "hold_reason",
        "history",
        "hashes",
        "linked_cases",
        "reappearance_of",
    ]
    assert "exporting: 3 referrals so far..." in result.stderr
    assert f"exported {len(CASES)} referrals to {out}" in result.stderr
    first = node.fake.list_requests[0].filters
    assert first.created_since.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert first.HasField("created_until")
    assert not list(tmp_path.glob(".export.csv.*"))


HOSTILE = '=HYPERLINK("http://evil.example/","click")'


def test_export_is_safe_for_spreadsheets(node: Node, tmp_path: Path) -> None:
    case = make_case(
        CASES[0], hold_reason=HOSTILE, police_reference="+1\x00-2", known_content_case_count=2
    )
    case.known_content_case_ids.append(CASES[1])
    case.reports.extend(
        [
            case_pb2.CaseReport(
                report_id="r1",
                origin_member_id="@hotline-dk",
                report=report_pb2.Report(
                    hashes=[
                        report_pb2.ContentHash(
                            algorithm=report_pb2.HASH_ALGORITHM_SHA256, value=b"\x01" * 32
                        )
                    ]
                ),
            )
        ]
    )
    node.fake.cases[CASES[0]] = case
    out = tmp_path / "export.csv"
    result = run(node, "export", "--since", "2026-01-01", "--excel", "--output", str(out))
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\x00" not in raw
    first = next(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert first["hold_reason"] == "'" + HOSTILE
    assert first["police_reference"] == "'+1-2"
    assert first["reporters"] == "'@hotline-dk"
    assert first["hashes"] == "sha256:" + "01" * 32
    assert first["linked_cases"] == f"{CASES[1]};..."


def test_list_csv_is_safe_for_spreadsheets(node: Node) -> None:
    node.fake.cases[CASES[0]] = make_case(CASES[0], canonical_url="-2+3")
    result = run(node, "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert not result.stdout.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["url"] == "'-2+3"


def test_export_to_stdout(node: Node) -> None:
    result = run(node, "export", "--since", "7d")
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == len(CASES)


def watch(node: Node, *args: str) -> Result:
    return run(node, "watch", "--idle-exit", "20", "--reconnect-for", "10", *args)


def sequences(result: Result) -> list[int]:
    return [json.loads(line)["sequence"] for line in result.stdout.splitlines()]


def test_watch_resumes_from_the_saved_place(node: Node) -> None:
    first = watch(node, "--format", "json", "--max-events", "3")
    assert first.exit_code == 0, first.output
    assert sequences(first) == [1, 2, 3]
    second = watch(node, "--format", "json", "--max-events", "2")
    assert sequences(second) == [4, 5]
    again = watch(node, "--format", "json", "--max-events", "1", "--from-start")
    assert sequences(again) == [1]
    assert node.fake.watch_cursors == ["", "c3", ""]
    assert "stopped after 1 events; your place is saved (after event 1)" in again.stderr


def test_watch_text_lines(node: Node) -> None:
    result = watch(node, "--max-events", "2")
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["2026-03-01T00:01:00Z", "CASE_OPENED", CASES[0]]


def test_watch_reconnects_when_the_node_drops_the_stream(node: Node) -> None:
    node.fake.drop_after = 2
    result = watch(node, "--format", "json", "--max-events", "5")
    assert result.exit_code == 0, result.output
    assert sequences(result) == [1, 2, 3, 4, 5]
    assert node.fake.watch_cursors == ["", "c2"]
    assert "lost the node (UNAVAILABLE: the node is shutting down)" in result.stderr
    assert "reconnected; resuming after event 2" in result.stderr


def test_watch_idle_exit(node: Node) -> None:
    node.fake.events = 1
    result = run(node, "watch", "--idle-exit", "0.5")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert "stopped: no event for 0.5 s" in result.stderr


def test_watch_refused_is_not_retried(node: Node) -> None:
    node.fake.fail = (grpc.StatusCode.PERMISSION_DENIED, "not responsible for DK")
    result = watch(node)
    assert result.exit_code == EXIT_REFUSED
    assert "refused: not responsible for DK" in result.stderr


def test_watch_rejected_saved_place(node: Node) -> None:
    assert watch(node, "--max-events", "2").exit_code == 0
    node.fake.fail = (grpc.StatusCode.INVALID_ARGUMENT, "cursor is not valid")
    result = watch(node)
    assert result.exit_code == 1
    assert "did not accept your saved place (cursor is not valid)" in result.stderr
    assert "use --from-start" in result.stderr
    fresh = watch(node, "--from-start")
    assert fresh.exit_code == 1
    assert "rejected the request: cursor is not valid" in fresh.stderr


def test_watch_gives_up_on_an_unreachable_node(tmp_path: Path) -> None:
    profile = write_profile(tmp_path, node=f"127.0.0.1:{free_ports(1)[0]}")
    result = CliRunner().invoke(
        liaison, ["--profile", str(profile), "watch", "--reconnect-for", "1"]
    )
    assert result.exit_code == EXIT_UNREACHABLE
    assert "gave up: cannot reach the hotline node hotline-dk (127.0.0.1:" in result.stderr
    assert "cannot reach the node" in result.stderr


def test_unreachable_node_is_named(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    profile = write_profile(tmp_path, node=f"127.0.0.1:{port}")
    result = CliRunner().invoke(liaison, ["--profile", str(profile), "list"])
    assert result.exit_code == EXIT_UNREACHABLE
    assert f"cannot reach the hotline node hotline-dk (127.0.0.1:{port})" in result.stderr


def test_expired_certificate_is_caught_before_connecting(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = create_ca("test CA", now=now - timedelta(days=10))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    cert, key = write_identity(tmp_path, ca, "police-dk", valid_days=1, now=now - timedelta(days=5))
    profile = write_profile(tmp_path, ca_cert="ca.pem", cert=cert.name, key=key.name)
    for command in (["list"], ["watch"], ["release", CASES[0]]):
        result = CliRunner().invoke(liaison, ["--profile", str(profile), *command])
        assert result.exit_code == EXIT_REFUSED, command
        assert "your certificate expired on " in result.stderr
        assert "ask the network operator for a new one" in result.stderr


def test_profile_from_the_environment_and_per_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('member_id = "x"\n')
    runner = CliRunner()
    from_env = runner.invoke(liaison, ["list"], env={"HFED_LIAISON_PROFILE": str(bad)})
    assert from_env.exit_code == 1 and f"profile {bad} has invalid settings" in from_env.stderr
    per_command = runner.invoke(liaison, ["list", "--profile", str(bad)])
    assert f"profile {bad} has invalid settings" in per_command.stderr
    none = runner.invoke(liaison, ["list"], env={"HFED_LIAISON_PROFILE": ""})
    assert "use --profile FILE or set HFED_LIAISON_PROFILE" in none.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ack", "12345", "--reference", "R"], "is not a case id"),
        (["ack", CASES[0], "--reference", " "], "must be 1 to 128 characters"),
        (["hold", CASES[0], "--reason", "r", "--until", "2000-01-01"], "is not in the future"),
        (["hold", CASES[0], "--reason", "r", "--until", "91d"], "at most 90 days"),
        (["hold", CASES[0], "--reason", "r", "--until", "soon"], "is not a date"),
        (["hold", CASES[0], "--reason", "", "--until", "1d"], "must be 1 to 500 characters"),
        (["export", "--since", "1d", "--until", "2d"], "must be later than --since"),
    ],
)
def test_usage_errors_need_no_profile(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(liaison, args, env={"HFED_LIAISON_PROFILE": ""})
    assert result.exit_code == 2
    assert expected in result.stderr
